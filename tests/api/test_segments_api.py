"""`/api/v1/segments` (issue #7): live counts and members within the token's customers, saved
segments defined by HQ tokens only, PII masked unless the role has the right and the token
`pii` (and then audited), every bad input named."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.segments import evaluate
from siyu.segments import service as segments
from siyu.segments.rules import parse
from siyu.warehouse.service import open_synced
from tests.api.tokens import issue
from tests.factories import audit_log
from tests.web import console_brand as cb

TOKENS = {
    "hq": ("hq_admin", None, None, SCOPES),
    "ops": ("hq_operator", None, None, ("read", "pii")),
    "s1": ("store_manager", "S001", None, ("read",)),
    "s1pii": ("store_manager", "S001", None, ("read", "pii")),
    "s1w": ("store_manager", "S001", None, ("read", "write")),
    "s2": ("store_manager", "S002", None, ("read",)),
    "g1": ("guide", None, "G1", ("read",)),
}
EVERYONE = {"not": {"field": "city", "op": "eq", "value": "火星"}}
BUYERS = {"field": "orders.count", "op": "gte", "value": 1}


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, Any]]]:
    cb.build(settings, tmp_path)
    auth = issue(settings, TOKENS)
    with cb.client(settings) as client:
        yield client, auth


def cli_count(settings: Settings, rule: dict[str, Any], as_of: str) -> int:
    """What `siyu segments count --rule … --as-of …` counts (brand-wide)."""
    wh = open_synced(settings)
    try:
        ev = evaluate.prepare(
            wh.con, parse(rule), scope=Scope(wh.brand_id, settings.timezone),
            as_of=evaluate.day_start(date.fromisoformat(as_of), settings.timezone),
            constants=settings.metric_constants,
        )  # fmt: skip
        return evaluate.count(wh.con, ev)
    finally:
        wh.con.close()


def test_a_count_is_live_and_within_the_tokens_customers(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    expected = {"hq": 5, "s1": 2, "s2": 3, "g1": 1}  # console_brand.READABLE
    for name, n in expected.items():
        r = client.post("/api/v1/segments/count", json={"rule": EVERYONE}, headers=auth[name])
        assert r.status_code == 200, r.text
        assert r.json()["count"] == n and r.json()["sample"] == [], name
    # as of a day: P1's first order is on 07-05; by 08-02 P3 (O8) and P5 (O4, O5) bought too
    for day, n in (("2025-07-01", 0), ("2025-07-06", 1), ("2025-08-02", 3)):
        r = client.post("/api/v1/segments/count", json={"rule": BUYERS, "as_of": day},
                        headers=auth["hq"]).json()  # fmt: skip
        assert r["count"] == n == cli_count(settings, BUYERS, day), day
        assert r["as_of"] == f"{day}T00:00:00+08:00"
    late = {"rule": BUYERS, "as_of": "2025-08-02"}
    mine = client.post("/api/v1/segments/count", json=late, headers=auth["s2"]).json()
    assert mine["count"] == 3  # S002 reads P1 (O9), P3 and P5
    mine = client.post("/api/v1/segments/count", json=late, headers=auth["g1"]).json()
    assert mine["count"] == 1


def test_a_sample_is_masked_unless_the_role_has_the_right_and_the_token_pii(
    api, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    body = {"rule": EVERYONE, "sample": 5}
    phones = {}
    for name in ("s1", "s1pii", "ops"):
        r = client.post("/api/v1/segments/count", json=body, headers=auth[name]).json()
        phones[name] = {m["customer_id"]: m["phone"] for m in r["sample"]}
    assert phones["s1"] == {1: "138****0001", 2: None}
    assert phones["s1pii"] == {1: "+8613800000001", 2: None}
    assert phones["ops"][5] == "138****0005" and len(phones["ops"]) == 5
    # a saved segment's members: the same masking, each unmasked page audited
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        seg_id = segments.create(conn, brand_id=brand_id, name="everyone", rule=EVERYONE)
    engine.dispose()
    for name in ("s1", "s1pii"):
        page = client.get("/api/v1/segments/everyone/members", headers=auth[name]).json()
        assert {m["customer_id"]: m["phone"] for m in page["items"]} == phones[name]
    reads = [e for e in audit_log(settings) if e["action"] == "pii.read"]
    assert sorted((e["actor"], e["target"]) for e in reads) == [
        ("token:s1pii", "segment-preview"), ("token:s1pii", f"segment:{seg_id}")]  # fmt: skip
    assert [e["detail"]["customers"] for e in reads] == [[1, 2], [1, 2]]


def test_bad_input_is_a_422_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    two = {"all": [{"field": "city", "op": "eq", "value": "上海"},
                   {"field": "city", "op": "bigger", "value": "x"}]}  # fmt: skip
    cases = [
        ({"rule": two}, "rule.all[1].op"),
        ({"rule": {"field": "cty", "op": "eq", "value": "x"}}, "rule.field"),
        ({"rule": {"all": []}, "as_of": "2025-07-01"}, "rule.all"),
        ({"rule": EVERYONE, "as_of": "2025-13-01"}, "as_of"),
        ({"rule": EVERYONE, "as_of": "0001-01-01"}, "as_of"),
        ({"rule": EVERYONE, "sample": 1000}, "sample"),
        ({"rule": [1]}, "rule"),
        ({}, "rule"),
    ]
    for body, field in cases:
        r = client.post("/api/v1/segments/count", json=body, headers=auth["hq"])
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, (body, r.text)
    r = client.get("/api/v1/segments/nope", headers=auth["hq"])
    assert r.status_code == 404 and r.json()["error"]["field"] == "segment", r.text
    r = client.get("/api/v1/segments/nope/members", headers=auth["hq"])
    assert r.status_code == 404 and r.json()["error"]["field"] == "segment", r.text


def test_saved_segments_are_defined_by_hq_and_counted_per_token(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    new = {"name": "everyone", "rule": EVERYONE, "description": "all"}
    r = client.post("/api/v1/segments", json=new, headers=auth["s1w"])
    assert r.status_code == 403 and r.json()["error"]["field"] == "role", r.text
    r = client.post("/api/v1/segments", json=new, headers=auth["hq"])
    assert r.status_code == 201, r.text
    seg = r.json()
    assert (seg["name"], seg["version"], seg["member_count"]) == ("everyone", 1, None)
    again = client.post("/api/v1/segments", json=new, headers=auth["hq"])
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    bad = client.post("/api/v1/segments", json={**new, "name": "x", "rule": {"not": 1}},
                      headers=auth["hq"])  # fmt: skip
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "rule.not", bad.text
    r = client.post("/api/v1/segments/everyone/refresh", headers=auth["hq"])
    assert r.status_code == 200 and r.json()["members"] == 5 == r.json()["entered"], r.text
    listed = {n: client.get("/api/v1/segments", headers=auth[n]).json() for n in ("hq", "s1", "g1")}
    assert {n: page["items"][0]["member_count"] for n, page in listed.items()} == {
        "hq": 5, "s1": 2, "g1": 1}  # fmt: skip
    assert listed["s1"]["total"] == 1 and listed["s1"]["limit"] == 50
    by_id = client.get(f"/api/v1/segments/{seg['id']}", headers=auth["s1"]).json()
    assert by_id["name"] == "everyone" and by_id["member_count"] == 2
    # members now, within the token's customers, paged by customer id
    page = client.get("/api/v1/segments/everyone/members", headers=auth["s1"]).json()
    assert [m["customer_id"] for m in page["items"]] == [1, 2] and page["total"] == 2
    page = client.get("/api/v1/segments/everyone/members", params={"limit": 1, "offset": 1},
                      headers=auth["s2"]).json()  # fmt: skip
    assert [m["customer_id"] for m in page["items"]] == [3] and page["total"] == 3
    assert page["items"][0]["phone"] is None and page["items"][0]["name"] is None
    # a new rule: a new version, members change at the next refresh
    r = client.put("/api/v1/segments/everyone", json={"rule": BUYERS}, headers=auth["hq"])
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["member_count"] == 5
    members = client.get("/api/v1/segments/everyone/members", params={"as_of": "2025-07-06"},
                         headers=auth["hq"]).json()  # fmt: skip
    assert [m["customer_id"] for m in members["items"]] == [1]
    r = client.post("/api/v1/segments/everyone/refresh", headers=auth["hq"]).json()
    assert (r["members"], r["exited"]) == (3, 2)
    assert client.get("/api/v1/segments", headers=auth["g1"]).json()["items"][0][
        "member_count"] == 1  # fmt: skip
    r = client.put("/api/v1/segments/everyone", json={"rule": BUYERS}, headers=auth["s1w"])
    assert r.status_code == 403
