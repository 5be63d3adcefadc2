"""Saved segments: refresh records entries and exits and emits segment.entered / exited events
once per change; the `siyu segments` commands as a user runs them."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from siyu.audit import service as audit
from siyu.cli import app
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.segments import service
from siyu.warehouse.service import open_synced
from tests.factories import rows, run_import, write_dir
from tests.segments.conftest import build

TZ = ZoneInfo("Asia/Shanghai")
RECENT_BUYERS = {"field": "orders.count", "op": "gte", "value": 1, "within_days": 30}


def test_refresh_records_entries_exits_and_events_once(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build(settings, tmp_path / "in")
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        sid = service.create(conn, brand_id=brand_id, name="近30天购买", rule=RECENT_BUYERS)

    def refresh(day: datetime) -> service.RefreshResult:
        wh = open_synced(settings)
        try:
            return service.refresh(
                engine, wh.con, scope=Scope(brand_id), name="近30天购买",
                constants=Constants(), as_of=day,
            )  # fmt: skip
        finally:
            wh.con.close()

    def people(sql: str) -> list[tuple[object, ...]]:
        return rows(
            settings,
            sql.replace(
                "PERSON",
                "(SELECT value FROM identifier WHERE id_type = 'external_userid' "
                "AND customer_id = x.customer_id)",
            ),
        )

    try:
        first = refresh(datetime(2025, 8, 1, tzinfo=TZ))  # b (07-22) and e (07-12)
        # c buys on 08-10; by 08-15 e's order is 34 days old.
        run_import(
            settings,
            write_dir(
                tmp_path / "more",
                {
                    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,"
                    "amount_fen,status,refund_fen\nC9,mp,,external_userid,c,2025-08-10 12:00,"
                    "1000,paid,\n"
                },
            ),
        )
        second = refresh(datetime(2025, 8, 15, tzinfo=TZ))
        third = refresh(datetime(2025, 8, 15, tzinfo=TZ))
        fourth = refresh(datetime(2025, 8, 1, tzinfo=TZ))  # back in time: e again, c not yet
    finally:
        engine.dispose()

    got = [(r.refresh_no, r.members, r.entered, r.exited) for r in (first, second, third, fourth)]
    assert got == [(1, 2, 2, 0), (2, 2, 1, 1), (3, 2, 0, 0), (4, 2, 1, 1)]
    events = people(
        "SELECT x.type, PERSON, x.idempotency_key, x.payload FROM event x "
        "WHERE x.type LIKE 'segment.%' ORDER BY x.id"
    )
    assert [(t, p) for t, p, _, _ in events] == [
        ("segment.entered", "b"),
        ("segment.entered", "e"),
        ("segment.entered", "c"),
        ("segment.exited", "e"),
        ("segment.entered", "e"),
        ("segment.exited", "c"),
    ]
    key, payload = events[3][2], events[3][3]
    assert str(key).startswith(f"segment.exited:{sid}:") and str(key).endswith(":2")
    payload = payload if isinstance(payload, dict) else json.loads(str(payload))
    assert payload == {"segment_id": sid, "segment": "近30天购买", "version": 1, "refresh": 2}
    stays = people(
        "SELECT PERSON, x.entered_refresh, x.exited_refresh FROM segment_member x ORDER BY x.id"
    )
    assert stays == [("b", 1, None), ("e", 1, 2), ("c", 2, 4), ("e", 4, None)]


def test_create_refuses_a_malformed_rule_and_a_taken_name(settings) -> None:  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    try:
        with engine.begin() as conn:
            with pytest.raises(service.SegmentError, match=r"rule\.all\[0\]\.field: unknown"):
                service.create(conn, brand_id=brand_id, name="x", rule={"all": [{"field": "cty"}]})
            service.create(conn, brand_id=brand_id, name="x", rule=RECENT_BUYERS)
            with pytest.raises(service.SegmentError, match="exists"):
                service.create(conn, brand_id=brand_id, name="x", rule=RECENT_BUYERS)
            assert service.update_rule(conn, brand_id=brand_id, name="x", rule=RECENT_BUYERS) == 2
            with pytest.raises(service.SegmentError, match=r"no segment named 'y' \(saved: x\)"):
                service.get_by_name_or_raise(conn, brand_id=brand_id, name="y")
    finally:
        engine.dispose()


def test_segments_cli(tmp_path: Path) -> None:
    from siyu.config import Settings

    data = tmp_path / "data"
    build(Settings(data_dir=data), tmp_path / "in")
    runner = CliRunner()

    def siyu(*args: str):  # type: ignore[no-untyped-def]
        # wide enough that a long temporary path does not wrap the count onto a second line
        return runner.invoke(app, ["--data-dir", str(data), *args], env={"COLUMNS": "200"})

    good = tmp_path / "coffee.json"
    good.write_text(json.dumps({"field": "tag", "op": "any_of", "value": ["咖啡爱好者"]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"any": [{"not": {"field": "cty", "op": "eq", "value": "x"}}]}))

    result = siyu("segments", "create", "咖啡控", "--rule", str(bad))
    assert result.exit_code == 2
    assert "rule.any[0].not.field: unknown field 'cty'" in result.output
    assert siyu("segments", "create", "咖啡控", "--rule", str(good)).exit_code == 0

    result = siyu("segments", "count", "咖啡控")
    assert result.exit_code == 0 and "2 customers" in result.output  # a and e
    result = siyu("segments", "count", "--rule", str(good))
    assert "2 customers" in result.output
    # As of the start of 07-01 (Shanghai) the tags, added 07-01 00:00 UTC, were not there yet.
    assert "0 customers" in siyu("segments", "count", "咖啡控", "--as-of", "2025-07-01").output
    assert "2 customers" in siyu("segments", "count", "咖啡控", "--as-of", "2025-07-02").output

    # The tags of a and e were added on 07-01, long before today: the preview is of now.
    result = siyu("segments", "preview", "咖啡控")
    assert result.exit_code == 0, result.output
    assert "138****0001" in result.output and "张*" in result.output
    assert "13800000001" not in result.output and "张三" not in result.output

    out = tmp_path / "out" / "coffee.csv"
    assert siyu("segments", "export", "咖啡控", "--out", str(out)).exit_code == 0
    with out.open(encoding="utf-8-sig") as f:
        exported = list(csv.DictReader(f))
    assert [r["phone"] for r in exported] == ["138****0001", ""]
    assert siyu("segments", "export", "咖啡控", "--out", str(out), "--pii").exit_code == 0
    with out.open(encoding="utf-8-sig") as f:
        assert next(csv.DictReader(f))["phone"] == "+8613800000001"
    engine, brand_id = open_brand(Settings(data_dir=data))
    with engine.begin() as conn:  # every export is in the audit log, newest first (SPEC §12)
        exports = [e for e in audit.recent(conn, brand_id=brand_id) if e["action"] == "export"]
    engine.dispose()
    assert [(e["target"], e["detail"]["pii"], e["detail"]["customers"]) for e in exports] == [
        ("segment:咖啡控", True, 2), ("segment:咖啡控", False, 2)]  # fmt: skip
    assert all(str(e["actor"]).startswith("cli:") for e in exports)

    result = siyu("segments", "refresh", "--as-of", "2025-08-01")
    assert result.exit_code == 0, result.output
    # segment, refresh no., members, entered, exited
    assert re.search(r"咖啡控\s*│\s*1\s*│\s*2\s*│\s*2\s*│\s*0\s*│", result.output), result.output
    result = siyu("segments", "list")
    assert re.search(r"咖啡控\s*│\s*1\s*│\s*2\s*│", result.output), result.output

    result = siyu("segments", "count", "不存在")
    assert result.exit_code == 2 and "no segment named '不存在' (saved: 咖啡控)" in result.output
