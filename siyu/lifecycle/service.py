"""The daily per-customer attribute pass (SPEC §6): one set-based statement writes a dated
snapshot of every customer's lifecycle stage, value layer, RFM scores and class, business
quadrant and loyal / super-user flags into the warehouse, so transitions between two days are a
join, and each lifecycle change becomes a `lifecycle.changed` event for the SOP engine.

The attributes come from siyu/metrics/sql/customer_attributes.sql, which joins the one file per
definition that the metrics report also reads. "As of DATE" is the instant DATE begins in the
brand's zone — the same instant as `siyu metrics --to DATE` — so a snapshot and the report's
lifecycle distribution agree.

The pass first stores the day's per-customer order figures (customer_orders.sql: paid orders
all time and in the trailing windows of the SPEC constants) in `customer_orders_daily`, then
computes the attributes from that table (customer_orders_stored.sql stands in for the
aggregation), so 100M orders are grouped once into a table on disk rather than held in memory.

Next to each snapshot the pass notes what it was computed with (zone, SPEC constants, the
layout of its tables) and when the warehouse's sources last changed (siyu.warehouse.sync
`_mirror_changes`). A segment rule asked as of the start of that day reads lifecycle, RFM,
quadrant and those order figures from the two tables instead of recomputing them over every
order (`fresh_snapshot`) — only while nothing they were computed from has changed since, so
both ways give the same members.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
from sqlalchemy import Engine, text

from siyu.bulk import temp_table
from siyu.metrics.constants import Constants
from siyu.metrics.period import Period
from siyu.metrics.report import (
    LIFECYCLE_STAGES,
    QUADRANTS,
    RFM_CLASSES,
    SQL_PACKAGE,
    VALUE_LAYERS,
)
from siyu.metrics.scope import Scope, install
from siyu.warehouse.duck import composed, run
from siyu.warehouse.sync import changed_at

SNAPSHOT = "customer_attributes_daily"
COLUMNS = (
    ("stage", "VARCHAR"),
    ("days_since", "INTEGER"),
    ("value_layer", "VARCHAR"),
    ("rfm_r", "INTEGER"),
    ("rfm_f", "BIGINT"),
    ("rfm_m", "BIGINT"),
    ("r_score", "INTEGER"),
    ("f_score", "INTEGER"),
    ("m_score", "INTEGER"),
    ("rfm_class", "VARCHAR"),
    ("quadrant", "VARCHAR"),
    ("loyal", "BOOLEAN"),
    ("super_user", "BOOLEAN"),
)
# customer_orders.sql's columns for the as-of day, one row per customer with an order (any
# time: first_order_at looks past the day), exactly as it computes them.
ORDERS = "customer_orders_daily"
ORDER_COLUMNS = (
    ("first_order_at", "TIMESTAMPTZ"),
    ("paid_orders", "BIGINT"),
    ("last_paid_at", "TIMESTAMPTZ"),
    ("paid_net", "BIGINT"),
    ("paid_loyal_window", "BIGINT"),
    ("paid_super_window", "BIGINT"),
    ("paid_paying_window", "BIGINT"),
    ("paid_quadrant_window", "BIGINT"),
    ("net_quadrant_window", "BIGINT"),
)
# Bumped when the pass writes tables a reader relies on that it did not write before (2: the
# order figures), so a day written by an earlier version is never taken as fresh.
LAYOUT = 2
# What a snapshot was computed from: the mirrors customer_attributes.sql reads (directly or
# through the identifiers that key their facts) and their compute parameters.
WRITTEN = "customer_attributes_written"
STORED = (("customer_orders", "customer_orders_stored"),)  # read the day's stored order figures
SOURCES = ("customers", "identifiers", "orders", "connections", "interactions", "referrals")
NEW = "(new)"  # a customer without a row in the previous snapshot
GONE = "(gone)"  # a customer of the previous snapshot merged away since


@dataclass
class Snapshot:
    as_of: date
    previous: date | None
    customers: int
    stages: dict[str, int]
    layers: dict[str, int]
    rfm_classes: dict[str, int]
    quadrants: dict[str, int]
    loyal: int
    super_users: int
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    changed: int = 0  # customers whose stage differs from the previous snapshot
    events: int = 0  # lifecycle.changed events newly recorded


def as_of_period(day: date, timezone: str) -> Period:
    """The period ending at `day` (exclusive): its `end` is the as-of instant."""
    return Period(day - timedelta(days=1), day, timezone)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    cols = ", ".join(f"{n} {t}" for n, t in COLUMNS)
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {SNAPSHOT} (brand_id BIGINT, as_of DATE, "
        f"customer_id BIGINT, {cols}, PRIMARY KEY (brand_id, as_of, customer_id))"
    )
    cols = ", ".join(f"{n} {t}" for n, t in ORDER_COLUMNS)  # unique by the pass's DELETE first
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {ORDERS} (brand_id BIGINT, as_of DATE, customer_id BIGINT, "
        f"{cols})"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {WRITTEN} (brand_id BIGINT, as_of DATE, timezone VARCHAR, "
        "constants VARCHAR, sources_changed_at TIMESTAMPTZ, written_at TIMESTAMPTZ, "
        "PRIMARY KEY (brand_id, as_of))"
    )


def _constants_key(constants: Constants) -> str:
    return json.dumps({**constants.params(), "layout": LAYOUT}, sort_keys=True)


def fresh_snapshot(
    con: duckdb.DuckDBPyConnection, *, scope: Scope, at: datetime, constants: Constants
) -> date | None:
    """The day whose stored snapshot holds every customer's attributes at the instant `at`
    exactly, or None: `at` must be the start of that brand-local day, the scope unfiltered,
    the snapshot computed with the same zone and constants, and no source mirror changed by a
    sync since it was written."""
    if scope.filtered:
        return None
    day = as_of_day(at, scope.timezone)
    if day is None:
        return None
    ensure_table(con)
    row = con.execute(
        f"SELECT timezone, constants, epoch_us(sources_changed_at) FROM {WRITTEN} "
        "WHERE brand_id = ? AND as_of = ?",
        [scope.brand_id, day],
    ).fetchone()
    if row is None or row[0] != scope.timezone or row[1] != _constants_key(constants):
        return None
    if row[2] != changed_at(con, scope.brand_id, SOURCES):
        return None
    return day


def as_of_day(at: datetime, timezone: str) -> date | None:
    """The brand-local day that begins at the instant `at`, or None if `at` is not a midnight."""
    day = at.astimezone(ZoneInfo(timezone)).date()
    return day if as_of_period(day, timezone).end == at else None


def write_snapshot(
    con: duckdb.DuckDBPyConnection, *, scope: Scope, as_of: date, constants: Constants
) -> int:
    """Compute every customer's attributes as of `as_of` and store them (replacing a snapshot
    of the same day); the number of customers written."""
    ensure_table(con)
    install(con, scope)
    params: dict[str, Any] = {
        "brand_id": scope.brand_id,
        "as_of": as_of,
        **as_of_period(as_of, scope.timezone).params(),
        **constants.params(),
    }
    names = ", ".join(n for n, _ in COLUMNS)
    con.execute("BEGIN TRANSACTION")
    try:
        sources = changed_at(con, scope.brand_id, SOURCES)
        for table in (SNAPSHOT, ORDERS, WRITTEN):
            con.execute(
                f"DELETE FROM {table} WHERE brand_id = ? AND as_of = ?", [scope.brand_id, as_of]
            )
        orders = ", ".join(n for n, _ in ORDER_COLUMNS)
        run(
            con,
            f"INSERT INTO {ORDERS} (brand_id, as_of, customer_id, {orders}) "
            f"SELECT $brand_id, $as_of, customer_id, {orders} "
            f"FROM (\n{composed(SQL_PACKAGE, 'customer_orders')}\n)",
            params,
        )
        attributes = composed(SQL_PACKAGE, "customer_attributes", STORED)
        run(
            con,
            f"INSERT INTO {SNAPSHOT} (brand_id, as_of, customer_id, {names}) "
            f"SELECT $brand_id, $as_of, customer_id, {names} FROM (\n{attributes}\n)",
            params,
        )
        con.execute(
            f"INSERT INTO {WRITTEN} VALUES (?, ?, ?, ?, make_timestamptz(?::BIGINT), now())",
            [scope.brand_id, as_of, scope.timezone, _constants_key(constants), sources],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    row = con.execute(
        f"SELECT count(*) FROM {SNAPSHOT} WHERE brand_id = ? AND as_of = ?",
        [scope.brand_id, as_of],
    ).fetchone()
    return int(row[0]) if row else 0


def previous_day(con: duckdb.DuckDBPyConnection, *, brand_id: int, as_of: date) -> date | None:
    ensure_table(con)
    row = con.execute(
        f"SELECT max(as_of) FROM {SNAPSHOT} WHERE brand_id = ? AND as_of < ?", [brand_id, as_of]
    ).fetchone()
    return row[0] if row else None


def _counts(
    con: duckdb.DuckDBPyConnection, brand_id: int, as_of: date, column: str, keys: tuple[str, ...]
) -> dict[str, int]:
    found = dict(
        con.execute(
            f"SELECT {column}, count(*) FROM {SNAPSHOT} WHERE brand_id = ? AND as_of = ? "
            f"AND {column} IS NOT NULL GROUP BY {column}",
            [brand_id, as_of],
        ).fetchall()
    )
    return {k: int(found.get(k, 0)) for k in keys}


def summarize(con: duckdb.DuckDBPyConnection, *, brand_id: int, as_of: date) -> Snapshot:
    """Distributions of a stored snapshot and its stage transitions from the one before."""
    previous = previous_day(con, brand_id=brand_id, as_of=as_of)
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE loyal), count(*) FILTER (WHERE super_user) "
        f"FROM {SNAPSHOT} WHERE brand_id = ? AND as_of = ?",
        [brand_id, as_of],
    ).fetchone()
    assert row is not None
    snap = Snapshot(
        as_of=as_of,
        previous=previous,
        customers=int(row[0]),
        stages=_counts(con, brand_id, as_of, "stage", LIFECYCLE_STAGES),
        layers=_counts(con, brand_id, as_of, "value_layer", VALUE_LAYERS),
        rfm_classes=_counts(con, brand_id, as_of, "rfm_class", RFM_CLASSES),
        quadrants=_counts(con, brand_id, as_of, "quadrant", QUADRANTS),
        loyal=int(row[1]),
        super_users=int(row[2]),
    )
    if previous is not None:
        rows = con.execute(
            f"SELECT coalesce(p.stage, '{NEW}'), coalesce(c.stage, '{GONE}'), count(*) "
            f"FROM (SELECT customer_id, stage FROM {SNAPSHOT} WHERE brand_id = $b AND as_of = $p) p "
            f"FULL JOIN (SELECT customer_id, stage FROM {SNAPSHOT} "
            f"WHERE brand_id = $b AND as_of = $c) c ON c.customer_id = p.customer_id "
            "GROUP BY ALL",
            {"b": brand_id, "p": previous, "c": as_of},
        ).fetchall()
        snap.transitions = {(a, b): int(n) for a, b, n in rows}
        snap.changed = sum(
            n for (a, b), n in snap.transitions.items() if a != b and NEW not in a and GONE not in b
        )
    return snap


def changes(
    con: duckdb.DuckDBPyConnection, *, brand_id: int, as_of: date, previous: date
) -> list[tuple[int, str, str]]:
    """(customer, stage before, stage now) for every customer whose stage changed."""
    return [
        (int(c), a, b)
        for c, a, b in con.execute(
            f"SELECT c.customer_id, p.stage, c.stage FROM {SNAPSHOT} c "
            f"JOIN {SNAPSHOT} p ON p.customer_id = c.customer_id AND p.brand_id = c.brand_id "
            "AND p.as_of = ? WHERE c.brand_id = ? AND c.as_of = ? AND p.stage <> c.stage "
            "ORDER BY c.customer_id",
            [previous, brand_id, as_of],
        ).fetchall()
    ]


def emit_changes(
    engine: Engine,
    *,
    brand_id: int,
    as_of: date,
    occurred_at: datetime,
    rows: list[tuple[int, str, str]],
) -> int:
    """Record a `lifecycle.changed` event per changed customer, once per (customer, day): a
    re-run of the same day adds nothing. The number of events newly recorded."""
    if not rows:
        return 0
    staged = [
        (
            f"lifecycle.changed:{cid}:{as_of.isoformat()}",
            cid,
            json.dumps({"from": a, "to": b, "as_of": as_of.isoformat()}),
        )
        for cid, a, b in rows
    ]
    with engine.begin() as conn:
        temp_table(
            conn,
            "lifecycle_change",
            [("idem", "VARCHAR(200)"), ("customer_id", "BIGINT"), ("payload", "TEXT")],
            staged,
        )
        payload = "CAST(payload AS JSON)" if conn.dialect.name == "postgresql" else "payload"
        result = conn.execute(
            text(
                "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
                f"recorded_at, payload) SELECT :b, 'lifecycle.changed', idem, customer_id, :at, "
                f":now, {payload} FROM lifecycle_change WHERE true "
                "ON CONFLICT (brand_id, idempotency_key) DO NOTHING"
            ),
            {"b": brand_id, "at": occurred_at, "now": datetime.now(occurred_at.tzinfo)},
        )
        conn.execute(text("DROP TABLE lifecycle_change"))
        return int(result.rowcount or 0)


def run_daily(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    *,
    scope: Scope,
    as_of: date,
    constants: Constants,
) -> Snapshot:
    """The whole pass: snapshot, summary with transitions, and the lifecycle.changed events."""
    write_snapshot(con, scope=scope, as_of=as_of, constants=constants)
    snap = summarize(con, brand_id=scope.brand_id, as_of=as_of)
    if snap.previous is not None:
        rows = changes(con, brand_id=scope.brand_id, as_of=as_of, previous=snap.previous)
        at = as_of_period(as_of, scope.timezone).end
        snap.events = emit_changes(
            engine, brand_id=scope.brand_id, as_of=as_of, occurred_at=at, rows=rows
        )
    return snap
