"""The warehouse copies only what changed, and follows identity changes (merges) on facts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.warehouse import duck
from siyu.warehouse.sync import sync
from tests.factories import run_import, write_dir
from tests.metrics import brand


def _sync(settings: Settings, **kw):  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    con = duck.connect(settings.duckdb_path)
    try:
        return sync(con, engine, brand_id, overlap=timedelta(0), **kw), con
    finally:
        engine.dispose()


def test_incremental_sync_copies_changes_and_rekeys_merged_facts(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    first, con = _sync(settings)
    assert first.full and first.rows["orders"] == 8 and first.rows["connections"] == 5
    con.close()

    again, con = _sync(settings)
    assert not again.full
    assert {k: v for k, v in again.rows.items() if v} == {
        # reference tables are small and copied whole every time
        "stores": 2, "staff": 2, "groups": 1, "channels": 3,
    }  # fmt: skip
    assert again.changed == set()  # … and identical, so nothing changed
    p2 = con.execute("SELECT customer_id FROM connections WHERE id_value = 'e2'").fetchone()[0]  # type: ignore[index]
    con.close()

    # A refund arrives for O1, and a record shows e2 and e3 are one person (P2 absorbs P3).
    later = {
        "orders.csv": brand.FILES["orders.csv"].replace(
            "O1,pos,S001,phone,13800000001,2025-07-05 12:00,1000,paid,",
            "O1,pos,S001,phone,13800000001,2025-07-05 12:00,1000,refunded,1000",
        ),
        "records.csv": "record_id,source,external_userid,unionid\nr6,mp,e3,U1\nr7,oa,e2,U1\n",
    }
    run_import(settings, write_dir(tmp_path / "later", later))
    third, con = _sync(settings)
    assert third.rows["orders"] == 1  # only O1 changed
    assert third.rows["connections"] == 0
    assert third.rows["identifiers"] >= 1
    assert con.execute(
        "SELECT status, refund_fen FROM orders WHERE order_key = 'O1'"
    ).fetchone() == (
        "refunded",
        1000,
    )
    # e3's connection and its order O8 now belong to the surviving customer, without being
    # copied again: the sync re-keyed them.
    assert third.rekeyed >= 2
    assert {"orders", "identifiers", "connections"} <= third.changed
    assert "stores" not in third.changed
    owners = con.execute(
        "SELECT DISTINCT customer_id FROM connections WHERE id_value IN ('e2', 'e3') "
        "UNION SELECT customer_id FROM orders WHERE order_key = 'O8'"
    ).fetchall()
    assert owners == [(p2,)]
    con.close()


def test_full_sync_drops_rows_deleted_upstream(settings: Settings, tmp_path: Path) -> None:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    _, con = _sync(settings)
    con.close()
    engine, _ = open_brand(settings)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM order_item")
        conn.exec_driver_sql("DELETE FROM opt_out")
    engine.dispose()
    result, con = _sync(settings, full=True)
    assert result.full
    assert con.execute("SELECT count(*) FROM opt_outs").fetchone() == (0,)
    con.close()


def test_rows_read_again_change_nothing_and_facts_lie_in_time_order(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    _, con = _sync(settings)
    times = [
        r[0]
        for r in con.execute("SELECT epoch_us(created_at) FROM orders ORDER BY rowid").fetchall()
    ]
    assert times == sorted(times) and len(times) == 8
    con.close()
    engine, brand_id = open_brand(settings)
    con = duck.connect(settings.duckdb_path)
    try:
        # The default one-hour overlap reads every row just imported again: none differs.
        again = sync(con, engine, brand_id)
        assert again.rows["orders"] == 8 and again.changed == set()
        changes = con.execute("SELECT mirror FROM _mirror_changes ORDER BY 1").fetchall()
        assert ("orders",) in changes  # from the first sync
    finally:
        con.close()
        engine.dispose()
