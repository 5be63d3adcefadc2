"""Tags through the REST API (token, error shape) and on the console's customer 360."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from siyu.app import create_app
from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.tags import service
from tests.segments.conftest import build, customer_of
from tests.web import console_brand as cb


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    build(settings, tmp_path / "in")
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "crm", role="hq_admin", scopes=SCOPES)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    app.state.siyu.engine.dispose()


def test_tags_api(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    assert client.get("/api/v1/tags").status_code == 401
    listed = client.get("/api/v1/tags", headers=auth).json()["tags"]
    coffee = next(t for t in listed if t["name"] == "咖啡爱好者")
    assert (coffee["group"], coffee["kind"], coffee["customers"]) == ("兴趣", "manual", 2)

    r = client.post("/api/v1/tags", json={"group": "等级", "name": "VIP"}, headers=auth)
    assert r.status_code == 201, r.text
    vip = r.json()["id"]
    r = client.post("/api/v1/tags", json={"group": "等级", "name": "VIP"}, headers=auth)
    assert r.status_code == 409 and r.json()["error"]["field"] == "name"
    r = client.post("/api/v1/tags", json={"group": "自动", "name": "x",
                                          "rule": {"field": "cty", "op": "eq", "value": "上海"}},
                    headers=auth)  # fmt: skip
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "rule" and "rule.field" in r.json()["error"]["message"]
    r = client.get("/api/v1/tags", params={"group": "nope"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "group"

    engine, _ = open_brand(settings)
    try:
        c = customer_of(engine, "c")
        url = f"/api/v1/customers/{c}/tags/{vip}"
        first, second = client.post(url, headers=auth), client.post(url, headers=auth)
        assert first.json() == {"customer_id": c, "tag_id": vip, "changed": True}
        assert second.json()["changed"] is False
        assert client.delete(url, headers=auth).json()["changed"] is True
        assert client.delete(url, headers=auth).json()["changed"] is False
        with engine.connect() as conn:
            got = conn.execute(
                text('SELECT action, "by" FROM customer_tag_history WHERE tag_id = :t ORDER BY id'),
                {"t": vip},
            ).all()
        assert [tuple(r) for r in got] == [("added", "api:crm"), ("removed", "api:crm")]
    finally:
        engine.dispose()
    r = client.post(f"/api/v1/customers/999999/tags/{vip}", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["field"] == "customer_id"
    r = client.post(f"/api/v1/customers/{c}/tags/424242", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["field"] == "tag_id"


def test_customer_360_shows_tags_with_who_and_when(settings: Settings, tmp_path: Path) -> None:
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        vip = service.create_tag(conn, brand_id=brand_id, group="等级", name="VIP")
        service.tag_customers(conn, brand_id=brand_id, tag_id=vip, customer_ids=[1],
                              by="sop:welcome", source="sop")  # fmt: skip
    engine.dispose()
    with cb.client(settings) as c:
        cb.login(c, "admin")
        page = c.get("/customers/1").text
        assert 'data-testid="tags"' in page
        assert "等级/VIP" in page and "sop:welcome" in page
        other = c.get("/customers/2").text
        assert "等级/VIP" not in other and ("暂无标签" in other or "No tags" in other)
