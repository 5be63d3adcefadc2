"""The WeCom callback URL (回调URL): URL verification (GET) and encrypted events (POST).

Mount `router` into the main app and put a `CallbackContext` on `app.state.wecom_callback`
(`install` does both); `create_callback_app(settings)` is a stand-alone app for tests and the
simulator. The POST handler verifies, stores and answers; processing is `siyu.wecom.events`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from starlette.routing import Route

from siyu.config import Settings
from siyu.wecom.crypto import CallbackCipher, WeComCryptoError
from siyu.wecom.inbox import (
    CallbackRejected,
    CallbackWriter,
    accept_callback,
    prepare_callback,
)

log = logging.getLogger(__name__)

CALLBACK_PATH = "/wecom/callback"


@dataclass(frozen=True)
class CallbackContext:
    engine: Engine
    brand_id: int
    cipher: CallbackCipher
    max_skew_seconds: int = 300
    writer: CallbackWriter | None = None  # group commit of concurrent deliveries


def callback_context(settings: Settings, *, engine: Engine, brand_id: int) -> CallbackContext:
    if not (
        settings.wecom_corp_id and settings.wecom_callback_token and settings.wecom_encoding_aes_key
    ):
        raise ValueError(
            "The WeCom callback is not configured: set SIYU_WECOM_CORP_ID, "
            "SIYU_WECOM_CALLBACK_TOKEN and SIYU_WECOM_ENCODING_AES_KEY (the Token and "
            "EncodingAESKey entered in WeCom's callback settings)."
        )
    cipher = CallbackCipher(
        token=settings.wecom_callback_token,
        encoding_aes_key=settings.wecom_encoding_aes_key,
        receive_id=settings.wecom_corp_id,
    )
    skew = settings.wecom_callback_max_skew_seconds
    return CallbackContext(
        engine, brand_id, cipher, skew, CallbackWriter(engine, max_skew_seconds=skew)
    )


def get_context(request: Request) -> CallbackContext:
    ctx = getattr(request.app.state, "wecom_callback", None)
    if ctx is None:
        raise RuntimeError("app.state.wecom_callback is not set: use siyu.wecom.callback.install")
    return ctx


router = APIRouter(tags=["wecom"])


@router.get(CALLBACK_PATH)
def verify_url(
    msg_signature: str = Query(...),
    timestamp: str = Query(...),
    nonce: str = Query(...),
    echostr: str = Query(...),
    ctx: CallbackContext = Depends(get_context),
) -> Response:
    """WeCom checks the URL when it is saved: answer the decrypted echostr, verbatim."""
    try:
        echo = ctx.cipher.verify_url(
            msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, echostr=echostr
        )
    except WeComCryptoError as e:
        log.warning("WeCom URL verification rejected: %s", e)
        return PlainTextResponse("forbidden", status_code=403)
    return PlainTextResponse(echo)


async def receive_event(request: Request) -> Response:
    """Store the event and answer at once (WeCom waits 5 s, then retries).

    A plain Starlette endpoint, not a FastAPI route: WeCom is its only caller, and FastAPI's
    parameter validation and dependency solving cost more CPU than verifying, decrypting and
    storing the event (bench/wecom_callbacks.py). A missing parameter is a 400 naming it."""
    ctx = get_context(request)
    query = request.query_params
    args = {}
    for name in ("msg_signature", "timestamp", "nonce"):
        value = query.get(name)
        if not value:
            return PlainTextResponse(f"missing query parameter {name}", status_code=400)
        args[name] = value
    body = await request.body()
    try:
        if ctx.writer is None:
            await run_in_threadpool(
                accept_callback,
                ctx.engine,
                brand_id=ctx.brand_id,
                cipher=ctx.cipher,
                body=body,
                max_skew_seconds=ctx.max_skew_seconds,
                **args,
            )
        else:
            # Verify and decrypt here (a fraction of a millisecond of CPU), then wait for the
            # group commit without holding a thread: a hop through the thread pool per
            # callback cost more than the work itself (bench/wecom_callbacks.py).
            prepared = prepare_callback(
                brand_id=ctx.brand_id,
                cipher=ctx.cipher,
                body=body,
                max_skew_seconds=ctx.max_skew_seconds,
                **args,
            )
            prepared.accepted(*await ctx.writer.write_async(prepared.nonce_row, prepared.event_row))
    except CallbackRejected as e:
        return PlainTextResponse(e.reason, status_code=e.status)
    return PlainTextResponse("")


router.routes.append(Route(CALLBACK_PATH, receive_event, methods=["POST"]))


def install(app: FastAPI, ctx: CallbackContext) -> None:
    """Mount the callback router on `app` with its context."""
    app.state.wecom_callback = ctx
    app.include_router(router)


def create_callback_app(
    settings: Settings, *, engine: Engine | None = None, brand_id: int | None = None
) -> FastAPI:
    """A stand-alone app serving only the callback URL (tests, `siyu wecom-sim` demos)."""
    if engine is None or brand_id is None:
        from siyu.runtime import open_brand

        engine, brand_id = open_brand(settings)
    app = FastAPI(title="Siyu WeCom callback", docs_url=None, redoc_url=None, openapi_url=None)
    install(app, callback_context(settings, engine=engine, brand_id=brand_id))
    return app
