"""`/api/v1/sops` (issue #7): every SOP with its trigger, steps, status and figures — counted
over the journeys of the customers the token may read, as the console's SOP list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.sop import report
from siyu.sop import service as sop_service
from tests.api.tokens import issue
from tests.web import console_brand as cb

TOKENS = {
    "hq": ("hq_admin", None, None, SCOPES),
    "s1": ("store_manager", "S001", None, ("read",)),
    "g2": ("guide", None, "G2", ("read",)),
}
WEEKLY = {"key": "weekly", "name": "周报", "trigger": {"schedule": "0 9 * * 1"},
          "steps": [{"send": {"channel": "wecom", "variants": [{"text": "本周新品"}]}}]}  # fmt: skip


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    cb.build(settings, tmp_path)
    cb.welcome_journeys(settings, WEEKLY)
    auth = issue(settings, TOKENS)
    with cb.client(settings) as client:
        yield client, auth


def test_sops_with_figures_within_the_tokens_customers(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    page = client.get("/api/v1/sops", headers=auth["hq"]).json()
    assert [s["key"] for s in page["items"]] == ["weekly", "welcome"] and page["total"] == 2
    weekly, welcome = page["items"]
    assert (weekly["trigger"], weekly["status"], weekly["steps"]) == ("cron 0 9 * * 1", "draft", 1)
    assert weekly["report"]["enrolled"] == 0 and weekly["report"]["conversion"] is None
    assert welcome["trigger"] == "event friend_added" and welcome["version"] == 1
    # P1 has a paid order within 7 days of 07-05 (tests/metrics/brand.py), P3 has none
    figures = {n: client.get("/api/v1/sops/welcome", headers=auth[n]).json()["report"]
               for n in TOKENS}  # fmt: skip
    shown = {n: (f["enrolled"], f["reached"], f["delivered"], f["conversion"])
             for n, f in figures.items()}  # fmt: skip
    assert shown == {"hq": (2, 2, 0, 0.5), "s1": (1, 1, 0, 1.0), "g2": (1, 1, 0, 0.0)}
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        assert report.report(conn, brand_id=brand_id, key="welcome").treated == 2
    engine.dispose()
    assert figures["hq"]["treated"] == 2 and figures["hq"]["uplift"] is None
    one = client.get("/api/v1/sops", params={"limit": 1, "offset": 1}, headers=auth["s1"]).json()
    assert [s["key"] for s in one["items"]] == ["welcome"] and one["total"] == 2
    assert one["items"][0]["report"]["enrolled"] == 1


def test_one_sop_shows_its_current_definition(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    got = client.get("/api/v1/sops/welcome", headers=auth["s1"]).json()
    assert got["definition"]["key"] == "welcome"
    assert got["definition"]["trigger"]["event"]["type"] == "friend_added"
    assert got["definition"]["steps"][0]["send"]["variants"][0]["text"] == "你好"
    changed = {**cb.SOP, "name": "欢迎 v2"}
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        assert sop_service.import_definition(conn, brand_id=brand_id, raw=changed).version == 2
    engine.dispose()
    got = client.get("/api/v1/sops/welcome", headers=auth["s1"]).json()
    assert (got["version"], got["name"], got["definition"]["name"]) == (2, "欢迎 v2", "欢迎 v2")
    r = client.get("/api/v1/sops/nope", headers=auth["s1"])
    assert r.status_code == 404 and r.json()["error"]["field"] == "key", r.text
    assert "weekly" in r.json()["error"]["message"]  # the known keys, as the CLI says
