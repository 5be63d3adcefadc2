"""The warehouse's per-customer order summary stays exact through incremental syncs, and what is
read from it — customer_orders' lifetime columns, lifecycle and RFM, segment leaves — equals what
the orders give, as of instants before, inside and after the orders: after an import, a refund
and a late order, a merge, an unmerge, a relink and an erasure, on SQLite and PostgreSQL (the
lifecycle brand of tests/lifecycle/brand.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from siyu.config import Settings
from siyu.identity import service as identity
from siyu.metrics.constants import Constants
from siyu.metrics.report import SQL_PACKAGE
from siyu.metrics.scope import Scope, install
from siyu.privacy import service as privacy
from siyu.runtime import open_brand
from siyu.segments import evaluate
from siyu.segments.rules import parse
from siyu.warehouse import duck, order_summary
from siyu.warehouse.duck import composed, run, sql_file
from siyu.warehouse.service import Warehouse, open_synced
from siyu.warehouse.sync import sync
from tests.factories import run_import, write_dir
from tests.lifecycle import brand

TZ = ZoneInfo("Asia/Shanghai")
# Before every order, midnights inside them (the as-of day of the brand, the 90-day edge), an
# instant that is no midnight, and after every order.
INSTANTS = [
    datetime(2024, 12, 1, tzinfo=TZ),
    datetime(2025, 5, 3, tzinfo=TZ),
    datetime(2025, 7, 20, 13, 30, tzinfo=TZ),
    datetime(2025, 8, 1, tzinfo=TZ),
    datetime(2026, 3, 1, tzinfo=TZ),
]
# The defaults, and windows so short that a customer who orders again after the instant has
# nothing in them (their last paid order before it is then looked up among the older orders).
CONSTANTS = [
    Constants(),
    Constants(loyal_orders=2, loyal_days=5, super_days=6, paying_days=7, quadrant_days=3),
]
RULES = [
    {"field": "orders.count", "op": "gte", "value": 2},
    {"field": "orders.count", "op": "eq", "value": 0},
    {"field": "orders.amount", "op": "between", "value": [1000, 3000]},
    {"field": "orders.days_since_last", "op": "lte", "value": 30},
    {"not": {"field": "orders.days_since_last", "op": "gt", "value": 60}},
    {
        "any": [
            {"field": "lifecycle", "op": "in", "value": ["growth", "maturity"]},
            {"field": "value_layer", "op": "eq", "value": "loyal_fans"},
            {"field": "quadrant", "op": "is_set"},
            {"field": "rfm.class", "op": "eq", "value": "important_value"},
        ]
    },
]

# The summary recomputed from the mirrored orders, written out independently of the module.
EXPECTED_SUMMARY = """
SELECT customer_id,
       min(created_at) FILTER (WHERE status <> 'cancelled'),
       count(*) FILTER (WHERE status <> 'cancelled' AND coalesce(refund_fen, 0) < amount_fen),
       sum(amount_fen - coalesce(refund_fen, 0))
           FILTER (WHERE status <> 'cancelled' AND coalesce(refund_fen, 0) < amount_fen),
       max(created_at) FILTER (WHERE status <> 'cancelled' AND coalesce(refund_fen, 0) < amount_fen)
FROM orders WHERE brand_id = ? AND customer_id IS NOT NULL GROUP BY customer_id ORDER BY 1
"""


def _sorted(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=repr)


def _synced(settings: Settings) -> Warehouse:
    """The warehouse after a sync that re-reads nothing older than the previous one (no
    overlap), so facts follow merges and unmerges by re-keying, not by being copied again."""
    engine, brand_id = open_brand(settings)
    try:
        con = duck.connect(settings.duckdb_path)
        return Warehouse(con, brand_id, sync(con, engine, brand_id, overlap=timedelta(0)))
    finally:
        engine.dispose()


def check(settings: Settings) -> Warehouse:
    """Sync, then assert the summary and everything read from it against the orders."""
    wh = _synced(settings)
    con, b = wh.con, wh.brand_id
    scope = Scope(b, settings.timezone)
    assert order_summary.ready(con, b)
    held = con.execute(
        f"SELECT customer_id, first_order_at, paid_orders, paid_net, last_paid_at "
        f"FROM {order_summary.TABLE} WHERE brand_id = ? ORDER BY 1",
        [b],
    ).fetchall()
    assert held == con.execute(EXPECTED_SUMMARY, [b]).fetchall()
    assert order_summary.usable(con, scope)
    install(con, scope)
    lifetime = "customer_id, first_order_at, paid_orders, last_paid_at, paid_net"
    pairs = [
        (
            f"SELECT {lifetime} FROM ({composed(SQL_PACKAGE, 'customer_orders')})",
            f"SELECT {lifetime} FROM ({sql_file(SQL_PACKAGE, 'customer_orders_lifetime')})",
        ),
        *(
            (composed(SQL_PACKAGE, f), composed(SQL_PACKAGE, f, order_summary.LIFETIME))
            for f in order_summary.LIFETIME_FILES
        ),
    ]
    for constants in CONSTANTS:
        for at in INSTANTS:
            params = {"brand_id": b, "end": at, "to_day": at.date(), **constants.params()}
            for from_orders, from_summary in pairs:
                want = _sorted(run(con, from_orders, params).fetchall())
                assert _sorted(run(con, from_summary, params).fetchall()) == want, (at, constants)
            for rule in RULES:
                got = []
                for summary in (True, False):
                    ev = evaluate.prepare(
                        con, parse(rule), scope=scope, as_of=at, constants=constants,
                        use_snapshot=False, use_summary=summary,
                    )  # fmt: skip
                    got.append(list(evaluate.member_ids(con, ev)))
                assert got[0] == got[1], (rule, at)
    return wh


def _owner(wh: Warehouse, person: str) -> int:
    row = wh.con.execute(
        "SELECT customer_id FROM identifiers WHERE id_type = 'external_userid' AND value = ?",
        [person],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _paid(wh: Warehouse, person: str) -> int:
    row = wh.con.execute(
        f"SELECT paid_orders FROM {order_summary.TABLE} WHERE customer_id = ?",
        [_owner(wh, person)],
    ).fetchone()
    return int(row[0]) if row else 0


def test_summary_stays_exact_through_refunds_merges_unmerges_and_an_erasure(
    settings: Settings, tmp_path: Path
) -> None:
    assert run_import(settings, write_dir(tmp_path / "in", brand.FILES)).rejected == 0
    wh = check(settings)
    assert (_paid(wh, "g30"), _paid(wh, "o31"), _paid(wh, "m30")) == (2, 1, 3)
    wh.con.close()

    # o31's only order is refunded in full, and m30 orders again after every as-of day.
    later = {
        "orders.csv": brand.FILES["orders.csv"].replace(
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,1000,paid,",
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,1000,refunded,1000",
        )
        + "O99,pos,S001,external_userid,m30,2025-12-30 12:00,5000,paid,\n",
    }
    assert run_import(settings, write_dir(tmp_path / "refund", later)).rejected == 0
    wh = check(settings)
    assert not wh.synced.full and "orders" in wh.synced.changed
    assert (_paid(wh, "o31"), _paid(wh, "m30")) == (0, 4)
    wh.con.close()

    # A unionid shows g30 and o31 are one person: their orders now count for one customer.
    merge = {
        "records.csv": "record_id,source,external_userid,unionid\nr1,mp,g30,U2\nr2,oa,o31,U2\n"
    }
    assert run_import(settings, write_dir(tmp_path / "merge", merge)).rejected == 0
    wh = check(settings)
    assert wh.synced.rows["orders"] == 0 and wh.synced.rekeyed >= 1  # re-keyed, not re-read
    assert _owner(wh, "g30") == _owner(wh, "o31") and _paid(wh, "g30") == 2
    wh.con.close()

    # Unmerged, and merged again in the same import that changes both people's orders: the
    # re-read orders arrive already keyed to the survivor, and the other customer loses them.
    _u2(settings, identity.unmerge)
    wh = check(settings)
    assert _owner(wh, "g30") != _owner(wh, "o31")
    wh.con.close()
    _u2(settings, identity.relink)
    both = {
        "orders.csv": brand.FILES["orders.csv"]
        .replace(
            "O11,pos,S001,external_userid,g30,2025-07-02 12:00,1000,paid,",
            "O11,pos,S001,external_userid,g30,2025-07-02 12:00,1000,paid,400",
        )
        .replace(
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,1000,paid,",
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,3000,paid,",
        ),
    }
    assert run_import(settings, write_dir(tmp_path / "both", both)).rejected == 0
    wh = check(settings)
    assert wh.synced.rows["orders"] >= 2
    assert _owner(wh, "g30") == _owner(wh, "o31") and _paid(wh, "g30") == 3
    wh.con.close()

    _u2(settings, identity.unmerge)
    wh = check(settings)
    assert _owner(wh, "g30") != _owner(wh, "o31")
    assert (_paid(wh, "g30"), _paid(wh, "o31")) == (2, 1)
    m30 = _owner(wh, "m30")
    wh.con.close()

    engine, brand_id = open_brand(settings)
    try:
        privacy.erase(
            engine, brand_id=brand_id, key="external_userid:m30", reason="test", actor="test"
        )
    finally:
        engine.dispose()
    wh = check(settings)  # the erased customer's orders stay, anonymous, with the same figures
    row = wh.con.execute(
        f"SELECT paid_orders FROM {order_summary.TABLE} WHERE customer_id = ?", [m30]
    ).fetchone()
    assert row == (4,)
    wh.con.close()


def test_summary_is_not_read_for_a_filtered_scope_or_before_a_sync_built_it(
    settings: Settings, tmp_path: Path
) -> None:
    assert run_import(settings, write_dir(tmp_path / "in", brand.FILES)).rejected == 0
    wh = open_synced(settings)
    try:
        b = wh.brand_id
        assert order_summary.usable(wh.con, Scope(b, settings.timezone))
        assert not order_summary.usable(wh.con, Scope(b, settings.timezone, store_ids=(1,)))
        assert not order_summary.usable(wh.con, Scope(b + 1, settings.timezone))
        # Worth reading as of an instant with (almost) every order before it, not earlier.
        assert order_summary.pays_off(wh.con, Scope(b, settings.timezone), INSTANTS[-1])
        assert not order_summary.pays_off(wh.con, Scope(b, settings.timezone), INSTANTS[-2])
        wh.con.execute(f"DELETE FROM {order_summary.STATE}")
        assert not order_summary.usable(wh.con, Scope(b, settings.timezone))
    finally:
        wh.con.close()
    wh = open_synced(settings)  # the next sync builds it again
    try:
        assert order_summary.ready(wh.con, wh.brand_id)
    finally:
        wh.con.close()


def _u2(settings: Settings, change: Any) -> None:
    """Unmerge or relink unionid U2, as `siyu identity unmerge|relink` does."""
    engine, brand_id = open_brand(settings)
    try:
        change(engine, brand_id=brand_id, id_type="unionid", value="U2", k_guard=settings.k_guard)
    finally:
        engine.dispose()
