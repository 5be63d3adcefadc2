"""The outbox: every outbound action is a row before it is sent, and is sent at most once.

- `enqueue` inserts rows, ignoring any whose (brand, dedup_key) exists: re-running a trigger
  cannot create a second message.
- `claim` hands a worker a batch of due rows. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several
  workers claim disjoint batches; on SQLite the claim is one `BEGIN IMMEDIATE` write (a single
  writer at a time).
- `deliver` sends each claimed row through its adapter and records the receipt, a permanent
  refusal (failed) or a retry with exponential backoff (failed after `max_attempts`).
- `recover` handles rows whose worker died after claiming them: it asks the adapter what it knows
  of the row's key — sent rows are recorded as sent, unknown ones go back to pending. A row is
  never re-sent on a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from siyu.automation.adapters import Adapter, Outbound, Refused, Unavailable
from siyu.automation.models import OutboxItem
from siyu.db import utcnow

T = OutboxItem.__table__


@dataclass(frozen=True)
class Enqueue:
    dedup_key: str
    adapter: str
    customer_id: int | None
    payload: dict[str, Any]
    not_before: datetime | None = None


@dataclass(frozen=True)
class Claimed:
    """A row a worker holds: what it needs to send it and record the outcome."""

    id: int
    dedup_key: str
    adapter: str
    customer_id: int | None
    payload: dict[str, Any]
    attempts: int


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    errors: list[str] = field(default_factory=list)


def enqueue(engine: Engine, brand_id: int, items: Iterable[Enqueue]) -> int:
    """Insert the new items; returns how many were new (duplicates of a key are ignored)."""
    now = utcnow()
    rows = [
        {
            "brand_id": brand_id,
            "dedup_key": i.dedup_key,
            "adapter": i.adapter,
            "customer_id": i.customer_id,
            "payload": i.payload,
            "status": "pending",
            "attempts": 0,
            "not_before": i.not_before or now,
            "created_at": now,
        }
        for i in items
    ]
    if not rows:
        return 0
    dialect = engine.dialect.name
    stmt = (pg_insert(T) if dialect == "postgresql" else sqlite_insert(T)).on_conflict_do_nothing(
        index_elements=["brand_id", "dedup_key"]
    )
    with engine.begin() as conn:
        # RETURNING yields only the rows really inserted: duplicates are skipped silently.
        return len(conn.execute(stmt.returning(T.c.id), rows).all())


def claim(engine: Engine, worker: str, *, limit: int = 100) -> list[Claimed]:
    """Mark up to `limit` due pending rows as claimed by `worker` and return them."""
    now = utcnow()
    due = (
        select(T.c.id)
        .where(T.c.status == "pending", T.c.not_before <= now)
        .order_by(T.c.not_before, T.c.id)
        .limit(limit)
    )
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # On SQLite the UPDATE below takes the single write lock; its status guard means a row
        # another worker claimed in between is simply not ours.
        ids = [r[0] for r in conn.execute(due)]
        if not ids:
            return []
        conn.execute(
            update(T)
            .where(T.c.id.in_(ids), T.c.status == "pending")
            .values(status="claimed", claimed_by=worker, claimed_at=now)
        )
        rows = conn.execute(
            select(T.c.id, T.c.dedup_key, T.c.adapter, T.c.customer_id, T.c.payload, T.c.attempts)
            .where(T.c.id.in_(ids), T.c.claimed_by == worker)
            .order_by(T.c.id)
        ).all()
        return [Claimed(*r) for r in rows]


def _finish(engine: Engine, item_id: int, worker: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(T)
            .where(T.c.id == item_id, T.c.status == "claimed", T.c.claimed_by == worker)
            .values(**values)
        )


def deliver(
    engine: Engine,
    items: list[Claimed],
    adapters: Mapping[str, Adapter],
    worker: str,
    *,
    max_attempts: int = 5,
    backoff: timedelta = timedelta(seconds=30),
) -> DeliveryReport:
    report = DeliveryReport()
    for item in items:
        adapter = adapters.get(item.adapter)
        if adapter is None:
            _finish(engine, item.id, worker, status="failed", done_at=utcnow(),
                    error=f"no adapter named {item.adapter!r}")  # fmt: skip
            report.failed += 1
            continue
        try:
            sent = adapter.send(Outbound(item.dedup_key, item.customer_id, item.payload))
        except Refused as e:
            _finish(engine, item.id, worker, status="failed", done_at=utcnow(),
                    attempts=item.attempts + 1, error=str(e)[:500])  # fmt: skip
            report.failed += 1
        except Unavailable as e:
            attempts = item.attempts + 1
            if attempts >= max_attempts:
                _finish(engine, item.id, worker, status="failed", done_at=utcnow(),
                        attempts=attempts, error=f"gave up after {attempts} attempts: {e}"[:500])  # fmt: skip
                report.failed += 1
            else:
                _finish(engine, item.id, worker, status="pending", attempts=attempts,
                        not_before=utcnow() + backoff * 2 ** (attempts - 1),
                        claimed_by=None, claimed_at=None, error=str(e)[:500])  # fmt: skip
                report.retrying += 1
        else:
            _finish(engine, item.id, worker, status="sent", done_at=utcnow(),
                    attempts=item.attempts + 1, error=None,
                    result={"reference": sent.reference, **sent.detail})  # fmt: skip
            report.sent += 1
    return report


def recover(
    engine: Engine, adapters: Mapping[str, Adapter], *, lease: timedelta = timedelta(minutes=5)
) -> tuple[int, int]:
    """Resolve rows claimed longer than `lease` ago (their worker died): (recorded as sent,
    returned to pending)."""
    cutoff = utcnow() - lease
    with engine.connect() as conn:
        stale = conn.execute(
            select(T.c.id, T.c.dedup_key, T.c.adapter, T.c.claimed_by).where(
                and_(T.c.status == "claimed", T.c.claimed_at < cutoff)
            )
        ).all()
    sent = requeued = 0
    for row in stale:
        adapter = adapters.get(row.adapter)
        if adapter is None:
            continue
        receipt = adapter.lookup(row.dedup_key)
        if receipt is not None:
            _finish(engine, row.id, row.claimed_by, status="sent", done_at=utcnow(),
                    result={"reference": receipt.reference, **receipt.detail, "recovered": True})  # fmt: skip
            sent += 1
        else:
            _finish(engine, row.id, row.claimed_by, status="pending", claimed_by=None,
                    claimed_at=None)  # fmt: skip
            requeued += 1
    return sent, requeued


def run_once(
    engine: Engine, adapters: Mapping[str, Adapter], worker: str, *, limit: int = 100
) -> DeliveryReport:
    """One worker turn: recover stale claims, claim a batch, deliver it."""
    recover(engine, adapters)
    return deliver(engine, claim(engine, worker, limit=limit), adapters, worker)
