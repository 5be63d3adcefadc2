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

import orjson
from sqlalchemy import Engine, and_, func, select, text, update

from siyu import pii
from siyu.automation.adapters import (
    Adapter,
    InDoubt,
    Outbound,
    Outcome,
    Refused,
    Unavailable,
    lookup_batch,
    send_batch,
)
from siyu.automation.models import OutboxItem
from siyu.automation.results import Result
from siyu.automation.results import record as record_results
from siyu.db import sqlite_ts, utcnow

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
    in_doubt: int = 0  # left claimed for `recover` to resolve
    errors: list[str] = field(default_factory=list)


PART = 50_000  # rows per transaction when a large fan-out is split
PARALLEL = 2  # parts in flight on PostgreSQL: one builds and COPYs while the other inserts


def enqueue(engine: Engine, brand_id: int, items: Iterable[Enqueue]) -> int:
    """Insert the new items in bulk; returns how many were new (a key already there is skipped).

    Rows go to a temporary table (COPY on PostgreSQL, executemany on SQLite) and into the outbox
    with one INSERT … SELECT … ON CONFLICT DO NOTHING, so re-running a fan-out inserts nothing.
    On PostgreSQL a large fan-out is split into parts of `PART` rows, `PARALLEL` of them in
    flight on their own connections (each part is its own transaction; a crash part-way leaves
    whole parts, and running the fan-out again adds the rest).
    """
    rows = list(items)
    if not rows:
        return 0
    if engine.dialect.name != "postgresql" or len(rows) <= PART:
        return _enqueue_part(engine, brand_id, rows)
    parts = [rows[i : i + PART] for i in range(0, len(rows), PART)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        new = sum(pool.map(lambda part: _enqueue_part(engine, brand_id, part), parts))
    # Fresh statistics now, not when autovacuum gets round to it: with the table's old counts
    # the planner sorts every pending row on each claim instead of reading the claim index.
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE outbox")
    return new


def _enqueue_part(engine: Engine, brand_id: int, items: list[Enqueue]) -> int:
    now = utcnow()
    pg = engine.dialect.name == "postgresql"
    rows = [
        (
            i.dedup_key,
            i.adapter,
            i.customer_id,
            orjson.dumps(i.payload, option=orjson.OPT_NON_STR_KEYS).decode(),
            (i.not_before or now) if pg else sqlite_ts(i.not_before or now),
        )
        for i in items
    ]
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
            {"brand": brand_id, "now": now if pg else sqlite_ts(now)},
        )
        conn.exec_driver_sql("DROP TABLE enqueue_batch")
        return int(done.rowcount)


def claim(engine: Engine, worker: str, *, limit: int = 100) -> list[Claimed]:
    """Mark up to `limit` due pending rows as claimed by `worker` and return them: one
    UPDATE … WHERE id IN (due rows FOR UPDATE SKIP LOCKED) … RETURNING. On SQLite the UPDATE
    takes the single write lock; its status guard means a row another worker claimed in
    between is simply not ours."""
    now = utcnow()
    due = (
        select(T.c.id)
        .where(T.c.status == "pending", T.c.not_before <= now)
        .order_by(T.c.not_before, T.c.id)
        .limit(limit)
    )
    ids: Any = due.scalar_subquery()
    if engine.dialect.name == "postgresql":
        # id = ANY(ARRAY(…)): primary-key lookups; `IN (subquery)` is planned as a hash semi
        # join over a scan of the whole outbox.
        ids = func.array(due.with_for_update(skip_locked=True).scalar_subquery())
        where = T.c.id == func.any(ids)
    else:
        where = T.c.id.in_(ids)
    with engine.begin() as conn:
        rows = conn.execute(
            update(T)
            .where(where, T.c.status == "pending")
            .values(status="claimed", claimed_by=worker, claimed_at=now)
            .returning(
                T.c.id, T.c.dedup_key, T.c.adapter, T.c.customer_id, T.c.payload, T.c.attempts
            )  # fmt: skip
        ).all()
    return sorted((Claimed(*r) for r in rows), key=lambda c: c.id)


def _finish(engine: Engine, item_id: int, worker: str, **values: Any) -> None:
    _record(engine, [(item_id, worker, values)])


_PG_RECORD = """
UPDATE outbox AS o SET
    status = v.status,
    attempts = COALESCE(v.attempts, o.attempts),
    error = v.error,
    result = COALESCE(v.result, o.result),
    not_before = COALESCE(v.not_before, o.not_before),
    done_at = v.done_at,
    claimed_by = CASE WHEN v.status = 'pending' THEN NULL ELSE o.claimed_by END,
    claimed_at = CASE WHEN v.status = 'pending' THEN NULL ELSE o.claimed_at END
FROM json_to_recordset(CAST(:data AS json)) AS v(
    id bigint, worker text, status text, attempts int, error text, result json,
    not_before timestamptz, done_at timestamptz)
WHERE o.id = v.id AND o.status = 'claimed' AND o.claimed_by = v.worker
RETURNING o.id
"""
_SQLITE_RECORD = """
UPDATE outbox SET
    status = v.status,
    attempts = COALESCE(v.attempts, outbox.attempts),
    error = v.error,
    result = COALESCE(v.result, outbox.result),
    not_before = COALESCE(v.not_before, outbox.not_before),
    done_at = v.done_at,
    claimed_by = CASE WHEN v.status = 'pending' THEN NULL ELSE outbox.claimed_by END,
    claimed_at = CASE WHEN v.status = 'pending' THEN NULL ELSE outbox.claimed_at END
FROM (SELECT json_extract(j.value, '$.id') AS id, json_extract(j.value, '$.worker') AS worker,
             json_extract(j.value, '$.status') AS status,
             json_extract(j.value, '$.attempts') AS attempts,
             json_extract(j.value, '$.error') AS error, json_extract(j.value, '$.result') AS result,
             json_extract(j.value, '$.not_before') AS not_before,
             json_extract(j.value, '$.done_at') AS done_at
      FROM json_each(:data) AS j) AS v
WHERE outbox.id = v.id AND outbox.status = 'claimed' AND outbox.claimed_by = v.worker
RETURNING outbox.id
"""
_FIELDS = ("status", "attempts", "error", "result", "not_before", "done_at")


def _record(
    engine: Engine,
    outcomes: list[tuple[int, str, dict[str, Any]]],
    results: Mapping[str, list[Result]] | None = None,
) -> set[int]:
    """Write a batch of (row id, worker, values) with one set-based UPDATE, each row only if
    that worker still holds it, plus the delivery results of the rows it did update, all in one
    transaction. Returns the ids updated."""
    if not outcomes:
        return set()
    pg = engine.dialect.name == "postgresql"

    def ts(at: datetime | None) -> str | None:
        if at is None:
            return None
        return at.astimezone(UTC).isoformat() if pg else sqlite_ts(at)

    data = [
        {
            "id": item_id,
            "worker": worker,
            **{k: values.get(k) for k in _FIELDS},
            "not_before": ts(values.get("not_before")),
            "done_at": ts(values.get("done_at")),
        }
        for item_id, worker, values in outcomes
    ]
    with engine.begin() as conn:
        done = {
            r[0]
            for r in conn.execute(
                text(_PG_RECORD if pg else _SQLITE_RECORD),
                {"data": json.dumps(data, ensure_ascii=False)},
            )
        }
        for channel, found in (results or {}).items():
            record_results(conn, channel, [r for r in found if r.outbox_id in done])
    return done


def _values(item: Claimed, outcome: Outcome, max_attempts: int, backoff: timedelta,
            now: datetime) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """(kind, values to record) for one row's outcome; kind sent / failed / retrying."""
    attempts = item.attempts + 1
    # A provider's message may quote the number it refused: stored masked (siyu.pii.redact).
    if isinstance(outcome, Refused):
        return "failed", {"status": "failed", "done_at": now, "attempts": attempts,
                          "error": pii.redact(str(outcome))[:500]}  # fmt: skip
    if isinstance(outcome, Unavailable):
        if attempts >= max_attempts:
            return "failed", {"status": "failed", "done_at": now, "attempts": attempts,
                              "error": pii.redact(f"gave up after {attempts} attempts: "
                                                  f"{outcome}")[:500]}  # fmt: skip
        return "retrying", {"status": "pending", "attempts": attempts,
                            "error": pii.redact(str(outcome))[:500],
                            "not_before": now + backoff * 2 ** (attempts - 1)}  # fmt: skip
    return "sent", {"status": "sent", "done_at": now, "attempts": attempts, "error": None,
                    "result": {"reference": outcome.reference, **outcome.detail}}  # fmt: skip


def _opened(
    engine: Engine, rows: list[Claimed], worker: str
) -> tuple[list[Outbound | None], dict[int, Outcome]]:
    """Each row as the adapter gets it, its sealed payload values opened (`phone_sealed` →
    `phone`); a value that cannot be opened refuses its row, with the reason."""
    ring = pii.keyring(engine) if any(pii.has_sealed(r.payload) for r in rows) else None
    opened: list[Outbound | None] = []
    refused: dict[int, Outcome] = {}
    for n, r in enumerate(rows):
        try:
            payload = pii.unsealed(ring, r.payload) if ring is not None else r.payload
        except pii.PiiError as e:
            opened.append(None)
            refused[n] = Refused(str(e))
            continue
        opened.append(Outbound(r.dedup_key, r.customer_id, payload, r.id, worker))
    return opened, refused


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
    """Send claimed rows — grouped by adapter, one `send_batch` per adapter (the adapters run
    side by side) — and record every outcome with one set-based UPDATE. Should the worker die
    before that commit, the rows stay claimed and `recover` asks the providers what was sent.

    Per row: sent; refused → failed at once; unavailable → back to pending with exponential
    backoff, failed after `max_attempts`. Adapters that know the outcome when they send
    (`reports_on_send`, e.g. SMS) get their delivery rows and events in the same transaction.
    """
    report = DeliveryReport()
    if not items:
        return report
    groups: dict[str, list[Claimed]] = {}
    for i in items:
        groups.setdefault(i.adapter, []).append(i)

    def run(name: str, rows: list[Claimed]) -> list[Outcome]:
        adapter = adapters.get(name)
        if adapter is None:
            return [Refused(f"no adapter named {name!r}") for _ in rows]
        # Sealed personal data (an SMS's phone) is opened here, in memory, for the adapter.
        opened, refused = _opened(engine, rows, worker)
        batch = [b for b in opened if b is not None]
        try:
            sent = send_batch(adapter, batch, concurrency=concurrency) if batch else []
        except (Refused, Unavailable, InDoubt) as e:  # the whole batch
            sent = [e for _ in batch]
        answers = iter(sent)
        return [refused[n] if b is None else next(answers) for n, b in enumerate(opened)]

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        futures = {name: pool.submit(run, name, rows) for name, rows in groups.items()}
        answers = {name: f.result() for name, f in futures.items()}
    now = utcnow()
    outcomes: list[tuple[int, str, dict[str, Any]]] = []
    results: dict[str, list[Result]] = {}
    for name, rows in groups.items():
        adapter = adapters.get(name)
        channel = getattr(adapter, "channel", name) if adapter else name
        on_send = bool(getattr(adapter, "reports_on_send", False))
        for row, outcome in zip(rows, answers[name], strict=True):
            if isinstance(outcome, InDoubt):
                report.in_doubt += 1
                continue
            kind, values = _values(row, outcome, max_attempts, backoff, now)
            if adapter is None:
                values.pop("attempts")
            outcomes.append((row.id, worker, values))
            setattr(report, kind, getattr(report, kind) + 1)
            if kind == "failed" and values.get("error"):
                report.errors.append(values["error"])
            if on_send and kind != "retrying":
                status = "delivered" if kind == "sent" else "failed"
                results.setdefault(channel, []).append(
                    Result(row.id, status, now, values.get("error"))
                )
    _record(engine, outcomes, results)
    return report


def recover(
    engine: Engine, adapters: Mapping[str, Adapter], *, lease: timedelta = timedelta(minutes=5)
) -> tuple[int, int]:
    """Resolve rows claimed longer than `lease` ago (their worker died): (recorded as sent,
    returned to pending). The adapter is asked about each row (in batches); a row it has no
    record of goes back to pending — never re-sent on a guess."""
    cutoff = utcnow() - lease
    with engine.connect() as conn:
        stale = conn.execute(
            select(
                T.c.id, T.c.dedup_key, T.c.adapter, T.c.claimed_by, T.c.customer_id, T.c.payload
            )  # fmt: skip
            .where(and_(T.c.status == "claimed", T.c.claimed_at < cutoff))
            .order_by(T.c.id)
        ).all()
    groups: dict[str, list[Any]] = {}
    for row in stale:
        groups.setdefault(row.adapter, []).append(row)
    sent = requeued = 0
    now = utcnow()
    for name, rows in groups.items():
        adapter = adapters.get(name)
        if adapter is None:
            continue
        # A lookup goes by key; the payload is passed as stored (sealed values stay sealed).
        try:
            receipts = lookup_batch(
                adapter, [Outbound(r.dedup_key, r.customer_id, r.payload, r.id) for r in rows]
            )
        except Unavailable:  # ask again next turn; the rows stay claimed meanwhile
            continue
        outcomes: list[tuple[int, str, dict[str, Any]]] = []
        results: list[Result] = []
        for row, receipt in zip(rows, receipts, strict=True):
            if receipt is not None:
                result = {"reference": receipt.reference, **receipt.detail, "recovered": True}
                outcomes.append((row.id, row.claimed_by, {"status": "sent", "done_at": now,
                                                          "result": result}))  # fmt: skip
                results.append(Result(row.id, "delivered", now))
            else:
                outcomes.append((row.id, row.claimed_by, {"status": "pending"}))
        channel = getattr(adapter, "channel", name)
        on_send = bool(getattr(adapter, "reports_on_send", False))
        done = _record(engine, outcomes, {channel: results} if on_send else None)
        for item_id, _, values in outcomes:
            if item_id in done:
                if values["status"] == "sent":
                    sent += 1
                else:
                    requeued += 1
    return sent, requeued


def run_once(
    engine: Engine,
    adapters: Mapping[str, Adapter],
    worker: str,
    *,
    limit: int = 100,
    lease: timedelta = timedelta(minutes=5),
) -> DeliveryReport:
    """One worker turn: recover stale claims, claim a batch, deliver it."""
    recover(engine, adapters, lease=lease)
    return deliver(engine, claim(engine, worker, limit=limit), adapters, worker)


def run_lanes(
    engine: Engine,
    adapters: Mapping[str, Adapter],
    worker: str,
    *,
    lanes: int = 2,
    limit: int = 1000,
    lease: timedelta = timedelta(minutes=5),
) -> DeliveryReport:
    """One worker turn in `lanes` parallel lanes (threads, each claiming its own batch as
    `worker/lane`): one lane's database work overlaps another's sends. Lane 0 also recovers
    stale claims. Returns the lanes' totals."""
    if lanes <= 1:
        return run_once(engine, adapters, worker, limit=limit, lease=lease)
    recover(engine, adapters, lease=lease)

    def lane(n: int) -> DeliveryReport:
        return deliver(engine, claim(engine, f"{worker}/{n}", limit=limit), adapters,
                       f"{worker}/{n}")  # fmt: skip

    total = DeliveryReport()
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for r in pool.map(lane, range(lanes)):
            total.sent += r.sent
            total.failed += r.failed
            total.retrying += r.retrying
            total.in_doubt += r.in_doubt
            total.errors += r.errors
    return total
