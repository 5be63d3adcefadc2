"""The outbox sends every action once: duplicates collapse, workers never double-claim, and a
worker that died mid-send is resolved by asking the provider, never by sending again."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from siyu.automation import outbox
from siyu.automation.adapters import Outbound, Refused, Sent, Unavailable
from siyu.automation.models import OutboxItem
from siyu.config import Settings
from siyu.db import utcnow
from siyu.runtime import open_brand


class Provider:
    """A provider that honours idempotency keys, like WeCom's and SMS gateways' APIs."""

    name = "sms"

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.delivered: dict[str, int] = {}
        self.calls = 0
        self.fail = fail or {}
        self.lock = threading.Lock()

    def send(self, item: Outbound) -> Sent:
        with self.lock:
            self.calls += 1
            if item.key in self.fail:
                raise self.fail[item.key]
            self.delivered[item.key] = self.delivered.get(item.key, 0) + 1
            return Sent(f"msg-{item.key}", {"to": item.customer_id})

    def lookup(self, key: str) -> Sent | None:
        return Sent(f"msg-{key}", {}) if key in self.delivered else None


@pytest.fixture
def store(settings: Settings):  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    yield engine, brand_id
    engine.dispose()


def items(n: int, prefix: str = "sop1:v1:s1") -> list[outbox.Enqueue]:
    return [outbox.Enqueue(f"{prefix}:{i}:0", "sms", i, {"text": f"hi {i}"}) for i in range(n)]


def statuses(engine) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(conn.execute(select(OutboxItem.dedup_key, OutboxItem.status)).all())


def test_enqueueing_the_same_action_twice_keeps_one_row(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    assert outbox.enqueue(engine, brand, items(50)) == 50
    assert outbox.enqueue(engine, brand, items(60)) == 10  # 50 already there
    assert len(statuses(engine)) == 60


def test_two_workers_deliver_each_row_exactly_once(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(400))
    provider = Provider()

    def work(name: str) -> None:
        while outbox.run_once(engine, {"sms": provider}, name, limit=25).sent:
            pass

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(provider.delivered) == 400
    assert set(provider.delivered.values()) == {1}
    assert provider.calls == 400
    assert set(statuses(engine).values()) == {"sent"}


def test_a_worker_dead_after_sending_is_resolved_by_asking_the_provider(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(3))
    provider = Provider()
    claimed = outbox.claim(engine, "doomed", limit=3)
    # The worker sends the first row, then dies before recording anything.
    first = claimed[0]
    provider.send(Outbound(first.dedup_key, first.customer_id, first.payload))
    # A later worker finds the stale claims: the sent one is recorded, the others re-queued.
    sent, requeued = outbox.recover(engine, {"sms": provider}, lease=timedelta(0))
    assert (sent, requeued) == (1, 2)
    report = outbox.run_once(engine, {"sms": provider}, "heir")
    assert report.sent == 2
    assert set(provider.delivered.values()) == {1} and len(provider.delivered) == 3
    with engine.connect() as conn:
        result = conn.execute(
            select(OutboxItem.result).where(OutboxItem.dedup_key == first.dedup_key)
        ).scalar_one()
    assert result["recovered"] is True


def test_fresh_claims_are_left_alone_by_recovery(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(2))
    outbox.claim(engine, "busy", limit=2)
    assert outbox.recover(engine, {"sms": Provider()}) == (0, 0)  # within the lease
    assert set(statuses(engine).values()) == {"claimed"}


def test_unavailable_retries_with_backoff_then_fails_refused_fails_at_once(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(2))
    keys = sorted(statuses(engine))
    provider = Provider(
        fail={keys[0]: Unavailable("45009 api freq out of limit"), keys[1]: Refused("84061")}
    )
    report = outbox.run_once(engine, {"sms": provider}, "w")
    assert (report.retrying, report.failed) == (1, 1)
    assert statuses(engine) == {keys[0]: "pending", keys[1]: "failed"}
    # Held by the backoff: nothing is due now.
    assert outbox.claim(engine, "w") == []
    for _ in range(4):  # make it due again each time, as the clock would
        with engine.begin() as conn:
            conn.execute(
                OutboxItem.__table__.update()
                .where(OutboxItem.dedup_key == keys[0])
                .values(not_before=utcnow() - timedelta(seconds=1))
            )
        outbox.run_once(engine, {"sms": provider}, "w")
    with engine.connect() as conn:
        row = conn.execute(
            select(OutboxItem.status, OutboxItem.attempts, OutboxItem.error).where(
                OutboxItem.dedup_key == keys[0]
            )
        ).one()
    assert row.status == "failed" and row.attempts == 5
    assert "gave up after 5 attempts: 45009" in row.error
    assert provider.delivered == {}


def test_rows_held_for_quiet_hours_wait(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    morning = utcnow() + timedelta(hours=8)
    outbox.enqueue(
        engine, brand, [outbox.Enqueue("night:1", "sms", 1, {"text": "早安"}, not_before=morning)]
    )
    assert outbox.claim(engine, "w") == []
    assert statuses(engine) == {"night:1": "pending"}


def test_a_row_for_an_unknown_adapter_fails_with_the_reason(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, [outbox.Enqueue("x:1", "fax", 1, {})])
    report = outbox.run_once(engine, {"sms": Provider()}, "w")
    assert report.failed == 1
    with engine.connect() as conn:
        error = conn.execute(select(OutboxItem.error)).scalar_one()
    assert error == "no adapter named 'fax'"


class BatchProvider:
    """A provider with a batch API: one call per batch, an outcome per item."""

    name = "sms"

    def __init__(self, answers: dict[str, Exception]) -> None:
        self.answers = answers
        self.batches: list[list[str]] = []

    def send_batch(self, items):  # type: ignore[no-untyped-def]
        self.batches.append([i.key for i in items])
        return [self.answers.get(i.key) or Sent(f"b-{i.key}", {"batch": len(self.batches)})
                for i in items]  # fmt: skip

    def lookup(self, key: str) -> Sent | None:
        return None


def test_a_batch_records_each_items_own_outcome(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(6))
    keys = sorted(statuses(engine))
    provider = BatchProvider({keys[1]: Refused("invalid number"), keys[4]: Unavailable("busy")})
    report = outbox.run_once(engine, {"sms": provider}, "w", limit=10)
    assert len(provider.batches) == 1 and len(provider.batches[0]) == 6
    assert (report.sent, report.failed, report.retrying) == (4, 1, 1)
    with engine.connect() as conn:
        rows = {r.dedup_key: r for r in conn.execute(select(OutboxItem))}
    assert [rows[k].status for k in keys] == ["sent", "failed", "sent", "sent", "pending", "sent"]
    assert rows[keys[1]].error == "invalid number"
    assert rows[keys[4]].claimed_by is None and rows[keys[4]].attempts == 1
    assert rows[keys[4]].not_before > utcnow() + timedelta(seconds=20)  # backoff
    assert rows[keys[0]].result == {"reference": f"b-{keys[0]}", "batch": 1}


def test_outcomes_are_not_recorded_over_a_claim_another_worker_took(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    outbox.enqueue(engine, brand, items(4))
    claimed = outbox.claim(engine, "slow", limit=4)
    # Meanwhile recovery handed two of the rows to another worker.
    with engine.begin() as conn:
        conn.execute(
            OutboxItem.__table__.update()
            .where(OutboxItem.id.in_([c.id for c in claimed[:2]]))
            .values(claimed_by="other")
        )
    report = outbox.deliver(engine, claimed, {"sms": BatchProvider({})}, "slow")
    assert report.sent == 4  # what the provider said …
    with engine.connect() as conn:
        rows = dict(conn.execute(select(OutboxItem.id, OutboxItem.status)).all())
    # … but only the rows still ours were recorded.
    assert [rows[c.id] for c in claimed] == ["claimed", "claimed", "sent", "sent"]
