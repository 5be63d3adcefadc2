"""Role-bound API tokens (issue #7): a token reads what its role and org unit may read, calls
only the endpoints its scopes allow, and stops working when revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text

from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.db import make_engine
from siyu.migrate import upgrade
from siyu.runtime import open_brand
from tests.factories import audit_log
from tests.web import console_brand as cb

# name: (role, org, staff, scopes)
TOKENS = {
    "hq": ("hq_admin", None, None, SCOPES),
    "s1": ("store_manager", "S001", None, ("read",)),
    "s1pii": ("store_manager", "S001", None, ("read", "pii")),
    "ops": ("hq_operator", None, None, ("read", "pii")),
    "pos": (tokens.DEFAULT_ROLE, None, None, tokens.DEFAULT_SCOPES),
    "g2": ("guide", None, "G2", ("read", "ingest")),
}


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    issued = {}
    with engine.begin() as conn:
        for name, (role, org, staff, scopes) in TOKENS.items():
            token = tokens.create(conn, brand_id, name, role=role, org=org, staff_code=staff,
                                  scopes=scopes)  # fmt: skip
            issued[name] = {"Authorization": f"Bearer {token}"}
    engine.dispose()
    with cb.client(settings) as client:
        yield client, issued


def test_a_store_token_reads_only_its_stores_customers(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    for cid in (1, 2):  # S001's customers (console_brand.READABLE["mgr1"])
        r = client.get(f"/api/v1/customers/{cid}", headers=auth["s1"])
        assert r.status_code == 200, r.text
    for key in ("3", "4", "5", "phone:13800000005"):
        r = client.get(f"/api/v1/customers/{key}", headers=auth["s1"])
        assert r.status_code == 404 and r.json()["error"]["field"] == "key", r.text
    # exactly like a customer that does not exist
    missing = client.get("/api/v1/customers/999", headers=auth["s1"])
    assert missing.status_code == 404
    denied = [e for e in audit_log(settings) if e["action"] == "denied"]
    assert {e["target"] for e in denied} == {"customer:3", "customer:4", "customer:5"}
    assert {e["actor"] for e in denied} == {"token:s1"}
    for q, mine in (("0001", [1]), ("0005", [])):  # P5 is not S001's
        hits = client.get("/api/v1/customers", params={"q": q}, headers=auth["s1"]).json()
        assert [h["id"] for h in hits["items"]] == mine
    hq = client.get("/api/v1/customers", params={"q": "0005"}, headers=auth["hq"]).json()
    assert [h["id"] for h in hq["items"]] == [5]
    # P1 also bought at S002 (O9): a S001 token sees their orders at S001 and online only
    orders = client.get("/api/v1/customers/1", headers=auth["s1"]).json()["orders"]["latest"]
    assert "O9" not in {o["order_key"] for o in orders} and "O1" in {o["order_key"] for o in orders}
    r = client.get("/api/v1/metrics", params={"from": "2025-07-01", "to": "2025-08-01",
                                              "store": "S002"}, headers=auth["s1"])  # fmt: skip
    assert r.status_code == 404 and r.json()["error"]["field"] == "store", r.text
    stores = client.get("/api/v1/stores", headers=auth["s1"]).json()
    assert [s["code"] for s in stores["items"]] == ["S001"]
    staff = client.get("/api/v1/staff", headers=auth["s1"]).json()
    assert [s["code"] for s in staff["items"]] == ["G1"]


def test_personal_data_needs_the_role_and_the_pii_scope(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    shown = {}
    for name in ("s1", "s1pii", "ops", "hq"):
        c = client.get("/api/v1/customers/1", headers=auth[name]).json()
        phones = [
            i["value"] for r in c["records"] for i in r["identifiers"] if i["type"] == "phone"
        ]
        shown[name] = phones[0]
    # a store manager may see phones, but this token lacks `pii`; an operator's role may not
    assert shown == {"s1": "138****0001", "s1pii": "+8613800000001", "ops": "138****0001",
                     "hq": "+8613800000001"}  # fmt: skip
    reads = {e["actor"] for e in audit_log(settings) if e["action"] == "pii.read"}
    assert reads == {"token:s1pii", "token:hq"}  # only unmasked answers are personal-data reads
    hit = client.get("/api/v1/customers", params={"q": "13800000005"}, headers=auth["ops"]).json()
    assert hit["items"][0]["phone"] == "138****0005"
    # an order by a phone no record carries makes a reference record keyed by that phone
    order = {"order_id": "X1", "platform": "mp", "id_type": "phone", "id_value": "13911112222",
             "created_at": "2025-07-20 09:30", "amount_fen": 100, "status": "paid"}  # fmt: skip
    assert client.post("/api/v1/ingest", json={"orders": [order]}, headers=auth["hq"]).is_success
    keys = {}
    for name in ("ops", "hq"):
        c = client.get("/api/v1/customers/phone:13911112222", headers=auth[name]).json()
        keys[name] = [r["key"] for r in c["records"]]
    assert keys == {"ops": ["ref:phone:139****2222"], "hq": ["ref:phone:+8613911112222"]}
    cb.login(client, "ops")
    page = client.get("/customers/phone:13911112222").text
    assert "ref:phone:139****2222" in page and "+8613911112222" not in page


def test_an_ingest_token_cannot_read_and_a_read_token_cannot_ingest(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/customers/1", headers=auth["pos"])
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert error["code"] == "forbidden" and "lacks the 'read' scope" in error["message"]
    event = {"type": "coupon.expiring", "idempotency_key": "k1", "customer": "1",
             "occurred_at": "2025-07-20T09:00:00"}  # fmt: skip
    assert client.post("/api/v1/events", json=event, headers=auth["pos"]).json()["created"] == 1
    r = client.post("/api/v1/events", json=event, headers=auth["s1"])
    assert r.status_code == 403 and "'ingest'" in r.json()["error"]["message"]
    # a guide's token posts events of its own customers only; others read as unknown
    mine = {**event, "idempotency_key": "k2", "customer": "3"}
    other = {**event, "idempotency_key": "k3", "customer": "1"}
    r = client.post("/api/v1/events", json={"events": [mine, other]}, headers=auth["g2"]).json()
    assert [x["status"] for x in r["results"]] == ["created", "rejected"]
    assert r["results"][1] == {"status": "rejected", "field": "events[1].customer",
                               "message": "no customer 1"}  # fmt: skip
    # interchange rows are brand-wide: a guide's token may not send them
    r = client.post("/api/v1/ingest", json={"orders": []}, headers=auth["g2"])
    assert r.status_code == 403 and r.json()["error"]["field"] == "role"


def test_every_api_route_declares_its_scope_and_enforces_it(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    paths = client.app.openapi()["paths"]
    routes = [
        route
        for included in client.app.routes
        if hasattr(included, "original_router")
        for route in included.original_router.routes
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and "/api/v1" + route.path in paths
    ]  # the routers as written: their dependencies hold the scopes
    assert len(routes) == sum(len(ops) for ops in paths.values()) >= 14

    def declared(dependant: Any) -> set[str]:
        found = set(getattr(dependant.call, "scopes", ()))
        for sub in dependant.dependencies:
            found |= declared(sub)
        return found

    for route in routes:
        scopes = declared(route.dependant)
        assert scopes, f"{route.path} declares no scope"
        method = sorted(route.methods)[0]
        path = "/api/v1" + route.path.replace("{key}", "1").replace("{customer_id}", "1")
        path = path.replace("{tag_id}", "1").replace("{segment}", "1")
        assert "{" not in path, f"{route.path}: a path parameter this walk does not fill"
        # a token without one of the scopes is refused, naming it, before anything runs
        name, has = ("s1", {"read"}) if "ingest" in scopes else ("pos", {"ingest"})
        r = client.request(method, path, headers=auth[name], json={})
        message = r.json()["error"]["message"]
        assert r.status_code == 403 and any(f"'{s}'" in message for s in scopes - has), (
            route.path, r.text)  # fmt: skip


def test_a_revoked_token_gets_401(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    assert client.get("/api/v1/stores", headers=auth["hq"]).status_code == 200
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        assert tokens.revoke(conn, brand_id, "hq")
    engine.dispose()
    r = client.get("/api/v1/stores", headers=auth["hq"])
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = client.post("/api/v1/events", json={}, headers=auth["hq"])
    assert r.status_code == 401
    # revoked by another process (`siyu api-token revoke` at a terminal): a server that
    # checked the token less than a second ago may let it through until that second is over
    assert client.get("/api/v1/stores", headers=auth["ops"]).status_code == 200
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        conn.execute(text("UPDATE api_token SET revoked_at = created_at WHERE name = 'ops'"))
    engine.dispose()
    time.sleep(tokens.REMEMBER_SECONDS)
    assert client.get("/api/v1/stores", headers=auth["ops"]).status_code == 401


def test_bad_token_requests_name_the_field(settings: Settings, tmp_path: Path) -> None:
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    cases = [
        ({"role": "boss"}, "role"),
        ({"role": "store_manager"}, "org"),
        ({"role": "store_manager", "org": "S9"}, "org"),
        ({"role": "guide"}, "staff"),
        ({"scopes": ("read", "admin")}, "scope"),
        ({"scopes": ()}, "scope"),
    ]
    with engine.begin() as conn:
        for kwargs, field in cases:
            with pytest.raises(tokens.TokenError) as e:
                tokens.create(conn, brand_id, "x", **kwargs)  # type: ignore[arg-type]
            assert e.value.field == field, (kwargs, str(e.value))
        tokens.create(conn, brand_id, "once")
        tokens.revoke(conn, brand_id, "once")
        with pytest.raises(tokens.TokenError, match="was revoked; choose another name"):
            tokens.create(conn, brand_id, "once")
    engine.dispose()


def test_token_commands_create_list_and_revoke(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli import app

    settings = Settings(data_dir=tmp_path / "data")
    cb.build(settings, tmp_path)
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "token"]
    made = runner.invoke(app, [*base, "create", "pos-s1", "--role", "store_manager", "--org",
                               "S001", "--scope", "ingest,read"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert made.output.strip().splitlines()[-1].startswith("siyu_")
    default = runner.invoke(app, [*base, "create", "crm"])
    assert "role hq_operator, HQ, scopes: ingest" in default.output
    bad = runner.invoke(app, [*base, "create", "x", "--scope", "root"])
    assert bad.exit_code == 2 and "scope: unknown scope 'root'" in bad.output
    assert runner.invoke(app, [*base, "revoke", "crm"]).exit_code == 0
    listed = runner.invoke(app, [*base, "list"], env={"COLUMNS": "200"})
    lines = [line for line in listed.output.splitlines() if "pos-s1" in line or "crm" in line]
    assert "store_manager" in lines[1] and "S001" in lines[1] and "ingest read" in lines[1]
    assert "live" in lines[1] and "revoked" in lines[0]


def test_existing_tokens_migrate_to_hq_admin_with_every_scope(settings: Settings) -> None:
    engine = make_engine(settings)
    upgrade(engine, "0010_delivery")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO brand (id, code, name, timezone, created_at) "
                          "VALUES (1, 'b', 'B', 'Asia/Shanghai', '2025-01-01')"))  # fmt: skip
        conn.execute(
            text("INSERT INTO org_unit (id, brand_id, kind, name) VALUES (7, 1, 'hq', 'HQ')")
        )
        conn.execute(text("INSERT INTO api_token (brand_id, name, token_hash, created_at) "
                          "VALUES (1, 'old', :h, '2025-01-01')"), {"h": "0" * 64})  # fmt: skip
    upgrade(engine)
    with engine.begin() as conn:
        row = conn.execute(text("SELECT role, org_unit_id, scopes FROM api_token")).one()
    engine.dispose()
    assert tuple(row) == ("hq_admin", 7, "ingest read write pii")
