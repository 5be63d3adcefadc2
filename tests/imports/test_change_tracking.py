"""The import's fast paths keep the contracts: changed_at moves on real changes only, and a
row's stored hash never hides a change (siyu/imports/upsert.py)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from siyu.config import Settings
from siyu.orders.models import Order
from tests.factories import STORES, engine_for, rows, run_import, scalar, write_dir

ORDERS = "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,refund_fen\n"
O1 = "O1,pos,S001,phone,13800138000,2025-07-01T09:00:00+08:00,3000,paid,\n"
O2 = "O2,tmall,,tmall_nick,nick2,2025-07-02T09:00:00+08:00,2000,paid,\n"
O3 = "O3,pos,S002,,,2025-07-03T09:00:00+08:00,1000,paid,\n"
ITEMS = "order_id,sku,qty,amount_fen\nO1,A,1,1000\nO1,B,2,2000\nO2,A,1,2000\n"
DELIVERIES = (
    "id_type,id_value,channel,created_at,status\nphone,13800138000,sms,2025-07-01,delivered\n"
)
RECORDS = "record_id,source,phone,tmall_nick\nR1,pos,13800138000,\nR2,tmall,,nick2\n"


def by_file(summary, name):  # type: ignore[no-untyped-def]
    return next(f for f in summary.files if f.file == name)


def changed(settings: Settings, table: str, key: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in rows(settings, f'SELECT {key}, changed_at FROM "{table}"')}


def full_dir(path: Path, orders: str) -> Path:
    return write_dir(
        path,
        {
            "stores.csv": STORES,
            "records.csv": RECORDS,
            "orders.csv": ORDERS + orders,
            "order_items.csv": ITEMS,
            "deliveries.csv": DELIVERIES,
        },
    )


def test_unchanged_rows_keep_changed_at_and_changed_rows_move_it(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(settings, full_dir(tmp_path / "a", O1 + O2))
    orders = changed(settings, "order", "order_key")
    items = changed(settings, "order_item", "order_id || sku")
    deliveries = changed(settings, "delivery", "row_key")
    idents = changed(settings, "identifier", "value")

    again = run_import(settings, full_dir(tmp_path / "b", O1 + O2))
    assert (again.inserted, again.updated) == (0, 0)
    assert changed(settings, "order", "order_key") == orders
    assert changed(settings, "order_item", "order_id || sku") == items
    assert changed(settings, "delivery", "row_key") == deliveries
    assert changed(settings, "identifier", "value") == idents

    refund = O2.replace("2000,paid,", "2000,refunded,500")
    summary = run_import(settings, full_dir(tmp_path / "c", O1 + refund + O3))
    f = by_file(summary, "orders.csv")
    assert (f.inserted, f.updated) == (1, 1)
    after = changed(settings, "order", "order_key")
    assert after["O1"] == orders["O1"]
    assert after["O2"] > orders["O2"] and after["O3"] > orders["O1"]
    assert rows(settings, "SELECT status, refund_fen FROM \"order\" WHERE order_key = 'O2'") == [
        ("refunded", 500)
    ]


def test_rows_without_a_stored_hash_are_compared_value_by_value(
    settings: Settings, tmp_path: Path
) -> None:
    # Rows stored before migration 0004 have no hash: the next import compares their values,
    # counts nothing as updated, leaves changed_at alone and stores the hash.
    run_import(settings, full_dir(tmp_path / "a", O1 + O2))
    engine, _ = engine_for(settings)
    with engine.begin() as conn:
        for table in ("order", "order_item", "delivery", "source_record"):
            conn.exec_driver_sql(f'UPDATE "{table}" SET row_hash = NULL')
    engine.dispose()
    orders = changed(settings, "order", "order_key")
    again = run_import(settings, full_dir(tmp_path / "b", O1 + O2))
    assert (again.inserted, again.updated) == (0, 0)
    assert changed(settings, "order", "order_key") == orders
    for table in ("order", "order_item", "delivery", "source_record"):
        assert scalar(settings, f'SELECT count(*) FROM "{table}" WHERE row_hash IS NULL') == 0


def test_another_writer_clears_the_hash_so_the_import_applies_the_file_again(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(settings, full_dir(tmp_path / "a", O1 + O2))
    engine, _ = engine_for(settings)
    with engine.begin() as conn:
        conn.execute(update(Order).where(Order.order_key == "O1").values(status="cancelled"))
    engine.dispose()
    assert scalar(settings, "SELECT row_hash FROM \"order\" WHERE order_key = 'O1'") is None
    summary = run_import(settings, full_dir(tmp_path / "b", O1 + O2))
    assert (by_file(summary, "orders.csv").inserted, by_file(summary, "orders.csv").updated) == (
        0,
        1,
    )
    assert scalar(settings, "SELECT status FROM \"order\" WHERE order_key = 'O1'") == "paid"


def test_a_first_load_and_an_incremental_load_store_the_same_rows(
    settings: Settings, tmp_path: Path
) -> None:
    # The brand's first load takes the direct path; the second brings new and changed rows
    # through staging. Both must end where one import of the final files would.
    first = run_import(settings, full_dir(tmp_path / "a", O1))
    assert by_file(first, "order_items.csv").inserted == 2  # O2's item is rejected: no order
    refund = O1.replace("3000,paid,", "3000,refunded,3000")
    second = run_import(settings, full_dir(tmp_path / "b", refund + O2 + O3))
    f = by_file(second, "orders.csv")
    assert (f.inserted, f.updated) == (2, 1)
    assert by_file(second, "order_items.csv").inserted == 1
    stored = rows(
        settings,
        'SELECT order_key, platform, status, refund_fen, amount_fen FROM "order" ORDER BY order_key',
    )
    assert stored == [
        ("O1", "pos", "refunded", 3000, 3000),
        ("O2", "tmall", "paid", 0, 2000),
        ("O3", "pos", "paid", 0, 1000),
    ]
    assert scalar(settings, "SELECT count(*) FROM order_item") == 3


def test_a_record_that_changes_an_identifier_is_updated(settings: Settings, tmp_path: Path) -> None:
    run_import(settings, full_dir(tmp_path / "a", O1))
    moved = RECORDS.replace("R2,tmall,,nick2", "R2,tmall,13800138000,nick2")
    summary = run_import(settings, full_dir(tmp_path / "b", O1))
    assert by_file(summary, "records.csv").updated == 0
    d = full_dir(tmp_path / "c", O1)
    (d / "records.csv").write_text(moved, encoding="utf-8")
    summary = run_import(settings, d)
    assert (by_file(summary, "records.csv").inserted, by_file(summary, "records.csv").updated) == (
        0,
        1,
    )
    assert summary.identity is not None and summary.identity.merged == 1
