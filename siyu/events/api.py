"""`POST /api/v1/events`: typed, timestamped domain events from an integration (SPEC §3 Event),
one or a batch, each counted once by its idempotency key. They feed SOP event triggers (§7).

The customer is named as `siyu customer show` names one: an id, or `type:value` of one of their
identifiers (`phone:13800138000`, `external_userid:wm…`). An event of an unknown customer is
rejected alone, with the field named; the others of the batch are stored."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends
from fastapi.concurrency import run_in_threadpool

from siyu.api_errors import ApiError
from siyu.app import AppContext, context
from siyu.customers.service import CustomerNotFound, resolve_key_or_raise
from siyu.db import insert_ignore, utcnow
from siyu.events.models import Event

router = APIRouter(tags=["events"])

MAX_EVENTS = 1_000
TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Types Siyu emits itself: an integration may not forge them.
RESERVED = ("segment.", "lifecycle.", "tag.", "message.", "wecom.", "identity.")

EXAMPLE = {
    "events": [
        {"type": "coupon.expiring", "idempotency_key": "crm-7781-coupon-C42",
         "customer": "phone:13800138000", "occurred_at": "2025-11-01T09:00:00+08:00",
         "payload": {"coupon": "C42", "expires": "2025-11-03"}},
    ]
}  # fmt: skip


class _Rejected(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _occurred(value: Any, tz: str) -> datetime:
    if not isinstance(value, str):
        raise _Rejected("occurred_at", "an ISO 8601 timestamp, e.g. 2025-11-01T09:00:00+08:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise _Rejected("occurred_at", f"{value!r} is not an ISO 8601 timestamp") from None
    if at.tzinfo is None:  # a local time of the brand
        at = at.replace(tzinfo=ZoneInfo(tz))
    at = at.astimezone(UTC)
    if at > utcnow():
        raise _Rejected("occurred_at", f"{value} is in the future")
    return at


def _parse(conn: Any, ctx: AppContext, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _Rejected("", "an event is an object")
    unknown = set(item) - {"type", "idempotency_key", "customer", "occurred_at", "payload"}
    if unknown:
        raise _Rejected(sorted(unknown)[0], "unknown field")
    kind = item.get("type")
    if not isinstance(kind, str) or not TYPE.match(kind) or len(kind) > 64:
        raise _Rejected("type", "a dotted lower-case name of at most 64 characters, e.g. "
                        "coupon.expiring")  # fmt: skip
    if kind.startswith(RESERVED):
        raise _Rejected("type", f"{kind!r} is emitted by Siyu itself")
    key = item.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        raise _Rejected("idempotency_key", "a string of 1–200 characters")
    payload = item.get("payload", {})
    if not isinstance(payload, dict) or len(json.dumps(payload)) > 10_000:
        raise _Rejected("payload", "an object of at most 10,000 characters as JSON")
    customer = item.get("customer")
    if customer is None:
        customer_id = None
    else:
        try:
            customer_id, _ = resolve_key_or_raise(conn, brand_id=ctx.brand_id, key=str(customer))
        except CustomerNotFound as e:
            raise _Rejected("customer", str(e)) from None
    return {"brand_id": ctx.brand_id, "type": kind, "idempotency_key": key,
            "customer_id": customer_id, "payload": payload, "recorded_at": utcnow(),
            "occurred_at": _occurred(item.get("occurred_at"), ctx.settings.timezone)}  # fmt: skip


def record(ctx: AppContext, items: list[Any]) -> dict[str, Any]:
    """Store each valid event once; report created / duplicate / rejected per item, in order."""
    results: list[dict[str, Any]] = []
    with ctx.engine.begin() as conn:
        for i, item in enumerate(items):
            key = item.get("idempotency_key") if isinstance(item, dict) else None
            try:
                row = _parse(conn, ctx, item)
            except _Rejected as e:
                field = f"events[{i}]" + (f".{e.field}" if e.field else "")
                results.append({"status": "rejected", "field": field, "message": str(e)})
                continue
            new = insert_ignore(conn, Event.__table__, row, Event.__table__.c.id)
            results.append({"status": "duplicate" if new is None else "created",
                            "idempotency_key": key})  # fmt: skip
    counts = {
        s: sum(r["status"] == s for r in results) for s in ("created", "duplicate", "rejected")
    }
    return {**counts, "results": results}


@router.post(
    "/events",
    summary="One event or a batch, each stored once by its idempotency key",
    description=(
        'Send one event object, or `{"events": [...]}` with at most 1,000. Fields: `type` '
        "(dotted, e.g. `coupon.expiring`; Siyu's own `segment.`, `lifecycle.`, `tag.`, "
        "`message.`, `wecom.` and `identity.` events cannot be sent), `idempotency_key` "
        "(unique per brand: a retry answers `duplicate`), `customer` (an id or `type:value`, "
        "optional), `occurred_at` (ISO 8601; without an offset it is brand-local time) and "
        "`payload` (an object)."
    ),
)
async def events(
    body: dict[str, Any] = Body(..., examples=[EXAMPLE]), ctx: AppContext = Depends(context)
) -> dict[str, Any]:
    items = body["events"] if "events" in body else [body]
    if not isinstance(items, list) or not items:
        raise ApiError(422, "invalid", "a non-empty list of events", "events")
    if len(items) > MAX_EVENTS:
        raise ApiError(413, "too_large", f"at most {MAX_EVENTS} events per request", "events")
    return await run_in_threadpool(record, ctx, items)
