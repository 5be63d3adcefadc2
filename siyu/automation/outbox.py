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

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select, text, update

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
    """Insert the new items in bulk; returns how many were new (a key already there is skipped).

    Rows go to a temporary table (COPY on PostgreSQL, executemany on SQLite) and into the outbox
    with one INSERT … SELECT … ON CONFLICT DO NOTHING, so a fan-out of a million recipients is
    one statement, and re-running it inserts nothing.
    """
    now = utcnow()
    pg = engine.dialect.name == "postgresql"
    rows = [
        (
            i.dedup_key,
            i.adapter,
            i.customer_id,
            json.dumps(i.payload, ensure_ascii=False),
            (i.not_before or now) if pg else _sqlite_ts(i.not_before or now),
        )
        for i in items
    ]
    if not rows:
        return 0
    ts_type = "TIMESTAMPTZ" if pg else "VARCHAR(32)"
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS enqueue_batch")
        conn.exec_driver_sql(
            "CREATE TEMPORARY TABLE enqueue_batch (dedup_key VARCHAR(200), adapter VARCHAR(32), "
            f"customer_id BIGINT, payload TEXT, not_before {ts_type})"
        )
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cols = "dedup_key, adapter, customer_id, payload, not_before"
        if pg:
            with raw.cursor() as cur, cur.copy(f"COPY enqueue_batch ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        else:
            cur = raw.cursor()
            cur.executemany(f"INSERT INTO enqueue_batch ({cols}) VALUES (?, ?, ?, ?, ?)", rows)
            cur.close()
        payload = "CAST(b.payload AS JSON)" if pg else "b.payload"
        done = conn.execute(
            text(
                "INSERT INTO outbox (brand_id, dedup_key, adapter, customer_id, payload, status, "
                "attempts, not_before, created_at) "
                f"SELECT :brand, b.dedup_key, b.adapter, b.customer_id, {payload}, 'pending', 0, "
                "b.not_before, :now FROM enqueue_batch b WHERE true "
                "ON CONFLICT (brand_id, dedup_key) DO NOTHING"
            ).execution_options(preserve_rowcount=True),
            {"brand": brand_id, "now": now if pg else _sqlite_ts(now)},
        )
        conn.exec_driver_sql("DROP TABLE enqueue_batch")
        return int(done.rowcount)


def _sqlite_ts(at: datetime) -> str:
    """A UTC instant as SQLAlchemy stores DateTime on SQLite."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


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
    _record(engine, worker, [(item_id, values)])


def _record(engine: Engine, worker: str, outcomes: list[tuple[int, dict[str, Any]]]) -> None:
    """Write a batch of outcomes in one transaction, each only if `worker` still holds the row."""
    with engine.begin() as conn:
        for item_id, values in outcomes:
            conn.execute(
                update(T)
                .where(T.c.id == item_id, T.c.status == "claimed", T.c.claimed_by == worker)
                .values(**values)
            )


def _outcome(
    item: Claimed, adapter: Adapter | None, max_attempts: int, backoff: timedelta
) -> tuple[str, dict[str, Any]]:
    """Send one row; (kind, values to record) with kind sent / failed / retrying."""
    if adapter is None:
        return "failed", {"status": "failed", "done_at": utcnow(),
                          "error": f"no adapter named {item.adapter!r}"}  # fmt: skip
    attempts = item.attempts + 1
    try:
        sent = adapter.send(Outbound(item.dedup_key, item.customer_id, item.payload))
    except Refused as e:
        return "failed", {"status": "failed", "done_at": utcnow(), "attempts": attempts,
                          "error": str(e)[:500]}  # fmt: skip
    except Unavailable as e:
        if attempts >= max_attempts:
            return "failed", {"status": "failed", "done_at": utcnow(), "attempts": attempts,
                              "error": f"gave up after {attempts} attempts: {e}"[:500]}  # fmt: skip
        return "retrying", {"status": "pending", "attempts": attempts, "claimed_by": None,
                            "claimed_at": None, "error": str(e)[:500],
                            "not_before": utcnow() + backoff * 2 ** (attempts - 1)}  # fmt: skip
    return "sent", {"status": "sent", "done_at": utcnow(), "attempts": attempts, "error": None,
                    "result": {"reference": sent.reference, **sent.detail}}  # fmt: skip


def deliver(
    engine: Engine,
    items: list[Claimed],
    adapters: Mapping[str, Adapter],
    worker: str,
    *,
    max_attempts: int = 5,
    backoff: timedelta = timedelta(seconds=30),
    concurrency: int = 16,
) -> DeliveryReport:
    """Send claimed rows (up to `concurrency` requests in flight) and record every outcome in
    one transaction. Should the worker die before that commit, the rows stay claimed and
    `recover` asks the providers what was sent."""
    report = DeliveryReport()
    if not items:
        return report
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        outcomes = list(
            pool.map(lambda i: _outcome(i, adapters.get(i.adapter), max_attempts, backoff), items)
        )
    _record(
        engine, worker, [(i.id, values) for i, (_, values) in zip(items, outcomes, strict=True)]
    )
    for kind, values in outcomes:
        setattr(report, kind, getattr(report, kind) + 1)
        if kind == "failed" and values.get("error"):
            report.errors.append(values["error"])
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
