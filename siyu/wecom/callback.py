"""The WeCom callback URL (回调URL): URL verification (GET) and encrypted events (POST).

`install(app, ctx)` serves it on an application: the GET through `router`, the POST through
`CallbackFastPath`, an ASGI middleware in front of the application's routing; the context goes
on `app.state.wecom_callback`. `create_callback_app(settings)` is a stand-alone app for tests and
the simulator. The POST verifies, stores and answers; processing is `siyu.wecom.events`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from siyu.config import Settings
from siyu.fastpath import TEXT, BodyTooLarge, read_body, respond, route_path
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


class CallbackFastPath:
    """The callback POST as bare ASGI, in front of the application's routing.

    WeCom is its only caller and it is the hottest path in Siyu: FastAPI's routing, dependency
    solving and response classes cost more CPU than verifying, decrypting and storing a
    callback (bench/wecom_callbacks.py). Every other request (the GET that verifies the URL
    included) passes through to the application untouched.

    Answers are those of a route: 200 with an empty body once the event is stored; a refusal
    (bad signature, wrong corp id, stale or replayed, a body that is not WeCom's XML, bad
    base64) is 400 or 403 with the reason as text, and nothing stored; a missing signature
    parameter is 400 naming it; a failure to store is 500 (WeCom delivers again). Differences
    from a route: the application's exception handlers do not apply (this path answers every
    failure itself, as text, not as the API's JSON error shape — as the route did), and a client
    that disconnects before its body has arrived is answered nothing and nothing is stored.
    """

    def __init__(self, app: ASGIApp, ctx: CallbackContext, path: str = CALLBACK_PATH) -> None:
        self.app = app
        self.ctx = ctx
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or route_path(scope) != self.path:
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        for name in _SIGNATURE_PARAMETERS:
            if not query.get(name):
                await _answer(send, 400, f"missing query parameter {name}")
                return
        try:
            body = await read_body(scope, receive, MAX_BODY_BYTES)
        except BodyTooLarge as e:
            await _answer(send, 413, e.message)
            return
        if body is None:
            return  # the client went away: nobody to answer, nothing stored
        try:
            await self._accept(query, body)
        except CallbackRejected as e:
            await _answer(send, e.status, e.reason)
            return
        except Exception:  # noqa: BLE001 - answered, and logged with its traceback
            log.exception("WeCom callback not stored (WeCom will deliver it again)")
            await _answer(send, 500, "the callback could not be stored; deliver it again")
            return
        await respond(send, 200, b"", TEXT)

    async def _accept(self, query: dict[str, str], body: bytes) -> None:
        ctx = self.ctx
        args = {name: query[name] for name in _SIGNATURE_PARAMETERS}
        if ctx.writer is None:
            await run_in_threadpool(
                accept_callback, ctx.engine, brand_id=ctx.brand_id, cipher=ctx.cipher,
                body=body, max_skew_seconds=ctx.max_skew_seconds, **args,
            )  # fmt: skip
            return
        # Verify and decrypt here (a fraction of a millisecond of CPU), then wait for the group
        # commit without holding a thread: a hop through the thread pool per callback cost more
        # than the work itself.
        prepared = prepare_callback(
            brand_id=ctx.brand_id, cipher=ctx.cipher, body=body,
            max_skew_seconds=ctx.max_skew_seconds, **args,
        )  # fmt: skip
        prepared.accepted(*await ctx.writer.write_async(prepared.nonce_row, prepared.event_row))


MAX_BODY_BYTES = 1 << 20  # WeCom's event XML is a few kilobytes
_SIGNATURE_PARAMETERS = ("msg_signature", "timestamp", "nonce")


async def _answer(send: Send, status: int, text: str) -> None:
    await respond(send, status, text.encode("utf-8"), TEXT)


def install(app: FastAPI, ctx: CallbackContext) -> None:
    """Serve the callback URL on `app`: the GET through its router, the POST in front of it."""
    app.state.wecom_callback = ctx
    app.include_router(router)
    app.add_middleware(CallbackFastPath, ctx=ctx)


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
