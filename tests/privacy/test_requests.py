"""PIPL requests through the API, the console and the CLI: only an HQ admin may export or erase
(everyone else gets a 404, audited), the export holds everything about the person and nothing
about anyone else, and every export and erasure is in the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import audit_log
from tests.privacy import brand
from tests.web import console_brand as cb

TOKENS = {
    "hq": ("hq_admin", None, SCOPES),
    "hq-read": ("hq_admin", None, ("read",)),
    "ops": ("hq_operator", None, SCOPES),
    "s1": ("store_manager", "S001", SCOPES),
}


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    brand.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    issued = {}
    with engine.begin() as conn:
        for name, (role, org, scopes) in TOKENS.items():
            token = tokens.create(conn, brand_id, name, role=role, org=org, scopes=scopes)
            issued[name] = {"Authorization": f"Bearer {token}"}
    engine.dispose()
    with cb.client(settings) as client:
        yield client, issued


def test_the_export_holds_everything_about_the_person(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/customers/phone:13800000001/export", headers=auth["hq"])
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["format"] == "siyu.customer-export/1"
    assert doc["customer"]["id"] == 1 and doc["customer"]["name"] == "王小明"
    assert doc["customer"]["birthday"] == "1990-03-04" and doc["customer"]["city"] == "苏州"
    (record,) = doc["identities"]["records"]
    assert record["record_key"] == "r1-p1" and record["source"] == "wecom"
    assert {(i["type"], i["value"]) for i in record["identifiers"]} == {
        ("external_userid", "wmP1xq"), ("phone", "+8613800000001")}  # fmt: skip
    assert sorted(o["order_key"] for o in doc["orders"]) == ["O1", "O2", "O3", "O7", "O9"]
    # stored as lookup hashes (siyu.pii), phones reach the person clear wherever a row names one
    assert {o["id_value"] for o in doc["orders"] if o["id_type"] == "phone"} == {"+8613800000001"}
    assert "_sealed" not in r.text and "name_hash" not in r.text
    assert {(c["kind"], c["staff"], c["group_name"]) for c in doc["connections"]} == {
        ("wecom_friend", "G1", None), ("group_member", None, "静安咖啡群")}  # fmt: skip
    assert [x["invitee_customer_id"] for x in doc["referrals"]["as_referrer"]] == [3]
    assert {t["tag"] for t in doc["tags"]["current"]} == {"VIP", "常客"}
    assert {h["by"] for h in doc["tags"]["history"]} == {"user:admin", "rule"}
    (sms,) = doc["messages"]["outbox"]
    assert sms["payload"]["phone"] == "+8613800000001" and sms["status"] == "pending"
    assert [d["status"] for d in doc["messages"]["deliveries"]] == ["delivered"]
    assert [t["body"] for t in doc["messages"]["staff_tasks"]] == ["王小明 13800000001 问过滤芯"]
    assert "k-p1" in {e["idempotency_key"] for e in doc["events"]}
    assert [s["score"] for s in doc["surveys"]] == [5]
    assert doc["wecom"]["contacts"][0]["unionid"] == "ouP1union"
    assert isinstance(doc["lifecycle"], list) and doc["erasures"] == []
    # the invitee is named by customer id only: nothing of P3 (e3, 赵六) is in the document
    assert '"e3"' not in json.dumps(doc) and "赵六" not in r.text
    exports = [e for e in audit_log(settings) if e["action"] == "export"]
    assert [(e["actor"], e["target"]) for e in exports] == [("token:hq", "customer:1")]


def test_only_an_hq_admin_token_with_pii_exports_or_erases(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    for name in ("ops", "s1"):  # another role: as if the customer did not exist
        r = client.get("/api/v1/customers/1/export", headers=auth[name])
        assert r.status_code == 404 and r.json()["error"]["field"] == "key", r.text
        r = client.delete("/api/v1/customers/1", params={"reason": "x"}, headers=auth[name])
        assert r.status_code == 404, r.text
    r = client.get("/api/v1/customers/1/export", headers=auth["hq-read"])
    assert r.status_code == 403 and "'pii'" in r.json()["error"]["message"]
    r = client.delete("/api/v1/customers/1", params={"reason": "x"}, headers=auth["hq-read"])
    assert r.status_code == 403 and "'write'" in r.json()["error"]["message"]
    denied = {(e["actor"], e["target"]) for e in audit_log(settings) if e["action"] == "denied"}
    assert denied == {("token:ops", "export:1"), ("token:ops", "erase:1"),
                      ("token:s1", "export:1"), ("token:s1", "erase:1")}  # fmt: skip
    assert client.get("/api/v1/customers/1", headers=auth["hq"]).json()["erased_at"] is None


def test_erase_through_the_api(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.delete("/api/v1/customers/1", headers=auth["hq"])
    assert r.status_code == 422 and r.json()["error"]["field"] == "reason"
    r = client.delete("/api/v1/customers/phone:13800000001", params={"reason": "工单 #88 本人要求"},
                      headers=auth["hq"])  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["customer_id"] == 1 and r.json()["counts"]["outbox_cancelled"] == 1
    again = client.delete("/api/v1/customers/1", params={"reason": "x"}, headers=auth["hq"])
    assert again.status_code == 409 and again.json()["error"]["field"] == "key"
    gone = client.get("/api/v1/customers/phone:13800000001", headers=auth["hq"])
    assert gone.status_code == 404
    c = client.get("/api/v1/customers/1", headers=auth["hq"]).json()
    assert c["erased_at"] and c["profile"]["name"] is None
    assert [r["key"] for r in c["records"]] == ["erased:1"]
    assert c["orders"]["orders"] == 5  # the orders stay, anonymous
    (entry,) = [e for e in audit_log(settings) if e["action"] == "erase"]
    assert entry["actor"] == "token:hq" and entry["detail"]["reason"] == "工单 #88 本人要求"
    doc = client.get("/api/v1/customers/1/export", headers=auth["hq"]).json()
    assert doc["customer"]["name"] is None and doc["erasures"][0]["reason"] == "工单 #88 本人要求"


def test_the_console_offers_export_and_erase_to_the_hq_admin_only(
    settings: Settings, tmp_path: Path
) -> None:
    brand.build(settings, tmp_path)
    with cb.client(settings) as c:
        for who in ("ops", "mgr1"):
            cb.login(c, who)
            page = c.get("/customers/1")
            assert page.status_code == 200 and 'data-testid="pipl"' not in page.text
            assert c.get("/customers/1/export").status_code == 404
            assert c.get("/customers/1/erase").status_code == 404
            r = c.post("/customers/1/erase", data={"reason": "x", "confirm": "yes"})
            assert r.status_code == 404
        cb.login(c, "admin")
        page = c.get("/customers/1")
        assert "导出个人信息" in page.text and "删除个人信息" in page.text
        r = c.get("/customers/1/export")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        assert r.json()["customer"]["name"] == "王小明"
        form = c.get("/customers/1/erase")
        assert form.status_code == 200 and 'name="reason"' in form.text
        token = c.headers.pop("X-CSRF-Token")
        assert (
            c.post("/customers/1/erase", data={"reason": "x", "confirm": "yes"}).status_code == 403
        )
        c.headers["X-CSRF-Token"] = token
        r = c.post("/customers/1/erase", data={"reason": " ", "confirm": "yes"})
        assert r.status_code == 422 and "请填写删除原因" in r.text
        r = c.post("/customers/1/erase", data={"reason": "本人要求"})
        assert r.status_code == 422 and "请勾选确认" in r.text
        r = c.post("/customers/1/erase", data={"reason": "本人要求", "confirm": "yes"},
                   follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and r.headers["location"] == "/customers/1"
        page = c.get("/customers/1")
        assert 'data-testid="erased"' in page.text and "王小明" not in page.text
        assert "/customers/1/erase" not in page.text  # nothing left to erase
    log = audit_log(settings)
    assert {(e["actor"], e["action"]) for e in log} >= {
        ("user:admin", "export"), ("user:admin", "erase"), ("user:ops", "denied"),
        ("user:mgr1", "denied")}  # fmt: skip


def test_cli_export_erase_and_recollect(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli import app

    settings = Settings(data_dir=tmp_path / "data")
    brand.build(settings, tmp_path)
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "customer"]
    out = tmp_path / "p5.json"
    r = runner.invoke(app, [*base, "export", "member_no:M5X", "--out", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["customer"]["id"] == 5 and len(doc["identities"]["records"]) == 2
    assert doc["memberships"][0]["member_no"] == "M5X"
    r = runner.invoke(app, [*base, "erase", "5", "--reason", "request"], input="n\n")
    assert r.exit_code == 2 and "not erased" in r.output
    r = runner.invoke(app, [*base, "erase", "5", "--reason", "request", "--yes"])
    assert r.exit_code == 0 and "Customer 5 erased: 2 records" in r.output, r.output
    r = runner.invoke(app, [*base, "erase", "5", "--reason", "request", "--yes"])
    assert r.exit_code == 2 and "customer 5 was erased on" in r.output
    r = runner.invoke(app, [*base, "recollect", "phone:13900000000"])
    assert r.exit_code == 2 and "is not on the erasure list" in r.output
    r = runner.invoke(app, [*base, "recollect", "member_no:M5X"])
    assert r.exit_code == 0 and "customer 5's" in r.output
