"""`/api/v1/metrics`: the same numbers as the CLI, behind a token, with errors that name fields."""

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
from tests.factories import run_import, write_dir
from tests.metrics import brand


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "test-suite", role="hq_admin", scopes=SCOPES)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    app.state.siyu.engine.dispose()


def test_report_through_the_api_matches_the_hand_count(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/metrics", params={"from": brand.FROM, "to": brand.TO}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sales"] == {"gmv": 12000, "orders": 6, "net_sales": 9500, "aov": 2000.0}
    assert body["pool"] == {"start": 3, "end": 2}
    s001 = client.get(
        "/api/v1/metrics",
        params={"from": brand.FROM, "to": brand.TO, "store": "S001"},
        headers=auth,
    )
    assert s001.json()["sales"]["gmv"] == 3500


def test_without_a_live_token_the_answer_is_401(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    params = {"from": brand.FROM, "to": brand.TO}
    assert client.get("/api/v1/metrics", params=params).status_code == 401
    bad = client.get("/api/v1/metrics", params=params, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthenticated"
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        assert tokens.revoke(conn, brand_id, "test-suite")
    engine.dispose()
    assert client.get("/api/v1/metrics", params=params, headers=auth).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-08-01", "to": "2025-07-01"}, "to"),
        ({"from": "2025-13-01", "to": "2025-07-01"}, "from"),
        ({"to": "2025-07-01"}, "from"),
        ({"from": "2999-01-01", "to": "2999-02-01"}, "from"),
        ({"from": "0001-01-01", "to": "2000-01-01"}, "from"),  # found by test_fuzz.py (a 500)
        ({"from": brand.FROM, "to": brand.TO, "store": "S999"}, "store"),
        ({"from": brand.FROM, "to": brand.TO, "channel": "CX"}, "channel"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(api, params: dict[str, str], field: str) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get("/api/v1/metrics", params=params, headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


def test_compare_and_cohorts(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    r = client.get(
        "/api/v1/metrics/compare",
        params={"from": brand.FROM, "to": brand.TO, "vs_from": "2024-01-01", "vs_to": "2024-02-01"},
        headers=auth,
    )
    assert r.status_code == 422 and "users is 0" in r.json()["error"]["message"]
    c = client.get(
        "/api/v1/cohorts",
        params={"from": "2025-06-01", "to": "2025-08-01", "periods": 3},
        headers=auth,
    )
    assert c.status_code == 200, c.text
    assert c.json()["cohorts"][1]["values"] == [1.0, 0.0, None]
