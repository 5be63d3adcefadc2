"""The per-customer order summary the warehouse keeps beside the orders mirror.

One row per (brand, customer) with at least one order: the first non-cancelled order and the
paid orders' number, net sales and last instant, over all of the customer's orders. None of it
depends on an as-of date, so `siyu warehouse sync` keeps it exact incrementally: it recomputes
the rows of the customers whose orders it touched (orders re-read since the last sync, with their
owners before and after; orders re-keyed by a merge or an unmerge, both sides) and rebuilds it
whole when it copies the orders whole.

siyu/metrics/sql/customer_orders_lifetime.sql turns it into exactly customer_orders.sql's lifetime
columns as of `to` (less the paid orders from `to` on), for the files that read nothing else
(`LIFETIME_FILES`) and for segment leaves on all paid orders. The trailing windows (orders in the
last 30/90/365 days) cannot come from it exactly without reading the orders inside them, and
aggregating those costs as much as aggregating every order (bench/RESULTS.md), so the daily pass
keeps reading customer_orders.sql. The summary is read only for an unfiltered scope (a store or
channel filter narrows the orders) and once a sync has built it for the brand (`usable`): a
warehouse written some other way (bench data, an older version's file before its first sync) is
read from the orders.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from siyu.metrics.scope import ORDER_FLAGS, Scope

TABLE = "customer_order_summary"
STATE = "_order_summary_state"  # a row per brand whose summary a sync has built
DIRTY = "_order_summary_dirty"  # temp: customers whose rows this sync recomputes
# customer_orders.sql's lifetime columns from the summary (siyu.warehouse.duck.composed `swap`),
# and the definition files that read only those columns of it.
LIFETIME = (("customer_orders", "customer_orders_lifetime"),)
LIFETIME_FILES = ("lifecycle_stage", "rfm")
# As of a day with more of the orders after it than this, the orders are read instead: the
# customers who ordered again since need their own orders looked through (bench/segments.py:
# 12.5 % after the instant made the summary slower than the orders, none made it 2-10x faster).
LATE_SHARE = 0.01

_AGGREGATE = (
    "SELECT brand_id, customer_id, "
    "min(created_at) FILTER (WHERE NOT cancelled) AS first_order_at, "
    "count(*) FILTER (WHERE paid) AS paid_orders, "
    "sum(amount_fen - refund_fen) FILTER (WHERE paid) AS paid_net, "
    "max(created_at) FILTER (WHERE paid) AS last_paid_at "
    f"FROM (SELECT brand_id, customer_id, created_at, amount_fen, {ORDER_FLAGS} FROM orders "
    "WHERE brand_id = $brand_id AND customer_id IS NOT NULL{only}) "
    "GROUP BY brand_id, customer_id"
)


def ensure(con: duckdb.DuckDBPyConnection, *, reset: bool = False) -> None:
    """Create the summary tables; `reset` (the mirrors were rebuilt empty) forgets every brand's
    summary until its next sync builds it again."""
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (brand_id BIGINT, customer_id BIGINT, "
        "first_order_at TIMESTAMPTZ, paid_orders BIGINT, paid_net HUGEINT, "
        "last_paid_at TIMESTAMPTZ)"
    )
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE} (brand_id BIGINT PRIMARY KEY, built_at TIMESTAMPTZ)"
    )
    if reset:
        con.execute(f"DELETE FROM {STATE}")
        con.execute(f"DELETE FROM {TABLE}")


def ready(con: duckdb.DuckDBPyConnection, brand_id: int) -> bool:
    """Whether a sync has built the brand's summary (and keeps it since)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [STATE]
    ).fetchone()
    if not row or not row[0]:
        return False
    row = con.execute(f"SELECT count(*) FROM {STATE} WHERE brand_id = ?", [brand_id]).fetchone()
    return bool(row and row[0])


def usable(con: duckdb.DuckDBPyConnection, scope: Scope) -> bool:
    """Whether the summary can serve `scope`: unfiltered, and built by a sync for its brand."""
    return not scope.filtered and ready(con, scope.brand_id)


def pays_off(con: duckdb.DuckDBPyConnection, scope: Scope, at: datetime) -> bool:
    """Whether reading the summary as of `at` is worth it: usable, and at most `LATE_SHARE` of
    the brand's orders lie at or after `at` (each customer with one needs their own orders
    looked through; as of today there are next to none). Either way gives the same figures."""
    if not usable(con, scope):
        return False
    row = con.execute(
        "SELECT count(*) FILTER (WHERE created_at >= ?), count(*) FROM orders WHERE brand_id = ?",
        [at, scope.brand_id],
    ).fetchone()
    return bool(row) and row[0] <= LATE_SHARE * row[1]


def rebuild(con: duckdb.DuckDBPyConnection, brand_id: int) -> None:
    """Recompute the brand's whole summary from its orders (inside the caller's transaction)."""
    ensure(con)
    con.execute(f"DELETE FROM {TABLE} WHERE brand_id = ?", [brand_id])
    con.execute(
        f"INSERT INTO {TABLE} {_AGGREGATE.format(only='')}",
        {"brand_id": brand_id},
    )
    con.execute(f"INSERT OR REPLACE INTO {STATE} VALUES (?, now())", [brand_id])


def start_marking(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {DIRTY} (customer_id BIGINT)")


def mark(con: duckdb.DuckDBPyConnection, select: str) -> None:
    """Note customers (`select` yields customer ids) whose orders are about to change or just
    did, for `refresh`."""
    con.execute(
        f"INSERT INTO {DIRTY} SELECT customer_id FROM ({select}) t(customer_id) "
        "WHERE customer_id IS NOT NULL"
    )


def refresh(con: duckdb.DuckDBPyConnection, brand_id: int) -> int:
    """Recompute the rows of the marked customers; the number of customers marked."""
    row = con.execute(f"SELECT count(DISTINCT customer_id) FROM {DIRTY}").fetchone()
    n = int(row[0]) if row else 0
    if n:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {DIRTY}_ids AS SELECT DISTINCT customer_id FROM {DIRTY}"
        )
        con.execute(
            f"DELETE FROM {TABLE} WHERE brand_id = ? "
            f"AND customer_id IN (SELECT customer_id FROM {DIRTY}_ids)",
            [brand_id],
        )
        only = f" AND customer_id IN (SELECT customer_id FROM {DIRTY}_ids)"
        con.execute(f"INSERT INTO {TABLE} {_AGGREGATE.format(only=only)}", {"brand_id": brand_id})
        con.execute(f"DROP TABLE {DIRTY}_ids")
    con.execute(f"DROP TABLE IF EXISTS {DIRTY}")
    return n
