"""Walk every /api/v1 route that reads with a store manager's token (S001) and a guide's (G1),
both holding `pii`: no row of another store and no customer they may not read appears in any
answer (issue #7), as tests/web/test_no_leak.py does for the console. The walk is checked
against the app's route table, so a route added later without being walked here fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from httpx import Response

from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.segments import service as segments
from tests.api.test_sops_api import WEEKLY
from tests.api.tokens import issue
from tests.metrics import brand
from tests.web import console_brand as cb
from tests.web.test_no_leak import CUSTOMER_MARKS, KEYS, QUERIES, S002_MARKS, leaks

PERIOD = {"from": brand.FROM, "to": brand.TO}
BEFORE = {"vs_from": brand.FROM, "vs_to": brand.TO}  # itself: every factor above 0
MATCH_ALL = {"not": {"field": "city", "op": "eq", "value": "火星"}}
AT_S002 = {"field": "orders.count", "op": "gte", "value": 1, "store": ["S002"]}
TOKENS = {
    "mgr1": ("store_manager", "S001", None, ("read", "pii")),
    "g1": ("guide", None, "G1", ("read", "pii")),
    "hq": ("hq_admin", None, None, SCOPES),
}

# Every /api/v1 route that reads, walked below (POST /segments/count reads only).
WALKED = {
    ("GET", "/api/v1/metrics"),
    ("GET", "/api/v1/metrics/compare"),
    ("GET", "/api/v1/cohorts"),
    ("GET", "/api/v1/customers"),
    ("GET", "/api/v1/customers/{key}"),
    ("GET", "/api/v1/customers/{key}/export"),
    ("GET", "/api/v1/tags"),
    ("GET", "/api/v1/stores"),
    ("GET", "/api/v1/staff"),
    ("GET", "/api/v1/channels"),
    ("GET", "/api/v1/segments"),
    ("GET", "/api/v1/segments/{segment}"),
    ("GET", "/api/v1/segments/{segment}/members"),
    ("POST", "/api/v1/segments/count"),
    ("GET", "/api/v1/sops"),
    ("GET", "/api/v1/sops/{key}"),
}
# Routes that change data: not walked here (their tests prove a store's or guide's token
# cannot reach another store's customers: tests/api/test_tokens.py, test_ingest_api.py,
# test_segments_api.py, tests/privacy).
WRITES = {
    ("POST", "/api/v1/events"),
    ("POST", "/api/v1/ingest"),
    ("DELETE", "/api/v1/customers/{key}"),
    ("POST", "/api/v1/tags"),
    ("POST", "/api/v1/customers/{customer_id}/tags/{tag_id}"),
    ("DELETE", "/api/v1/customers/{customer_id}/tags/{tag_id}"),
    ("POST", "/api/v1/segments"),
    ("PUT", "/api/v1/segments/{segment}"),
    ("POST", "/api/v1/segments/{segment}/refresh"),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every /api/v1 (method, path): the routers as included, and the OpenAPI document."""
    found = set()
    for included in app.routes:
        router = getattr(included, "original_router", None)
        prefix = included.include_context.prefix if router is not None else ""  # type: ignore[attr-defined]
        for route in router.routes if router is not None else [included]:
            if isinstance(route, APIRoute) and (prefix + route.path).startswith("/api/v1"):
                found |= {(m, prefix + route.path) for m in route.methods if m != "HEAD"}
    for path, ops in app.openapi()["paths"].items():
        found |= {(m.upper(), path) for m in ops}
    return found


def customer_ids(value: Any) -> set[int]:
    """Every customer id an answer names (`customer_id` anywhere, `id` of a customer)."""
    if isinstance(value, list):
        return set().union(*map(customer_ids, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = {int(v) for k, v in value.items() if k == "customer_id" and v is not None}
    return found.union(*map(customer_ids, value.values()))


@pytest.fixture
def walked(settings: Settings, tmp_path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    cb.build(settings, tmp_path)
    cb.welcome_journeys(settings, WEEKLY)  # SOPs with journeys of P1 (S001) and P3 (S002)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        segments.create(conn, brand_id=brand_id, name="everyone", rule=MATCH_ALL)
    engine.dispose()
    auth = issue(settings, TOKENS)
    with cb.client(settings) as client:
        r = client.post("/api/v1/segments/everyone/refresh", headers=auth["hq"])
        assert r.json()["members"] == 5, r.text
        yield client, auth


@pytest.mark.parametrize("who", ["mgr1", "g1"])
def test_walk_every_api_route_and_find_no_foreign_row(walked, who: str) -> None:  # type: ignore[no-untyped-def]
    client, auth = walked
    readable = cb.READABLE[who]
    foreign = list(S002_MARKS)
    for cid, marks in CUSTOMER_MARKS.items():
        if cid not in readable:  # a phone also as stored, +86…
            foreign += marks + [f"+86{m}" for m in marks if len(m) == 11 and m.isdigit()]
    assert api_routes(client.app) == WALKED | WRITES, "an /api/v1 route is not walked"
    answers: list[tuple[str, Response, list[str]]] = []
    seen: set[tuple[str, str]] = set()

    def call(method: str, route: str, *, path: dict[str, str] | None = None,
             echo: tuple[str, ...] = (), **kw: Any) -> Response:  # fmt: skip
        seen.add((method, route))
        url = route.format(**(path or {}))
        r = client.request(method, url, headers=auth[who], **kw)
        answers.append((f"{method} {url} {kw}", r, [*echo, *(path or {}).values()]))
        return r

    def get(route: str, **kw: Any) -> Response:
        return call("GET", route, **kw)

    assert get("/api/v1/metrics", params=PERIOD).status_code == 200
    assert get("/api/v1/metrics", params={**PERIOD, "store": "S001"}).status_code == 200
    assert get("/api/v1/metrics", params={**PERIOD, "region": "华东"}).status_code == 200
    for params in ({"store": "S002"}, {"store": "S999"}, {"region": "华北"}):
        r = get("/api/v1/metrics", params={**PERIOD, **params}, echo=tuple(params.values()))
        assert r.status_code == 404, params
    assert get("/api/v1/metrics/compare", params={**PERIOD, **BEFORE}).status_code == 200
    for by in ("month", "week"):
        assert get("/api/v1/cohorts", params={**PERIOD, "by": by}).status_code == 200
    for q in QUERIES:
        assert get("/api/v1/customers", params={"q": q}).status_code == 200
    missing = get("/api/v1/customers/{key}", path={"key": "999"}).json()["error"]
    for key in KEYS:
        r = get("/api/v1/customers/{key}", path={"key": key})
        allowed = key.isdigit() and int(key) in readable
        allowed |= key == "external_userid:e2" and 2 in readable
        assert r.status_code == (200 if allowed else 404), key
        if not allowed:  # exactly like a customer that does not exist
            assert r.json()["error"] == {**missing, "message": f"no customer {key}"}, key
        r = get("/api/v1/customers/{key}/export", path={"key": key})
        assert r.status_code == 404, key  # the PIPL export is the HQ admin's
    for route in ("/api/v1/tags", "/api/v1/stores", "/api/v1/staff", "/api/v1/channels",
                  "/api/v1/segments", "/api/v1/sops"):  # fmt: skip
        assert get(route).status_code == 200, route
    assert get("/api/v1/staff", params={"store": "S002"}, echo=("S002",)).json()["items"] == []
    listed = get("/api/v1/segments").json()["items"]
    assert [s["member_count"] for s in listed] == [len(readable)]
    for ref in ("everyone", str(listed[0]["id"])):
        assert get("/api/v1/segments/{segment}", path={"segment": ref}).status_code == 200
        r = get("/api/v1/segments/{segment}/members", path={"segment": ref},
                params={"limit": 500})  # fmt: skip
        assert {m["customer_id"] for m in r.json()["items"]} == readable, ref
    r = get("/api/v1/segments/{segment}/members", path={"segment": "everyone"},
            params={"as_of": "2025-07-06"})  # fmt: skip
    assert r.status_code == 200
    for rule in (MATCH_ALL, AT_S002):
        r = call("POST", "/api/v1/segments/count", json={"rule": rule, "sample": 100})
        assert r.status_code == 200
        assert r.json()["count"] == len(r.json()["sample"]) <= len(readable)
    assert get("/api/v1/sops/{key}", path={"key": "welcome"}).json()["report"]["enrolled"] == 1
    assert seen == WALKED, f"walked {sorted(seen)}"
    for label, r, echo in answers:
        if r.is_success:
            body = r.json()
            outside = customer_ids(body) - readable
            assert not outside, f"{who}: {label} names customers {outside}"
            text = json.dumps(body, ensure_ascii=False)
        else:  # an error may repeat what was asked, nothing else
            assert set(r.json()) == {"error"}, r.text
            text = r.text
            for asked in echo:
                text = text.replace(asked, "")
        found = leaks(text, foreign)
        assert not found, f"{who}: {label} shows {found}"
