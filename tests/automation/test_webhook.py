"""The webhook adapter POSTs JSON with an Idempotency-Key: 2xx sent, 4xx failed at once,
5xx retried; a recovered row is POSTed again with the same key for the receiver to dedupe."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy import select

from siyu.automation import outbox
from siyu.automation.adapters import Outbound
from siyu.automation.models import OutboxItem
from siyu.automation.webhook import WebhookAdapter
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import ServerThread


def receiver(seen: list[tuple[str, dict[str, Any]]]) -> FastAPI:
    app = FastAPI()

    @app.post("/hook/{answer}")
    async def hook(answer: int, request: Request) -> Response:
        seen.append((request.headers["idempotency-key"], await request.json()))
        return Response(status_code=answer)  # no body: 204 must not have one

    return app


@pytest.fixture
def store(settings: Settings):  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    yield engine, brand_id
    engine.dispose()


def test_webhook_outcomes_follow_the_status_code(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    seen: list[tuple[str, dict[str, Any]]] = []
    with ServerThread(receiver(seen)) as server:
        rows = [
            outbox.Enqueue(f"crm:v1:s4:{n}:0", "webhook", n,
                           {"url": f"{server.url}/hook/{code}", "body": {"customer": n},
                            "sop": {"key": "crm", "version": 1, "step": "s4"}})
            for n, code in enumerate((200, 204, 422, 503))
        ] + [outbox.Enqueue("crm:v1:s4:9:0", "webhook", 9, {"url": "ftp://x", "body": {}})]  # fmt: skip
        outbox.enqueue(engine, brand, rows)
        adapter = WebhookAdapter(timeout=5)
        report = outbox.run_once(engine, {"webhook": adapter}, "w")
        # A worker that dies after POSTing: recovery cannot ask a webhook, so the row is sent
        # again with the same Idempotency-Key.
        outbox.enqueue(engine, brand, [outbox.Enqueue("crm:v1:s4:7:0", "webhook", 7,
                       {"url": f"{server.url}/hook/200", "body": {"customer": 7}})])  # fmt: skip
        claimed = outbox.claim(engine, "doomed")
        adapter.send_batch([Outbound(c.dedup_key, c.customer_id, c.payload, c.id)
                            for c in claimed])  # fmt: skip
        assert outbox.recover(engine, {"webhook": adapter}, lease=timedelta(0)) == (0, 1)
        assert outbox.run_once(engine, {"webhook": adapter}, "heir").sent == 1
        adapter.close()
    assert (report.sent, report.failed, report.retrying) == (2, 2, 1)
    with engine.connect() as conn:
        rows_ = {r.dedup_key: r for r in conn.execute(select(OutboxItem))}
    assert [rows_[f"crm:v1:s4:{n}:0"].status for n in range(4)] == [
        "sent", "sent", "failed", "pending"]  # fmt: skip
    assert "answered 422" in rows_["crm:v1:s4:2:0"].error
    assert "must be an http(s) URL" in rows_["crm:v1:s4:9:0"].error
    assert ("crm:v1:s4:0:0", {"customer": 0}) in seen
    assert [k for k, _ in seen].count("crm:v1:s4:7:0") == 2  # the receiver must dedupe
