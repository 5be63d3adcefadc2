"""Walk every console route as a store manager and as a guide: no row of another store leaks
(issue #7 "Must show"). The walk is checked against the app's route table, so a page added
later without being walked here fails this test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from httpx import Response

from siyu.config import Settings
from siyu.web import console
from tests.metrics import brand
from tests.web import console_brand as cb

PERIOD = {"from": brand.FROM, "to": brand.TO}
MATCH_ALL = json.dumps({"not": {"field": "city", "op": "eq", "value": "火星"}})
AT_S002 = json.dumps({"field": "store", "op": "any_of", "value": ["S002"]})

# What identifies each customer's rows on a page.
CUSTOMER_MARKS = {
    1: ["e1", "13800000001", "0001", "r1"],
    2: ["e2", "r2"],
    3: ["e3", "r3"],
    4: ["13800000004", "0004", "M4", "r4"],
    5: ["e5", "13800000005", "0005", "M5", "r5a", "r5b"],
}
# What identifies the other store (S002) and its facts, for someone scoped to S001.
S002_MARKS = ["S002", "朝阳店", "华北", "G2", "李导购", "O4", "O5", "O8", "O9"]
KEYS = ["1", "2", "3", "4", "5", "999", "phone:13800000005", "external_userid:e3",
        "member_no:M5", "member_no:M4", "external_userid:e2"]  # fmt: skip
QUERIES = ["138", "0001", "0004", "0005", "13800000005", "e2", "e3", "e5", "M4", "M5", "r5a",
           "member_no:M5", "1", "3", "5", "王", "朝阳"]  # fmt: skip

# Every console route and how the walk calls it.
WALKED = {
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/lang/{code}"),
    ("GET", "/"),
    ("GET", "/channels"),
    ("GET", "/cohorts"),
    ("GET", "/customers"),
    ("GET", "/customers/{key}"),
    ("GET", "/customers/{key}/export"),
    ("GET", "/customers/{key}/erase"),
    ("POST", "/customers/{key}/erase"),
    ("GET", "/segments"),
    ("GET", "/sops"),
    ("POST", "/segments/count"),
}


def console_routes() -> set[tuple[str, str]]:
    found = set()
    for route in console.router.routes:
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                found.add((method, path))
    return found


def visible(r: Response) -> str:
    """What the page shows: its text and its links."""
    links = " ".join(re.findall(r'href="([^"]*)"', r.text))
    return re.sub(r"<[^>]+>", " ", r.text) + " " + links


def leaks(text: str, marks: list[str]) -> list[str]:
    return [m for m in marks if re.search(rf"(?<![\w*]){re.escape(m)}(?!\w)", text)]


@pytest.mark.parametrize("who", ["mgr1", "g1"])
def test_walk_every_route_and_find_no_foreign_row(
    settings: Settings, tmp_path: Path, who: str
) -> None:
    cb.build(settings, tmp_path)
    readable = cb.READABLE[who]
    foreign = list(S002_MARKS)
    for cid, marks in CUSTOMER_MARKS.items():
        if cid not in readable:
            foreign += marks
    with cb.client(settings) as c:
        assert console_routes() == WALKED, "a console route is not walked by this test"
        pages: list[tuple[str, Response]] = []

        def get(url: str, **params: str) -> Response:
            r = c.get(url, params=params)
            pages.append((f"GET {url} {params}", r))
            return r

        assert c.get("/login").status_code == 200
        cb.login(c, who)
        assert get("/").status_code == 200
        assert get("/", **PERIOD).status_code == 200
        assert get("/", **PERIOD, store="S001").status_code == 200
        assert get("/", **PERIOD, region="华东").status_code == 200
        for store in ("S002", "S999"):
            assert get("/", **PERIOD, store=store).status_code == 404
        assert get("/", **PERIOD, region="华北").status_code == 404
        for page in ("/channels", "/cohorts"):
            assert get(page).status_code == 200
            assert get(page, **PERIOD).status_code == 200
            assert get(page, **PERIOD, by="week").status_code == 200
            for store in ("S002", "S999"):
                assert get(page, **PERIOD, store=store).status_code == 404
        for q in QUERIES:
            assert get("/customers", q=q).status_code == 200
        for key in KEYS:
            r = get(f"/customers/{key}")
            allowed = key.isdigit() and int(key) in readable
            allowed |= key == "external_userid:e2" and 2 in readable
            assert r.status_code == (200 if allowed else 404), key
        for key in KEYS:  # PIPL export and erasure are the HQ admin's: 404 for everyone else
            for action in ("export", "erase"):
                assert get(f"/customers/{key}/{action}").status_code == 404, key
            r = c.post(f"/customers/{key}/erase", data={"reason": "x", "confirm": "yes"})
            pages.append((f"POST /customers/{key}/erase", r))
            assert r.status_code == 404, key
        assert get("/segments").status_code == 200
        assert get("/sops").status_code == 200
        for rule in (MATCH_ALL, AT_S002):
            r = c.post("/segments/count", data={"rule": rule})
            pages.append((f"POST /segments/count {rule}", r))
            assert r.status_code == 200
        r = c.get("/lang/en", params={"next": "/customers/1"})
        pages.append(("GET /lang/en → /customers/1", r))
        # The integration API is not reachable with a console session (tokens only).
        assert c.get("/api/v1/metrics", params=PERIOD).status_code == 401
        for label, r in pages:
            found = leaks(visible(r), foreign)
            assert not found, f"{who}: {label} shows {found}"
        c.post("/logout")
        assert c.get("/", follow_redirects=False).status_code == 303
