"""`POST /api/v1/events`: typed, timestamped domain events from an integration (SPEC §3 Event),
one or a batch, each counted once by its idempotency key. They feed SOP event triggers (§7).

The customer is named as `siyu customer show` names one: an id, or `type:value` of one of their
identifiers (`phone:13800138000`, `external_userid:wm…`). An event of an unknown customer (or
of one outside the token's scope) is rejected alone, with the field named; the others of the
batch are stored.

Throughput (bench/ingest.py): the body is parsed with orjson, and requests that arrive while a
write is in progress are written together in the next transaction (group commit) — one
commit for many single-event requests, one writer at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from siyu.api_errors import ApiError, refuse_nul
from siyu.app import BEARER, AppContext, bearer_caller, context, needs_fast
from siyu.auth.principal import Principal
from siyu.events.ingest import MAX_EVENTS, RESERVED, Checked, answer, check, record_many
from siyu.fastpath import Handler, Scope, header

router = APIRouter(tags=["events"])

# A transaction takes the requests waiting when it starts, up to this many events.
GROUP_EVENTS = 5_000
# On PostgreSQL, writers that may run at once, and the events that must be waiting before a
# writer beyond the first starts (GroupCommit).
PG_WRITERS = 4
SPARE_WRITER = 1_000

EXAMPLE = {
    "events": [
        {"type": "coupon.expiring", "idempotency_key": "crm-7781-coupon-C42",
         "customer": "phone:13800138000", "occurred_at": "2025-11-01T09:00:00+08:00",
         "payload": {"coupon": "C42", "expires": "2025-11-03"}},
    ]
}  # fmt: skip

_EVENT_SCHEMA = {
    "type": "object",
    "required": ["type", "idempotency_key", "occurred_at"],
    "properties": {
        "type": {"type": "string", "maxLength": 64, "example": "coupon.expiring"},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "customer": {"type": ["string", "null"], "description": "id or type:value"},
        "occurred_at": {"type": "string", "format": "date-time"},
        "payload": {"type": "object"},
    },
    "additionalProperties": False,
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _EVENT_SCHEMA,
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {
                                    "type": "array",
                                    "items": _EVENT_SCHEMA,
                                    "minItems": 1,
                                    "maxItems": MAX_EVENTS,
                                },
                            },
                        },  # fmt: skip
                    ]
                },
                "examples": {"batch": {"value": EXAMPLE}},
            }
        },
    }
}


class GroupCommit:
    """Requests queue their batches; a writer task writes everything queued so far (up to
    GROUP_EVENTS) in one transaction, which saves a commit per request.

    Up to `writers` run at once. SQLite has one writer anyway. On PostgreSQL a group's
    statements spend most of their time in the server's own process, while this one would
    wait: further writers send the next groups meanwhile, and the server's processes work on
    more than one core. A writer beyond the first starts only when SPARE_WRITER events are
    waiting: a few one-event requests are cheaper as one group (each group costs its own round
    trips) than spread over several. Writers insert in key order (siyu.events.ingest._insert),
    so two groups sharing keys cannot deadlock. bench/RESULTS.md "Event ingest on PostgreSQL:
    writers at once"."""

    def __init__(self, writers: int = 1) -> None:
        self.pending: list[tuple[Principal, Checked, asyncio.Future[dict[str, Any]]]] = []
        self.writers = writers
        # writers draining now; apart from `tasks`, which a task leaves only a loop turn after
        # it finished — too late for a request queued meanwhile, which would wait for nobody
        self.active = 0
        self.tasks: set[asyncio.Task[None]] = set()  # held: a running task must be referenced

    async def submit(self, ctx: AppContext, who: Principal, items: list[Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[dict[str, Any]] = loop.create_future()
        # validated here, on the event loop, while the writer's transaction runs in its thread
        self.pending.append((who, check(items, ctx.settings.timezone), done))
        if self.active < self.writers and (
            self.active == 0 or sum(len(c) for _, c, _ in self.pending) >= SPARE_WRITER
        ):
            self.active += 1
            task = loop.create_task(self._drain(ctx))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await done

    async def _drain(self, ctx: AppContext) -> None:
        try:
            while self.pending:
                take, n = 0, 0
                while take < len(self.pending) and (take == 0 or n < GROUP_EVENTS):
                    n += len(self.pending[take][1])
                    take += 1
                group, self.pending = self.pending[:take], self.pending[take:]
                batches = [(who, items) for who, items, _ in group]
                try:
                    created = await run_in_threadpool(
                        record_many, ctx.engine, ctx.brand_id, batches
                    )
                except Exception as e:  # every request of the group learns of the failure
                    for *_, done in group:
                        if not done.done():
                            done.set_exception(e)
                    continue
                # answered here, on the event loop: the writer's thread is the bottleneck
                for _, items, done in group:
                    result = answer(items, created)
                    if not done.done():
                        done.set_result(result)
        finally:
            self.active -= 1


def event_writer(engine: Engine) -> GroupCommit:
    """The app's GroupCommit: PG_WRITERS on PostgreSQL, one on SQLite."""
    return GroupCommit(writers=PG_WRITERS if engine.dialect.name == "postgresql" else 1)


def _items(raw: bytes) -> list[Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ApiError(422, "invalid", f"the body is not JSON: {e}", None) from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", 'an event object or {"events": [...]}', None)
    items = body["events"] if "events" in body else [body]
    if not isinstance(items, list) or not items:
        raise ApiError(422, "invalid", "a non-empty list of events", "events")
    if len(items) > MAX_EVENTS:
        raise ApiError(413, "too_large", f"at most {MAX_EVENTS} events per request", "events")
    return items


SCOPES = ("ingest",)


async def ingest(ctx: AppContext, writer: GroupCommit, who: Principal, body: bytes) -> bytes:
    """Record one request's events for `who`; the JSON answer."""
    refuse_nul(body)
    return orjson.dumps(await writer.submit(ctx, who, _items(body)))


def fast_handler(app: Any) -> Handler:
    """POST /api/v1/events as a raw ASGI handler (siyu.fastpath): the same checks and answer
    as the route below, without FastAPI's per-request work — most of a one-event request."""
    ctx: AppContext = app.state.siyu
    writer: GroupCommit = app.state.event_writer

    async def handle(scope: Scope, body: bytes) -> tuple[int, bytes]:
        who = await bearer_caller(ctx, header(scope, b"authorization"), SCOPES)
        return 200, await ingest(ctx, writer, who, body)

    return handle


@router.post(
    "/events",
    summary="One event or a batch, each stored once by its idempotency key",
    description=(
        f'Send one event object, or `{{"events": [...]}}` with at most {MAX_EVENTS:,}. Fields: '
        f"`type` (dotted, e.g. `coupon.expiring`; Siyu's own "
        f"{', '.join(f'`{p}`' for p in RESERVED)} events cannot be sent), `idempotency_key` "
        "(unique per brand: a retry answers `duplicate`), `customer` (an id or `type:value`, "
        "optional; one the token may not read is rejected like an unknown one), "
        "`occurred_at` (ISO 8601; without an offset it is brand-local time) and `payload` "
        "(an object). Needs the `ingest` scope."
    ),
    openapi_extra={**BODY, **BEARER},
)
async def events(request: Request, who: Principal = Depends(needs_fast(*SCOPES))) -> Response:
    """Served by `fast_handler` in the running app; this route documents it in OpenAPI and
    answers when the app is mounted without siyu.fastpath."""
    body = await ingest(context(request), request.app.state.event_writer, who,
                        await request.body())  # fmt: skip
    return Response(body, media_type="application/json")
