"""The console's pages as a user sees them: numbers, masking, scoping, audit (issue #7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from siyu.audit import service as audit
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.metrics import brand
from tests.web import console_brand as cb

PERIOD = {"from": brand.FROM, "to": brand.TO}
MATCH_ALL = json.dumps({"not": {"field": "city", "op": "eq", "value": "火星"}})


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    cb.build(settings, tmp_path)
    with cb.client(settings) as c:
        yield c


def audit_log(settings: Settings) -> list[dict[str, object]]:
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        rows = audit.recent(conn, brand_id=brand_id)
    engine.dispose()
    return rows


def test_overview_shows_the_report_of_the_users_scope(console: TestClient) -> None:
    cb.login(console, "ops")
    whole = console.get("/", params=PERIOD)
    assert whole.status_code == 200
    assert "¥127.00" in whole.text  # GMV 12000 fen of tests/metrics/brand.py + O9
    assert "S002" in whole.text  # HQ may pick any store
    s001 = console.get("/", params={**PERIOD, "store": "S001"})
    assert "¥35.00" in s001.text
    assert console.get("/", params={**PERIOD, "store": "S999"}).status_code == 422
    cb.login(console, "mgr1")
    mine = console.get("/", params=PERIOD)
    assert mine.status_code == 200 and "¥35.00" in mine.text and "¥127.00" not in mine.text


def test_a_store_outside_the_scope_is_404_and_audited(console: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "mgr1")
    other = console.get("/", params={**PERIOD, "store": "S002"})
    unknown = console.get("/", params={**PERIOD, "store": "S999"})
    assert other.status_code == unknown.status_code == 404
    assert console.get("/", params={**PERIOD, "region": "华北"}).status_code == 404
    denied = [e for e in audit_log(settings) if e["action"] == "denied"]
    assert {e["target"] for e in denied} >= {"store:S002", "region:华北"}
    assert all(e["actor"] == "user:mgr1" for e in denied)


def test_bad_period_names_the_field(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/", params={"from": "2025-08-01", "to": "2025-07-01"})
    assert r.status_code == 422 and "to is exclusive" in r.text


def test_customer_360_masks_phones_for_roles_without_the_right(
    console: TestClient, settings
) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "ops")
    r = console.get("/customers/5")
    assert r.status_code == 200
    assert "138****0005" in r.text and "13800000005" not in r.text
    assert "r5a" in r.text and "r5b" in r.text  # both records, and why they are one
    assert "phone:138****0005" in r.text
    assert not [e for e in audit_log(settings) if e["action"] == "pii.read"]
    cb.login(console, "mgr2")
    r = console.get("/customers/phone:13800000005")
    assert r.status_code == 200 and "13800000005" in r.text and "O5" in r.text
    reads = [e for e in audit_log(settings) if e["action"] == "pii.read"]
    assert [(e["actor"], e["target"]) for e in reads] == [("user:mgr2", "customer:5")]


def test_a_customer_of_another_store_is_404_and_audited(console: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "mgr1")
    assert console.get("/customers/1").status_code == 200
    hidden, missing = console.get("/customers/5"), console.get("/customers/999")
    assert hidden.status_code == missing.status_code == 404
    assert "13800000005" not in hidden.text
    denied = [e for e in audit_log(settings) if e["action"] == "denied"]
    assert [e["target"] for e in denied] == ["customer:5"]


def orders_on(page: str) -> set[str]:
    return {o for o in ("O1", "O2", "O3", "O7", "O9") if f"<td>{o}</td>" in page}


def test_the_360_leaves_out_other_stores_orders_and_connections(console: TestClient) -> None:
    # P1: O1, O2, O7 at S001, O3 online, O9 at S002; friend of G1 and in GR1 (S001).
    cb.login(console, "admin")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O1", "O2", "O3", "O7", "O9"} and "G1" in page
    assert "¥67.00" in page  # GMV: O1 + O2 + O3 + O9 (O7 cancelled)
    cb.login(console, "mgr1")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O1", "O2", "O3", "O7"} and "S002" not in page
    assert "¥60.00" in page and "¥67.00" not in page  # totals over what the store may see
    cb.login(console, "mgr2")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O3", "O9"}
    assert "G1" not in page and "GR1" not in page and "S001" not in page


def test_search_by_phone_tail_name_and_identifier(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/customers", params={"q": "0005"})
    assert 'href="/customers/5"' in r.text and "138****0005" in r.text
    r = console.get("/customers", params={"q": "member_no:M5"})
    assert 'href="/customers/5"' in r.text
    r = console.get("/customers", params={"q": "e3"})
    assert 'href="/customers/3"' in r.text
    partial = console.get("/customers", params={"q": "0005"}, headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "/customers/5" in partial.text
    cb.login(console, "mgr1")
    assert "/customers/5" not in console.get("/customers", params={"q": "0005"}).text


def test_segment_count_is_live_and_scoped(console: TestClient) -> None:
    expected = {"ops": 5, "mgr1": 2, "mgr2": 3, "g1": 1, "east": 2}
    for name, n in expected.items():
        cb.login(console, name)
        r = console.post("/segments/count", data={"rule": MATCH_ALL})
        assert r.status_code == 200, r.text
        assert f"<b>{n}</b>" in r.text, name
    bad = console.post("/segments/count", data={"rule": '{"field": "cty", "op": "eq"}'})
    assert bad.status_code == 422 and "rule.field: unknown field" in bad.text
    notjson = console.post("/segments/count", data={"rule": "{"})
    assert notjson.status_code == 422 and "not JSON" in notjson.text


def test_english_toggle(console: TestClient) -> None:
    cb.login(console, "ops")
    assert "顾客池" in console.get("/", params=PERIOD).text
    console.get("/lang/en", params={"next": "/"})
    page = console.get("/", params=PERIOD).text
    assert "Customer pool" in page and "顾客池" not in page
