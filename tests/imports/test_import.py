"""`siyu import` against DATA_FORMAT.md: idempotent, incremental, and precise about bad input."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from siyu import pii
from siyu.config import Settings
from siyu.imports.service import ImportRefused
from siyu.runtime import open_brand
from tests.factories import STORES, rejects, rows, run_import, scalar, write_dir

ORDERS = "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,refund_fen\n"
GOOD_ORDERS = ORDERS + (
    "O1,pos,S001,phone,13800138000,2025-07-01T09:00:00+08:00,3000,paid,\n"
    "O2,pos,S001,,,2025-07-01 23:30,2000,paid,\n"
)


def by_file(summary, name):  # type: ignore[no-untyped-def]
    return next(f for f in summary.files if f.file == name)


def test_reimport_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "in",
        {
            "stores.csv": STORES,
            "orders.csv": GOOD_ORDERS,
            "records.csv": "record_id,source,phone\nR1,pos,13800138000\n",
        },
    )
    first = run_import(settings, d)
    assert first.inserted == 5 and first.rejected == 0
    second = run_import(settings, d)
    assert (second.inserted, second.updated) == (0, 0)
    assert second.identity is not None and second.identity.created == 0


def test_naive_timestamps_are_brand_local_and_stored_utc(
    settings: Settings, tmp_path: Path
) -> None:
    run_import(
        settings, write_dir(tmp_path / "in", {"stores.csv": STORES, "orders.csv": GOOD_ORDERS})
    )
    stored = rows(settings, 'SELECT order_key, created_at FROM "order" ORDER BY order_key')
    # 23:30 in Shanghai is 15:30 UTC the same day; 09:00+08:00 is 01:00 UTC.
    assert [str(v)[:16] for _, v in stored] == ["2025-07-01 01:00", "2025-07-01 15:30"]


def test_later_refund_row_updates_its_order(settings: Settings, tmp_path: Path) -> None:
    run_import(
        settings, write_dir(tmp_path / "a", {"stores.csv": STORES, "orders.csv": GOOD_ORDERS})
    )
    later = ORDERS + "O1,pos,S001,phone,13800138000,2025-07-01T09:00:00+08:00,3000,refunded,1000\n"
    summary = run_import(settings, write_dir(tmp_path / "b", {"orders.csv": later}))
    assert (by_file(summary, "orders.csv").inserted, by_file(summary, "orders.csv").updated) == (
        0,
        1,
    )
    assert rows(settings, "SELECT status, refund_fen FROM \"order\" WHERE order_key = 'O1'") == [
        ("refunded", 1000)
    ]


def test_refund_row_in_the_same_file_folds_into_the_order(
    settings: Settings, tmp_path: Path
) -> None:
    body = GOOD_ORDERS + "O1,pos,S001,phone,13800138000,2025-07-01T09:00:00+08:00,3000,refunded,\n"
    summary = run_import(
        settings, write_dir(tmp_path / "in", {"stores.csv": STORES, "orders.csv": body})
    )
    assert by_file(summary, "orders.csv").rejected == 0
    # A refunded row without refund_fen is a full refund.
    assert rows(settings, "SELECT status, refund_fen FROM \"order\" WHERE order_key = 'O1'") == [
        ("refunded", 3000)
    ]


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("O3,pos,S001,,,2025-07-01T09:00:00+08:00,abc,paid,", "amount_fen", "not a whole number"),
        (
            "O3,pos,S001,,,2025-07-01T09:00:00+08:00,12.5,paid,",
            "amount_fen",
            "not a whole number of fen",
        ),
        (
            "O3,pos,S001,,,2025-07-01T09:00:00+08:00,-100,paid,",
            "amount_fen",
            "must not be negative",
        ),
        (
            "O3,pos,S001,,,2025-07-01T09:00:00+08:00,100,paid,200",
            "refund_fen",
            "larger than amount_fen",
        ),
        ("O3,pos,S001,,,2025-07-01T09:00:00+08:00,100,shipped,", "status", "must be one of paid"),
        ("O3,pos,S001,,,2025-13-45 09:00,100,paid,", "created_at", "not an ISO 8601 timestamp"),
        ("O3,pos,S001,,,yesterday,100,paid,", "created_at", "not an ISO 8601 timestamp"),
        (
            "O3,pos,S001,phone,12345,2025-07-01T09:00:00+08:00,100,paid,",
            "id_value",
            "not a valid phone",
        ),
        ("O3,pos,S404,,,2025-07-01T09:00:00+08:00,100,paid,", "store_id", "unknown store_id S404"),
        (
            "O3,pos,S001,passport,X1,2025-07-01T09:00:00+08:00,100,paid,",
            "id_type",
            "must be one of",
        ),
        (
            "O3,pos,S001,phone,,2025-07-01T09:00:00+08:00,100,paid,",
            "id_value",
            "id_value is required",
        ),
        (",pos,S001,,,2025-07-01T09:00:00+08:00,100,paid,", "order_id", "order_id is required"),
        ("O1,pos,S001,,,2025-07-01T09:00:00+08:00,999,paid,", "order_id", "repeats line 2"),
    ],
)
def test_bad_order_rows_are_rejected_with_line_column_and_reason(
    settings: Settings, tmp_path: Path, line: str, column: str, reason: str
) -> None:
    d = write_dir(tmp_path / "in", {"stores.csv": STORES, "orders.csv": GOOD_ORDERS + line + "\n"})
    summary = run_import(settings, d)
    report = rejects(summary)
    assert by_file(summary, "orders.csv").inserted == 2  # the good rows are kept
    assert by_file(summary, "orders.csv").rejected == 1
    hit = [r for r in report if r["column"] == column and reason in r["reason"]]
    assert hit and hit[0]["file"] == "orders.csv" and hit[0]["line"] == "4", report


def test_bad_date_and_duplicate_key_in_reference_files(settings: Settings, tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "in",
        {
            "stores.csv": STORES + "S001,重复,华东,上海\n",
            "channels.csv": "channel_id,name\nC1,门店扫码\n",
            "channel_costs.csv": "channel_id,date,cost_fen\nC1,2025-07-01,100\nC1,2025-02-30,100\nC9,2025-07-02,5\n",
            "staff.csv": "staff_id,name,store_id\nG1,小王,S001\nG2,小李,S999\n",
        },
    )
    summary = run_import(settings, d)
    got = {(r["file"], r["line"], r["column"]): r["reason"] for r in rejects(summary)}
    assert got[("stores.csv", "4", "store_id")] == "duplicate key, first at line 2"
    assert got[("channel_costs.csv", "3", "date")] == "date is not a date (YYYY-MM-DD)"
    assert (
        got[("channel_costs.csv", "4", "channel_id")] == "unknown channel_id C9 (not in channels)"
    )
    assert got[("staff.csv", "3", "store_id")] == "unknown store_id S999 (not in stores)"
    assert scalar(settings, "SELECT count(*) FROM store") == 2


def test_invalid_phone_on_a_record_drops_only_the_value(settings: Settings, tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "in", {"records.csv": "record_id,source,phone,member_no\nR1,pos,12345,M1\n"}
    )
    summary = run_import(settings, d)
    assert by_file(summary, "records.csv").inserted == 1
    assert by_file(summary, "records.csv").values_dropped == 1
    assert rows(settings, "SELECT id_type FROM record_identity") == [("member_no",)]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"customers.csv": "a\n1\n"}, "unknown file 'customers.csv'"),
        (
            {
                "orders.csv": ORDERS.replace("refund_fen", "refund_fen,coupon")
                + "O9,pos,,,,2025-07-01,1,paid,,\n"
            },
            "unknown column 'coupon'",
        ),
        (
            {"orders.csv": "order_id,platform,created_at,amount_fen\nO9,pos,2025-07-01,1\n"},
            "required column 'status' is missing",
        ),
        ({"orders.csv": b""}, "the file is empty"),
        (
            {"stores.csv": "store_id,name\nS1,静安店\n".encode() + "S2,朝阳店\n".encode("gb18030")},
            "mixed encodings",
        ),
        ({"orders.parquet": b"PAR1\x00\x00garbage"}, "not a readable Parquet file"),
    ],
)
def test_unreadable_files_are_refused_whole_and_nothing_earlier_is_lost(
    settings: Settings, tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    run_import(
        settings, write_dir(tmp_path / "before", {"stores.csv": STORES, "orders.csv": GOOD_ORDERS})
    )
    d = write_dir(tmp_path / "bad", files)
    try:
        summary = run_import(settings, d)
        errors = [f.error for f in summary.failed_files]
    except ImportRefused as e:
        errors = [str(e)]
    assert any(message in (e or "") for e in errors), errors
    assert scalar(settings, 'SELECT count(*) FROM "order"') == 2
    assert scalar(settings, "SELECT count(*) FROM store") == 2


def test_gb18030_and_bom_files_import(settings: Settings, tmp_path: Path) -> None:
    d = write_dir(
        tmp_path / "in",
        {
            "stores.csv": STORES.encode("gb18030"),
            "channels.csv": "channel_id,name\nC1,门店扫码\n".encode("utf-8-sig"),
        },
    )
    summary = run_import(settings, d)
    assert summary.inserted == 3 and not summary.failed_files
    assert rows(settings, "SELECT name FROM store ORDER BY code") == [("静安店",), ("朝阳店",)]
    assert rows(settings, "SELECT name FROM channel") == [("门店扫码",)]


def test_parquet_files_import_like_csv(settings: Settings, tmp_path: Path) -> None:
    d = tmp_path / "pq"
    d.mkdir()
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT 'S001' AS store_id, '静安店' AS name, 31.2 AS lat, 121.4 AS lon, 1000 AS radius_m) "
        f"TO '{d / 'stores.parquet'}' (FORMAT parquet)"
    )
    summary = run_import(settings, d)
    assert summary.inserted == 1
    assert rows(settings, "SELECT code, radius_m FROM store") == [("S001", 1000)]


def test_first_touch_referral_keeps_the_earliest(settings: Settings, tmp_path: Path) -> None:
    head = "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,created_at\n"
    d = write_dir(
        tmp_path / "a",
        {
            "referrals.csv": head
            + (
                "phone,13800138001,phone,13800138009,2025-07-05T10:00:00+08:00\n"
                "phone,13800138002,phone,13800138009,2025-07-03T10:00:00+08:00\n"
                "phone,13800138003,phone,13800138003,2025-07-03T10:00:00+08:00\n"
            )
        },
    )
    summary = run_import(settings, d)
    reasons = [r["reason"] for r in rejects(summary)]
    assert "not the first touch for this invitee (kept line 3)" in reasons
    assert "a customer cannot refer themselves" in reasons
    later = write_dir(
        tmp_path / "b",
        {"referrals.csv": head + "phone,13800138004,phone,13800138009,2025-07-09T10:00:00+08:00\n"},
    )
    assert run_import(settings, later).updated == 0
    # the kept referrer, as stored: its phone's lookup hash (siyu.pii)
    engine, _ = open_brand(settings)
    kept = pii.keyring(engine).lookup_hash("phone", "+8613800138002")
    engine.dispose()
    assert rows(settings, "SELECT referrer_id_value FROM referral") == [(kept,)]
