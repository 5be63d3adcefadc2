"""The per-customer order summary the warehouse keeps beside the orders mirror.

One row per (brand, customer) with at least one order: the first non-cancelled order and the
paid orders' number, net sales and last instant, over all of the customer's orders. None of it
depends on an as-of date, so `siyu warehouse sync` keeps it exact incrementally: it recomputes
the rows of the customers whose orders it touched (orders re-read since the last sync, with their
owners before and after; orders re-keyed by a merge or an unmerge, both sides) and rebuilds it
whole when it copies the orders whole.

siyu/metrics/sql/customer_orders_summary.sql turns it into exactly what customer_orders.sql
computes from every order as of `to`: the lifetime figures less the paid orders from `to` on,
and the trailing windows from the orders inside them only. The summary is read only for an
unfiltered scope (a store or channel filter narrows the orders it would have to count) and only
once a sync has built it for the brand (`ready`): a warehouse written some other way (bench
data, an older version's file before its first sync) is read from the orders.
"""

from __future__ import annotations

import duckdb

from siyu.metrics.scope import ORDER_FLAGS, Scope

TABLE = "customer_order_summary"
STATE = "_order_summary_state"  # a row per brand whose summary a sync has built
DIRTY = "_order_summary_dirty"  # temp: customers whose rows this sync recomputes
# customer_orders.sql, and the file giving its columns from this summary (siyu.warehouse.duck.
# composed `swap`).
SWAP = (("customer_orders", "customer_orders_summary"),)

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


def swap_for(con: duckdb.DuckDBPyConnection, scope: Scope) -> tuple[tuple[str, str], ...]:
    """The `composed` swap that reads customer_orders from the summary, when it can be read for
    `scope`; () otherwise (customer_orders.sql over the orders)."""
    return SWAP if not scope.filtered and ready(con, scope.brand_id) else ()


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
