"""Evaluating a rule in the warehouse: count, member ids, masked preview rows, export rows.

Every function installs the brand's views (siyu.metrics.scope) and runs the one compiled
statement with the as-of instant, the brand-local day and the SPEC constants bound beside the
rule's own values. As of the start of a day whose attribute snapshot is still fresh, lifecycle,
RFM and quadrant leaves read that snapshot rather than recomputing them (same members).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np

from siyu.lifecycle.service import fresh_snapshot
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope, install
from siyu.pii import mask_name, mask_phone
from siyu.segments.compiler import Compiled, Windows, compile_rule
from siyu.segments.rules import Node
from siyu.warehouse import order_summary
from siyu.warehouse.duck import run

# What a preview or an export shows of each member (PII masked unless asked otherwise). Names
# and phones are stored sealed; siyu_pii_open (installed by the warehouse sync) opens them.
PROFILE_SQL = """
WITH members AS (
{members}
), phones AS (
    SELECT customer_id, arg_min(value_sealed, id) AS phone FROM identifiers
    WHERE brand_id = $brand_id AND id_type = 'phone' AND customer_id IS NOT NULL
    GROUP BY customer_id
), bought AS (
    SELECT customer_id, count(*) AS paid_orders, sum(amount_fen - refund_fen) AS net_fen,
           local_day(max(created_at)) AS last_order_day
    FROM v_orders WHERE paid AND customer_id IS NOT NULL AND created_at < $end
    GROUP BY customer_id
)
SELECT m.customer_id, siyu_pii_open(p.name_sealed) AS name, siyu_pii_open(ph.phone) AS phone,
       p.city, p.gender,
       coalesce(b.paid_orders, 0) AS paid_orders, coalesce(b.net_fen, 0) AS net_fen,
       b.last_order_day
FROM members m
JOIN customers p ON p.id = m.customer_id
LEFT JOIN phones ph ON ph.customer_id = m.customer_id
LEFT JOIN bought b ON b.customer_id = m.customer_id
ORDER BY m.customer_id
"""
PROFILE_COLUMNS = (
    "customer_id",
    "name",
    "phone",
    "city",
    "gender",
    "paid_orders",
    "net_fen",
    "last_order_day",
)


@dataclass(frozen=True)
class Evaluation:
    """A rule ready to run: the compiled statement and every parameter it needs."""

    compiled: Compiled
    params: dict[str, Any]
    snapshot: date | None = None  # the day of the attribute snapshot the statement reads


def day_start(day: date, timezone: str) -> datetime:
    """The instant `day` begins in the brand's zone: what `--as-of DAY` evaluates at."""
    return datetime.combine(day, time(), ZoneInfo(timezone))


def prepare(
    con: duckdb.DuckDBPyConnection,
    rule: Node,
    *,
    scope: Scope,
    as_of: datetime,
    constants: Constants,
    use_snapshot: bool = True,
    use_summary: bool | None = None,
) -> Evaluation:
    """`use_snapshot=False` always computes the attributes live. Figures over all paid orders
    come from the warehouse's order summary when it can serve the scope and pays off as of
    `as_of` (`use_summary=None`), whenever it can serve the scope (True), or never (False):
    the same members every way."""
    install(con, scope)
    day = None
    if use_snapshot:
        day = fresh_snapshot(con, scope=scope, at=as_of, constants=constants)
    if use_summary is None:
        summary = order_summary.pays_off(con, scope, as_of)
    else:
        summary = use_summary and order_summary.usable(con, scope)
    compiled = compile_rule(
        rule, snapshot=day is not None, summary=summary, windows=Windows.of(constants)
    )
    params: dict[str, Any] = {
        "brand_id": scope.brand_id,
        "end": as_of,
        "to_day": as_of.astimezone(ZoneInfo(scope.timezone)).date(),
        **constants.params(),
        **compiled.params,
    }
    return Evaluation(compiled, params, day if compiled.reads_snapshot else None)


def count(con: duckdb.DuckDBPyConnection, ev: Evaluation) -> int:
    row = run(con, f"SELECT count(*) FROM (\n{ev.compiled.sql}\n)", ev.params).fetchone()
    return int(row[0]) if row else 0


def member_ids(con: duckdb.DuckDBPyConnection, ev: Evaluation) -> np.ndarray:
    """The members' customer ids, sorted (int64)."""
    got = run(
        con, f"SELECT customer_id FROM (\n{ev.compiled.sql}\n) ORDER BY 1", ev.params
    ).fetchnumpy()
    return np.asarray(got["customer_id"], dtype=np.int64)


def profiles(
    con: duckdb.DuckDBPyConnection,
    ev: Evaluation,
    *,
    limit: int | None = None,
    offset: int = 0,
    pii: bool = False,
) -> list[dict[str, Any]]:
    """Members with name, phone, city, gender and paid-order totals, by customer id (`limit`
    of them after the first `offset`); masked unless `pii`."""
    sql = PROFILE_SQL.replace("{members}", ev.compiled.sql)
    params = dict(ev.params)
    if limit is not None:
        sql += "LIMIT $preview_limit OFFSET $preview_offset"
        params["preview_limit"], params["preview_offset"] = limit, offset
    out = []
    for row in run(con, sql, params).fetchall():
        r = dict(zip(PROFILE_COLUMNS, row, strict=True))
        if not pii:
            r["name"] = mask_name(r["name"])
            r["phone"] = mask_phone(r["phone"])
        out.append(r)
    return out


def within(con: duckdb.DuckDBPyConnection, ev: Evaluation, ids: list[int] | None) -> Evaluation:
    """The same rule narrowed to the customer ids a console user may read (None: unchanged).

    Facts stay brand-wide (a store manager's "bought twice" counts every order of the
    customer); only who can be a member is narrowed — the customers domain decides who that is
    (siyu.customers.service.readable_customer_ids).
    """
    if ids is None:
        return ev
    con.execute(
        "CREATE OR REPLACE TEMP TABLE readable_ids AS "
        "SELECT unnest(CAST(? AS BIGINT[])) AS customer_id",
        [ids],
    )
    sql = (
        f"SELECT customer_id FROM (\n{ev.compiled.sql}\n) "
        "WHERE customer_id IN (SELECT customer_id FROM readable_ids)"
    )
    narrowed = Compiled(sql, ev.compiled.params, ev.compiled.reads_snapshot)
    return Evaluation(narrowed, ev.params, ev.snapshot)
