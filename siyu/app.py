"""The FastAPI application: REST API under /api/v1 (OpenAPI at /docs), the operator console
(siyu.web) and the WeCom callback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from siyu import api_errors
from siyu.api_errors import ApiError
from siyu.audit import service as audit
from siyu.auth import service as tokens
from siyu.auth.principal import Principal
from siyu.config import Settings
from siyu.fastpath import FastPaths
from siyu.runtime import open_brand

bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    engine: Engine
    brand_id: int


def context(request: Request) -> AppContext:
    return request.app.state.siyu


async def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """What the bearer token may do (its role, org unit and scopes); 401 without a live one.
    (`credentials` is declared for OpenAPI's security scheme; the header is read by
    `bearer_caller`, the one token check of every route.)"""
    return await bearer_caller(context(request), request.headers.get("authorization", ""), ())


# Token checks in flight: a burst of requests with a token whose memory just expired reads it
# once, not once each (each read can open a connection).
_reading: dict[tuple[str, str], asyncio.Future[Principal | None]] = {}


async def principal_of(ctx: AppContext, token: str) -> Principal:
    """The live token's principal. A token checked in the last second is not read again
    (siyu.auth.service.remembered), so the common case costs no database read and no thread."""

    def load(token: str) -> Principal | None:
        with ctx.engine.begin() as conn:
            return tokens.check(conn, token)

    store = ctx.settings.sqlalchemy_url  # which database (cached)
    found = tokens.peek(store, token)
    if found is None:  # not remembered: read it once, off the event loop
        loop = asyncio.get_running_loop()
        key = (store, token)
        reading = _reading.get(key)
        if reading is not None and reading.get_loop() is loop:  # requests arriving together
            found = await asyncio.shield(reading)
        else:
            reading = _reading[key] = loop.create_future()
            try:
                found = await run_in_threadpool(tokens.remembered, store, token, load)
                reading.set_result(found)
            except BaseException as e:
                reading.set_exception(e)
                reading.exception()  # the waiters, if any, raise it; none: not "unretrieved"
                raise
            finally:
                _reading.pop(key, None)
    if found is None or found.brand_id != ctx.brand_id:
        raise ApiError(401, "unauthenticated", "unknown or revoked token")
    return found


def _check_scopes(who: Principal, scopes: tuple[str, ...]) -> Principal:
    for scope in scopes:
        if not who.has_scope(scope):
            have = ", ".join(sorted(who.scopes or ())) or "none"
            raise ApiError(
                403, "forbidden",
                f"this token lacks the {scope!r} scope (it has: {have}); issue one with "
                f"`siyu api-token create NAME --scope {scope}`",
                "scope",
            )  # fmt: skip
    return who


def needs(*scopes: str) -> Callable[..., Any]:
    """A dependency: the caller, if its token has every one of `scopes`; else 403 naming the
    first missing one. Every /api/v1 route declares one (tests/api/test_tokens.py walks them)."""

    async def check_scopes(who: Principal = Depends(caller)) -> Principal:
        return _check_scopes(who, scopes)

    check_scopes.scopes = scopes  # type: ignore[attr-defined]
    return check_scopes


def needs_fast(*scopes: str) -> Callable[..., Any]:
    """`needs` as one dependency without sub-dependencies, for the hottest route (events):
    FastAPI's dependency solving is a large part of a tiny request. It reads the bearer token
    itself; the route declares the security scheme in its OpenAPI (`BEARER`)."""

    async def check_bearer(request: Request) -> Principal:
        authorization = request.headers.get("authorization", "")
        return await bearer_caller(context(request), authorization, scopes)

    check_bearer.scopes = scopes  # type: ignore[attr-defined]
    return check_bearer


async def bearer_caller(ctx: AppContext, authorization: str, scopes: tuple[str, ...]) -> Principal:
    """The caller named by an `Authorization: Bearer …` header, if it has every scope."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
    return _check_scopes(await principal_of(ctx, token.strip()), scopes)


BEARER = {"security": [{"HTTPBearer": []}]}


def brand_wide_only(who: Principal, what: str) -> None:
    """Brand-wide definitions (tags, segments) are written by whole-brand (HQ) tokens only;
    any other is refused, naming its role."""
    if not who.whole_brand:
        raise ApiError(403, "forbidden", f"{what} are the brand's; a {who.role} token of "
                       f"{who.org_unit} cannot write them", "role")  # fmt: skip


def not_found(ctx: AppContext, who: Principal, target: str, message: str, field: str | None
              ) -> ApiError:  # fmt: skip
    """Out of the caller's scope: audited, and answered exactly like something missing (404)."""
    with ctx.engine.begin() as conn:
        audit.record(
            conn, brand_id=ctx.brand_id, user_id=who.audit_user_id, actor=who.actor,
            action="denied", target=target,
        )  # fmt: skip
    return ApiError(404, "not_found", message, field)


def create_app(settings: Settings) -> FastAPI:
    from siyu.channels.api import router as channels_router
    from siyu.customers.api import router as customers_router
    from siyu.events.api import event_writer, fast_handler
    from siyu.events.api import router as events_router
    from siyu.imports.api import router as ingest_router
    from siyu.metrics.api import router as metrics_router
    from siyu.orgs.api import router as stores_router
    from siyu.privacy.api import router as privacy_router
    from siyu.segments.api import router as segments_router
    from siyu.sop.api import router as sops_router
    from siyu.staff.api import router as staff_router
    from siyu.tags.api import router as tags_router

    engine, brand_id = open_brand(settings)
    app = FastAPI(
        title="Siyu 私域 API",
        version="1",
        description="Customers, metrics and operations of one brand's private domain.",
    )
    app.state.siyu = AppContext(settings, engine, brand_id)
    app.state.event_writer = event_writer(engine)
    api_errors.install(app)
    # With one dependency (its scope) rather than the others' three; siyu.fastpath serves it.
    app.include_router(events_router, prefix="/api/v1")
    routers = (metrics_router, privacy_router, customers_router, tags_router, stores_router,
               staff_router, channels_router, ingest_router, segments_router,
               sops_router)  # fmt: skip
    for router in routers:
        app.include_router(
            router, prefix="/api/v1",
            dependencies=[Depends(caller), Depends(api_errors.no_nul_characters)],
        )  # fmt: skip
    # The hot ingest path skips FastAPI's routing and dependency solving: most of a one-event
    # request (bench/ingest.py). The route stays declared above for OpenAPI.
    app.add_middleware(FastPaths, routes={("POST", "/api/v1/events"): fast_handler(app)})
    from siyu.web import console

    console.install(app)
    if settings.wecom_callback_token and settings.wecom_encoding_aes_key:
        from siyu.wecom import callback

        callback.install(app, callback.callback_context(settings, engine=engine, brand_id=brand_id))
    return app
