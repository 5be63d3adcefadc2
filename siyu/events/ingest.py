"""Recording integration events (SPEC §3 Event) in bulk: validate each in Python, resolve every
customer key of the batch in a few set-based queries, and write the batch with one
INSERT … ON CONFLICT DO NOTHING RETURNING — no ORM object per event (issue #7 benchmark,
bench/ingest.py).

`record_many` takes several requests' batches at once (the API's group commit): one
transaction for all of them, each request answered on its own, in its own order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    Text,
    bindparam,
    cast,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.types import TypeDecorator

from siyu.auth.principal import Principal
from siyu.customers import service as customers
from siyu.customers.models import Customer
from siyu.events.models import Event
from siyu.identity.models import Identifier
from siyu.identity.normalize import InvalidIdentifier, parse_key

MAX_EVENTS = 1_000
MAX_PAYLOAD = 10_000  # characters of the payload as compact JSON
TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Types Siyu emits itself: an integration may not forge them.
RESERVED = ("segment.", "lifecycle.", "tag.", "message.", "wecom.", "identity.")
FIELDS = frozenset({"type", "idempotency_key", "customer", "occurred_at", "payload"})


class Rejected(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class _Row:
    index: int
    key: str
    type: str
    customer: str | None
    occurred_at: datetime
    payload: str  # JSON text


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def _occurred(value: Any, tz: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise Rejected("occurred_at", "an ISO 8601 timestamp, e.g. 2025-11-01T09:00:00+08:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected("occurred_at", f"{value!r} is not an ISO 8601 timestamp") from None
    if at.tzinfo is None:  # a local time of the brand
        at = at.replace(tzinfo=_zone(tz))
    at = at.astimezone(UTC)
    if at > now:
        raise Rejected("occurred_at", f"{value} is in the future")
    return at


def _parse(item: Any, index: int, tz: str, now: datetime) -> _Row:
    if not isinstance(item, dict):
        raise Rejected("", "an event is an object")
    if not FIELDS.issuperset(item):
        raise Rejected(sorted(set(item) - FIELDS)[0], "unknown field")
    kind = item.get("type")
    if not isinstance(kind, str) or len(kind) > 64 or not TYPE.match(kind):
        raise Rejected("type", "a dotted lower-case name of at most 64 characters, e.g. "
                       "coupon.expiring")  # fmt: skip
    if kind.startswith(RESERVED):
        raise Rejected("type", f"{kind!r} is emitted by Siyu itself")
    key = item.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= 200:
        raise Rejected("idempotency_key", "a string of 1–200 characters")
    payload = item.get("payload", {})
    if not isinstance(payload, dict):
        raise Rejected("payload", f"an object of at most {MAX_PAYLOAD:,} characters as JSON")
    try:
        as_json = orjson.dumps(payload).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        raise Rejected("payload", "holds a value JSON cannot carry exactly") from None
    if len(as_json) > MAX_PAYLOAD:
        raise Rejected("payload", f"an object of at most {MAX_PAYLOAD:,} characters as JSON")
    customer = item.get("customer")
    occurred = _occurred(item.get("occurred_at"), tz, now)
    return _Row(index, key, kind, None if customer is None else str(customer), occurred, as_json)


def _resolve(
    conn: Connection, brand_id: int, keys: set[str]
) -> tuple[dict[str, int], dict[str, str]]:
    """Customer keys (an id or `type:value`) → live customer id, set-based; and why the others
    name no customer, worded as `siyu.customers.service.resolve_key_or_raise` words it."""
    found: dict[str, int] = {}
    why: dict[str, str] = {}
    by_id: dict[int, list[str]] = defaultdict(list)
    by_value: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key in keys:
        if key.isdigit():
            if len(key) > 18:
                why[key] = f"no customer {key}"
            else:
                by_id[int(key)].append(key)
            continue
        try:
            by_value[parse_key(key)].append(key)
        except InvalidIdentifier as e:
            why[key] = str(e)
    c = Customer.__table__.c
    if by_id:
        rows = conn.execute(
            select(c.id, c.merged_into_id).where(
                c.brand_id == brand_id, c.id.in_(bindparam("ids", expanding=True))
            ),
            {"ids": list(by_id)},
        ).all()
        live = {int(r[0]): int(r[1] or r[0]) for r in rows}
        for cid, named in by_id.items():
            for key in named:
                if cid in live:
                    found[key] = live[cid]
                else:
                    why[key] = f"no customer {cid}"
    i = Identifier.__table__.c
    per_type: dict[str, list[str]] = defaultdict(list)
    for id_type, value in by_value:
        per_type[id_type].append(value)
    known: dict[tuple[str, str], int | None] = {}
    for id_type, values in per_type.items():
        rows = conn.execute(
            select(i.value, i.customer_id).where(
                i.brand_id == brand_id, i.id_type == id_type,
                i.value.in_(bindparam("values", expanding=True)),
            ),
            {"values": values},
        ).all()  # fmt: skip
        known.update({(id_type, r[0]): r[1] for r in rows})
    for (id_type, value), named in by_value.items():
        for key in named:
            if (id_type, value) not in known:
                why[key] = f"no customer has {id_type}:{value}"
            elif known[(id_type, value)] is None:
                why[key] = (
                    f"{id_type}:{value} is quarantined (shared by too many records) and names "
                    "no customer; see `siyu identity quarantined`"
                )
            else:
                found[key] = int(known[(id_type, value)])  # type: ignore[arg-type]
    return found, why


def _outside(conn: Connection, principal: Principal, ids: set[int]) -> set[int]:
    """Those of `ids` the principal may not read (an empty set for a whole-brand role)."""
    scope = customers.readable_customer_ids(principal)
    if scope is None or not ids:
        return set()
    sql, params = scope
    readable = conn.execute(
        text(f"SELECT DISTINCT r.customer_id FROM ({sql}) r WHERE r.customer_id IN :ids")
        .bindparams(bindparam("ids", expanding=True)),
        {**params, "ids": sorted(ids)},
    ).scalars()  # fmt: skip
    return ids - {int(x) for x in readable}


def _insert(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows, skipping idempotency keys already stored; the keys inserted."""
    if not rows:
        return set()
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(_EVENT_TEXT).on_conflict_do_nothing().returning(_EVENT_TEXT.c.idempotency_key)
    return set(conn.execute(stmt, rows).scalars())


# The event table with its payload as JSON text: the payload is serialised once, by orjson,
# while validating it (its size is a check), not again by SQLAlchemy's JSON type.
class _JsonTextPg(TypeDecorator[str]):
    """JSON text bound into PostgreSQL's json column (which takes no varchar unconverted)."""

    impl = Text
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, JSON)


def _event_text() -> Table:
    as_text = Text().with_variant(_JsonTextPg(), "postgresql")
    cols = [
        Column(c.name, as_text if c.name == "payload" else c.type, primary_key=c.primary_key)
        for c in Event.__table__.c
    ]
    return Table("event", MetaData(), *cols)


_EVENT_TEXT = _event_text()


def record_many(
    engine: Engine, brand_id: int, timezone: str, batches: list[tuple[Principal, list[Any]]]
) -> list[dict[str, Any]]:
    """Store each valid event of every batch once, in one transaction; per batch, report
    created / duplicate / rejected per item, in order."""
    now = datetime.now(UTC)
    parsed: list[list[_Row | Rejected]] = []
    keys: set[str] = set()
    for _, items in batches:
        out: list[_Row | Rejected] = []
        for n, item in enumerate(items):
            try:
                row = _parse(item, n, timezone, now)
            except Rejected as e:
                out.append(e)
                continue
            if row.customer is not None:
                keys.add(row.customer)
            out.append(row)
        parsed.append(out)
    results: list[dict[str, Any]] = []
    with engine.begin() as conn:
        found, why = _resolve(conn, brand_id, keys)
        hidden: dict[int, set[int]] = {}  # per batch: customers outside the caller's scope
        for b, (who, _) in enumerate(batches):
            named = {found[r.customer] for r in parsed[b] if isinstance(r, _Row) and r.customer
                     in found}  # fmt: skip
            hidden[b] = _outside(conn, who, named)
        rows: list[dict[str, Any]] = []
        for b, out in enumerate(parsed):
            for n, r in enumerate(out):
                if not isinstance(r, _Row):
                    continue
                cid = None
                if r.customer is not None:
                    cid = found.get(r.customer)
                    if cid is None or cid in hidden[b]:
                        # outside the scope reads exactly like a customer that does not exist
                        message = why.get(r.customer) or f"no customer {r.customer}"
                        out[n] = Rejected("customer", message)
                        continue
                rows.append({"brand_id": brand_id, "type": r.type, "idempotency_key": r.key,
                             "customer_id": cid, "occurred_at": r.occurred_at,
                             "recorded_at": now, "payload": r.payload})  # fmt: skip
        created = _insert(conn, rows)
    for out in parsed:
        items_out: list[dict[str, Any]] = []
        for n, r in enumerate(out):
            if isinstance(r, Rejected):
                field = f"events[{n}]" + (f".{r.field}" if r.field else "")
                items_out.append({"status": "rejected", "field": field, "message": str(r)})
            elif r.key in created:
                created.discard(r.key)  # a key twice in one batch: the second is a duplicate
                items_out.append({"status": "created", "idempotency_key": r.key})
            else:
                items_out.append({"status": "duplicate", "idempotency_key": r.key})
        counts = {s: sum(x["status"] == s for x in items_out)
                  for s in ("created", "duplicate", "rejected")}  # fmt: skip
        results.append({**counts, "results": items_out})
    return results
