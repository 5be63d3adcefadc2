"""Customers, stores, staff and channels through /api/v1 (issue #7): the console's data for
integrations, paged, with every personal-data read audited under the token's name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import audit_log, run_import, write_dir
from tests.metrics import brand


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "crm", role="hq_admin", scopes=SCOPES)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    app.state.siyu.engine.dispose()


def test_search_and_360_are_audited_as_the_integration(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/customers", params={"q": "138 0000 0005"}, headers=auth)
    assert r.status_code == 200, r.text
    hits = r.json()["items"]
    assert [(h["id"], h["phone"], h["matched"]) for h in hits] == [(5, "+8613800000005", "phone")]
    c = client.get("/api/v1/customers/phone:13800000005", headers=auth).json()
    assert c["id"] == 5 and sorted(x["key"] for x in c["records"]) == ["r5a", "r5b"]
    assert c["why_merged"] and c["why_merged"][0]["shares"] == "phone:+8613800000005"
    assert [o["order_key"] for o in c["orders"]["latest"]] and c["orders"]["orders"] >= 1
    reads = [e for e in audit_log(settings) if e["action"] == "pii.read"]
    assert {(e["actor"], e["target"]) for e in reads} == {
        ("token:crm", "customer-search"), ("token:crm", "customer:5")}  # fmt: skip


@pytest.mark.parametrize(
    ("url", "params", "status", "field"),
    [
        ("/api/v1/customers/phone:13999999999", {}, 404, "key"),
        ("/api/v1/customers/999", {}, 404, "key"),
        ("/api/v1/customers/99999999999999999999", {}, 404, "key"),  # found by test_fuzz.py
        ("/api/v1/customers/²", {}, 404, "key"),  # a Unicode digit int() refuses (test_fuzz.py)
        ("/api/v1/customers/²/export", {}, 404, "key"),
        ("/api/v1/channels", {"offset": 2**63}, 422, "offset"),
        ("/api/v1/customers", {"q": "王\x00"}, 422, "q"),  # PostgreSQL text cannot hold NUL
        ("/api/v1/customers/fax:1", {}, 404, "key"),
        ("/api/v1/customers", {}, 422, "q"),
        ("/api/v1/customers", {"q": "x", "limit": 0}, 422, "limit"),
        ("/api/v1/stores", {"offset": -1}, 422, "offset"),
        ("/api/v1/staff", {"limit": 501}, 422, "limit"),
    ],
)
def test_bad_requests_name_the_field(api, url, params, status, field) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get(url, params=params, headers=auth)
    assert r.status_code == status and r.json()["error"]["field"] == field, r.text


def test_unicode_digits_are_not_customer_ids(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/customers", params={"q": "²³"}, headers=auth)
    assert r.status_code == 200 and r.json()["items"] == []
    event = {"type": "coupon.used", "idempotency_key": "u1", "customer": "٣",
             "occurred_at": "2025-07-20T09:00:00"}  # fmt: skip
    r = client.post("/api/v1/events", json=event, headers=auth)
    assert r.status_code == 200 and r.json()["results"][0]["field"] == "events[0].customer"


def test_directory_lists_page_with_a_total(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    stores = client.get("/api/v1/stores", headers=auth).json()
    assert stores["total"] == 2 and [s["code"] for s in stores["items"]] == ["S001", "S002"]
    assert stores["items"][0]["city"] == "上海"
    second = client.get("/api/v1/channels", params={"limit": 1, "offset": 1}, headers=auth).json()
    assert second["total"] == 3 and [c["code"] for c in second["items"]] == ["C2"]
    staff = client.get("/api/v1/staff", params={"store": "S002"}, headers=auth).json()
    assert [(s["code"], s["store"]) for s in staff["items"]] == [("G2", "S002")]
    for url in ("/api/v1/stores", "/api/v1/staff", "/api/v1/channels", "/api/v1/customers/1"):
        assert client.get(url).status_code == 401


def test_nul_characters_in_a_body_are_refused_with_their_path(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.post("/api/v1/tags", json={"group": "兴趣", "name": "咖啡\u0000"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "name", r.text
    r = client.post("/api/v1/ingest", json={"orders": [{"order_id": "x\u0000"}]}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "orders[0].order_id", r.text
