"""Outbox → SMS adapter → `siyu sms-sim` over real HTTP: every recipient gets one message, with
503 bursts, refused numbers, client timeouts after delivery, and two workers at once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from siyu.automation import outbox
from siyu.automation.models import Delivery, OutboxItem
from siyu.cli import app
from siyu.config import Settings
from siyu.events.models import Event
from siyu.runtime import open_brand
from siyu.serverthread import ServerThread
from siyu.sms.adapter import SmsAdapter
from siyu.sms.simulator import Faults, Gateway, create_app


def sms(n: int) -> list[outbox.Enqueue]:
    return [
        outbox.Enqueue(
            f"welcome:v1:s1:{i}:0", "sms", i, {"phone": f"+86139{i:08d}", "text": f"欢迎 {i}"}
        )
        for i in range(n)
    ]


@pytest.fixture
def store(settings: Settings):  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    yield engine, brand_id
    engine.dispose()


def drain(engine, adapter, name: str) -> None:  # type: ignore[no-untyped-def]
    """Work until nothing is due, making backed-off rows due again as time would."""
    for _ in range(50):
        r = outbox.run_once(engine, {"sms": adapter}, name, limit=20)
        outbox.recover(engine, {"sms": adapter}, lease=timedelta(0))
        with engine.begin() as conn:
            conn.execute(
                OutboxItem.__table__.update()
                .where(OutboxItem.status == "pending")
                .values(not_before=OutboxItem.created_at)
            )
        if not (r.sent or r.retrying or r.failed):
            with engine.connect() as conn:
                left = conn.execute(
                    select(OutboxItem.id).where(OutboxItem.status.in_(["pending", "claimed"]))
                ).first()
            if left is None:
                return


def test_exactly_once_through_the_simulator_with_faults(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    gateway = Gateway(Faults(unavailable_every=7, slow_every=23, slow_seconds=0.6,
                             refuse={"+8613900000005"}))  # fmt: skip
    outbox.enqueue(engine, brand, sms(120))
    with ServerThread(create_app(gateway)) as server:
        adapters = [SmsAdapter(server.url, timeout=0.3, batch_size=5) for _ in range(2)]
        threads = [
            threading.Thread(target=drain, args=(engine, a, f"w{i}"))
            for i, a in enumerate(adapters)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for a in adapters:
            a.close()
    # 119 numbers delivered once each (the slow answers timed out after delivery and were
    # resolved by lookup or by the gateway's idempotency, not by a second delivery).
    assert len(gateway.delivered) == 119
    assert "welcome:v1:s1:5:0" not in gateway.delivered
    with engine.connect() as conn:
        rows = dict(conn.execute(select(OutboxItem.dedup_key, OutboxItem.status)).all())
        error = conn.execute(
            select(OutboxItem.error).where(OutboxItem.dedup_key == "welcome:v1:s1:5:0")
        ).scalar_one()
    assert list(rows.values()).count("sent") == 119
    # The faults really happened: every 7th request was answered 503 and delivered nothing, so
    # the rows of those requests were sent again to reach the 119 above. (Not read from the
    # rows' attempts: with two workers recovering each other's claims at lease 0, a row that
    # met a 503 can be put back by the other worker's lookup without its attempt recorded.)
    assert gateway.sends >= 7 and len(gateway.delivered) == 119
    # … and a resend after a timeout was answered as a duplicate, not delivered twice.
    with engine.connect() as conn:
        results = conn.execute(select(OutboxItem.result).where(OutboxItem.status == "sent")).all()
    assert any(r[0].get("duplicate") or r[0].get("recovered") for r in results)
    # the gateway's reason is kept, the number in it masked (siyu.pii.redact)
    assert rows["welcome:v1:s1:5:0"] == "failed" and "cannot deliver to 139****0005" in error


def test_worker_command_delivers_and_says_what_it_did(settings: Settings) -> None:
    engine, brand = open_brand(settings)
    outbox.enqueue(engine, brand, sms(5))
    engine.dispose()
    gateway = Gateway()
    with ServerThread(create_app(gateway)) as server:
        env = {"SIYU_SMS_API_BASE": server.url}
        if settings.database_url:
            env["SIYU_DATABASE_URL"] = settings.database_url
        result = CliRunner().invoke(
            app, ["--data-dir", str(settings.data_dir), "worker", "--once"], env=env
        )
    assert result.exit_code == 0, result.output
    assert "done: sent 5, failed 0" in result.output
    assert len(gateway.delivered) == 5


def test_worker_without_an_adapter_says_how_to_configure_one(settings: Settings) -> None:
    env = {"SIYU_DATABASE_URL": settings.database_url or ""}
    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "worker", "--once"],
                                env={k: v for k, v in env.items() if v})  # fmt: skip
    assert result.exit_code == 2
    assert "SIYU_SMS_API_BASE" in result.output


def test_a_batch_with_a_refused_number_fails_only_that_row_and_records_deliveries(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    gateway = Gateway(Faults(refuse={"+8613900000003"}))
    rows = sms(6) + [outbox.Enqueue("welcome:v1:s1:bad:0", "sms", None,
                                    {"phone": "12345", "text": "x"})]  # fmt: skip
    outbox.enqueue(engine, brand, rows)
    with ServerThread(create_app(gateway)) as server:
        adapter = SmsAdapter(server.url, batch_size=100)
        report = outbox.run_once(engine, {"sms": adapter}, "w")
        adapter.close()
    assert (report.sent, report.failed) == (5, 2)
    assert gateway.sends == 1  # one batch request
    with engine.connect() as conn:
        deliveries = dict(
            conn.execute(
                select(Delivery.id_value, Delivery.status).where(Delivery.channel == "sms")
            ).all()
        )
        events = conn.execute(select(Event.type, Event.idempotency_key)).all()
    assert deliveries["+8613900000003"] == "failed"
    assert deliveries["12345"] == "failed"
    assert [v for k, v in deliveries.items() if k.startswith("+86139000000")].count(
        "delivered"
    ) == 5
    assert sorted(e.type for e in events) == ["message.delivered"] * 5 + ["message.failed"] * 2
