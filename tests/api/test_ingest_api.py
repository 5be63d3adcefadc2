"""`POST /api/v1/ingest` and `POST /api/v1/events`: what a POS, a mall or a CRM sends arrives
exactly once, bad rows and events are rejected alone with the field named (issue #7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from siyu.app import create_app
from siyu.auth import service as tokens
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import run_import, write_dir
from tests.metrics import brand

ORDER = {"order_id": "POS-1", "platform": "pos", "store_id": "S001", "id_type": "phone",
         "id_value": "138 0000 0001", "created_at": "2025-07-20 09:30", "amount_fen": 2800,
         "status": "paid"}  # fmt: skip
ITEM = {"order_id": "POS-1", "sku": "LATTE", "qty": 1, "amount_fen": 2800}


@pytest.fixture
def api(settings: Settings, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    files = {**brand.FILES, "products.csv": "sku,name,category\nLATTE,拿铁,coffee\n"}
    run_import(settings, write_dir(tmp_path / "in", files))
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "pos", scopes=("ingest", "read"))
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}
    app.state.siyu.engine.dispose()


def sales(client: TestClient, auth: dict[str, str]) -> dict[str, int]:
    r = client.get("/api/v1/metrics", params={"from": brand.FROM, "to": brand.TO}, headers=auth)
    return r.json()["sales"]


def gmv(client: TestClient, auth: dict[str, str]) -> int:
    return sales(client, auth)["gmv"]


def query(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    engine, _ = open_brand(settings)
    with engine.begin() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


def test_a_pos_order_counts_once_and_its_refund_updates_it(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    before = sales(client, auth)
    r = client.post("/api/v1/ingest", json={"orders": [ORDER], "order_items": [ITEM]}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["files"]["orders"] == {"received": 1, "inserted": 1, "updated": 0,
                                       "unchanged": 0, "rejected": 0}  # fmt: skip
    assert body["files"]["order_items"]["inserted"] == 1 and body["rejects"] == []
    assert sales(client, auth)["gmv"] == before["gmv"] + 2800
    assert sales(client, auth)["net_sales"] == before["net_sales"] + 2800
    again = client.post("/api/v1/ingest", json={"orders": [ORDER], "order_items": [ITEM]},
                        headers=auth).json()  # fmt: skip
    assert again["files"]["orders"]["unchanged"] == 1 and again["files"]["orders"]["inserted"] == 0
    assert sales(client, auth)["gmv"] == before["gmv"] + 2800  # the retry changed nothing
    refund = {**ORDER, "status": "refunded", "refund_fen": 2800}
    r = client.post("/api/v1/ingest", json={"orders": [refund]}, headers=auth).json()
    assert r["files"]["orders"]["updated"] == 1
    after = sales(client, auth)  # GMV keeps the refunded order, net sales do not
    assert (after["gmv"], after["net_sales"]) == (before["gmv"] + 2800, before["net_sales"])


def test_a_bad_row_is_rejected_alone_with_its_index_and_column(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    bad = {**ORDER, "order_id": "POS-2", "amount_fen": -5}
    unknown_store = {**ORDER, "order_id": "POS-3", "store_id": "S404"}
    r = client.post("/api/v1/ingest", json={"orders": [ORDER, bad, unknown_store]}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["files"]["orders"]["inserted"] == 1 and body["files"]["orders"]["rejected"] == 2
    found = {(x["row"], x["column"]) for x in body["rejects"]}
    assert found == {(1, "amount_fen"), (2, "store_id")}
    assert all(x["file"] == "orders" and x["reason"] for x in body["rejects"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ordres": [ORDER]}, "ordres"),
        ({"orders": []}, "orders"),
        ({"orders": [{**ORDER, "amout_fen": 1}]}, "orders[0].amout_fen"),
        ({"orders": [ORDER, "x"]}, "orders[1]"),
        ({"orders": [{**ORDER, "status": {"x": 1}}]}, "orders[0].status"),
    ],
)
def test_a_malformed_request_names_the_field_and_stores_nothing(api, body, field) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    before = gmv(client, auth)
    r = client.post("/api/v1/ingest", json=body, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert gmv(client, auth) == before


def test_ingest_needs_a_token_and_caps_the_batch(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    assert client.post("/api/v1/ingest", json={"orders": [ORDER]}).status_code == 401
    many = [{**ORDER, "order_id": f"B{i}"} for i in range(10_001)]
    r = client.post("/api/v1/ingest", json={"orders": many}, headers=auth)
    assert r.status_code == 413 and r.json()["error"]["field"] == "orders"


EVENT = {"type": "coupon.expiring", "idempotency_key": "crm-1", "customer": "phone:13800000001",
         "occurred_at": "2025-07-20T09:00:00", "payload": {"coupon": "C42"}}  # fmt: skip


def test_events_are_stored_once_for_their_customer(api, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    one = client.post("/api/v1/events", json=EVENT, headers=auth)
    assert one.status_code == 200 and one.json()["created"] == 1, one.text
    batch = [
        EVENT,  # a retry
        {**EVENT, "idempotency_key": "crm-2", "customer": "phone:13999999999"},
        {**EVENT, "idempotency_key": "crm-3", "type": "segment.entered"},
        {**EVENT, "idempotency_key": "crm-4", "occurred_at": "2999-01-01T00:00:00+08:00"},
        {**EVENT, "idempotency_key": "crm-5", "customer": None, "payload": {}},
        {**EVENT, "idempotency_key": "crm-6", "type": "Coupon Expiring"},
    ]
    r = client.post("/api/v1/events", json={"events": batch}, headers=auth).json()
    assert [x["status"] for x in r["results"]] == [
        "duplicate", "rejected", "rejected", "rejected", "created", "rejected"]  # fmt: skip
    assert [x.get("field") for x in r["results"]] == [
        None, "events[1].customer", "events[2].type", "events[3].occurred_at", None,
        "events[5].type"]  # fmt: skip
    assert "no customer has phone:+8613999999999" in r["results"][1]["message"]
    rows = query(settings, "SELECT idempotency_key, customer_id, occurred_at FROM event "
                 "WHERE type = 'coupon.expiring' ORDER BY idempotency_key")  # fmt: skip
    assert [(k, c) for k, c, _ in rows] == [("crm-1", 1), ("crm-5", None)]
    # without an offset the time is brand-local (Asia/Shanghai): 09:00 there is 01:00 UTC
    assert str(rows[0][2]).startswith("2025-07-20 01:00")


def test_events_refuse_bad_batches(api) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    assert client.post("/api/v1/events", json=EVENT).status_code == 401
    r = client.post("/api/v1/events", json={"events": []}, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "events"
    r = client.post("/api/v1/events", json={"events": [EVENT] * 1001}, headers=auth)
    assert r.status_code == 413


def test_the_fast_path_answers_as_the_documented_route(
    api, settings: Settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """POST /api/v1/events is served by siyu.fastpath, not FastAPI's routing: every answer,
    good or bad, must be the one the declared route gives."""
    client, auth = api
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        reader = tokens.create(conn, brand_id, "bi", scopes=("read",))
    engine.dispose()
    plain = create_app(settings)
    plain.user_middleware.clear()  # the same app without siyu.fastpath in front
    cases: list[tuple[dict[str, str], bytes]] = [
        ({}, b"{}"),
        ({"Authorization": "Basic abc"}, b"{}"),
        ({"Authorization": "Bearer nope"}, b"{}"),
        ({"Authorization": f"Bearer {reader}"}, b"{}"),
        (auth, b"not json"),
        (auth, b"[1, 2]"),
        (auth, b'{"events": []}'),
        (auth, b'{"events": 3}'),
        (auth, b'{"type": "a.b", "payload": {"x": "\\u0000"}}'),
        (auth, b'{"events": [' + b",".join([b"{}"] * 1001) + b"]}"),
        (auth, b'{"type": "coupon.used", "idempotency_key": "k", "customer": "999999", '
               b'"occurred_at": "2025-07-20T09:00:00"}'),  # an unknown customer: rejected alone
    ]  # fmt: skip
    with TestClient(plain) as slow:
        for headers, body in cases:
            fast_answer = client.post("/api/v1/events", content=body, headers=headers)
            slow_answer = slow.post("/api/v1/events", content=body, headers=headers)
            assert fast_answer.status_code == slow_answer.status_code, body
            assert fast_answer.json() == slow_answer.json(), body
            assert fast_answer.headers["content-type"] == "application/json"
    plain.state.siyu.engine.dispose()
    # Other methods and paths still reach FastAPI.
    assert client.get("/api/v1/events", headers=auth).status_code == 405
    assert client.post("/api/v1/events/", json=EVENT, headers=auth,
                       follow_redirects=False).status_code == 307  # fmt: skip
    # A body over the limit is refused before it is read whole; nothing is stored.
    from siyu import fastpath

    monkeypatch.setattr(fastpath, "MAX_BODY", 100)
    r = client.post("/api/v1/events", json={"events": [EVENT] * 3}, headers=auth)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert query(settings, "SELECT count(*) FROM event WHERE type = 'coupon.expiring'") == [(0,)]


def test_a_client_gone_before_its_body_gets_no_answer_and_stores_nothing(
    api, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    client, auth = api
    messages = iter([{"type": "http.request", "body": b'{"events": [', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/events", "query_string": b"",
             "headers": [(b"authorization", auth["Authorization"].encode())]}  # fmt: skip
    asyncio.run(client.app.middleware_stack(scope, receive, send))  # type: ignore[attr-defined]
    assert sent == []
    assert query(settings, "SELECT count(*) FROM event") == [(0,)]
