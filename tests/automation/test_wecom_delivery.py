"""WeCom delivery through `siyu wecom-sim` over HTTP: rows become one mass-message task per
staff member and content; a crash between add_msg_template and recording it is settled by
finding the task in WeCom, never by a second task; task results become deliveries and events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from siyu.automation import outbox
from siyu.automation.adapters import Outbound
from siyu.automation.models import Delivery, OutboxItem
from siyu.cli import app
from siyu.config import Settings
from siyu.db import utcnow
from siyu.events.models import Event
from siyu.runtime import open_brand
from siyu.wecom.delivery import WeComMassAdapter, poll_results
from siyu.wecom.models import WeComMassTask
from siyu.wecom.simulator import ApiFaults
from tests.automation.wecom_world import customers, one_to_one, wecom_world

A = [f"wmA{i:04d}" for i in range(30)]
B = [f"wmB{i:04d}" for i in range(10)]


@pytest.fixture
def store(settings: Settings):  # type: ignore[no-untyped-def]
    engine, brand_id = open_brand(settings)
    yield engine, brand_id
    engine.dispose()


def statuses(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return dict(
            conn.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all()
        )


class Crash(BaseException):
    """The worker process dies here."""


def test_rows_of_one_staff_member_and_content_go_out_as_one_task(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    ids = customers(engine, brand, 46)
    rows = (
        one_to_one("guide01", A, ids[:30])
        + one_to_one("guide02", B, ids[30:40])
        + one_to_one("guide01", A[:5], ids[40:45], text="新品试饮", step="s2")
        # Not guide01's customer: WeCom puts it in the task's fail_list.
        + one_to_one("guide01", ["wmSTRANGER"], ids[45:46], step="s3")
    )
    outbox.enqueue(engine, brand, rows)
    with wecom_world({"guide01": A, "guide02": B}) as w:
        adapters = {"wecom": WeComMassAdapter(w.client, engine)}
        report = outbox.run_once(engine, adapters, "w1", limit=1000)
        tasks = list(w.sim.msg_templates.values())
    assert (report.sent, report.failed) == (45, 1)
    # One task per (sender, content): guide01 × 2 texts (s3 has s1's text), guide02.
    by_creator = sorted((t["creator"], len(t["tasks"][t["creator"]]["targets"])) for t in tasks)
    assert by_creator == [("guide01", 5), ("guide01", 30), ("guide02", 10)]
    with engine.connect() as conn:
        error = conn.execute(
            select(OutboxItem.error).where(OutboxItem.status == "failed")
        ).scalar_one()
        msgids = conn.execute(select(OutboxItem.result).where(OutboxItem.status == "sent")).all()
    assert "not a customer of guide01" in error
    assert {r[0]["msgid"] for r in msgids} == {t["msgid"] for t in tasks}


def test_a_task_created_but_not_recorded_is_recovered_without_a_second_task(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    ids = customers(engine, brand, 30)
    outbox.enqueue(engine, brand, one_to_one("guide01", A, ids))
    with wecom_world({"guide01": A}, auto_confirm_after=0) as w:
        adapter = WeComMassAdapter(w.client, engine)
        real = w.client.add_msg_template

        def created_then_died(**kw):  # type: ignore[no-untyped-def]
            real(**kw)
            raise Crash

        w.client.add_msg_template = created_then_died  # type: ignore[method-assign]
        with pytest.raises(Crash):
            outbox.run_once(engine, {"wecom": adapter}, "doomed", limit=1000)
        w.client.add_msg_template = real  # type: ignore[method-assign]
        assert len(w.sim.msg_templates) == 1
        assert statuses(engine) == {"claimed": 30}
        # Within the lease nothing happens; nor while the call might still be in flight
        # (settle_after); then WeCom is asked and the task found.
        assert outbox.recover(engine, {"wecom": adapter}) == (0, 0)
        assert outbox.recover(engine, {"wecom": adapter}, lease=timedelta(0)) == (0, 0)
        assert statuses(engine) == {"claimed": 30}
        adapter.settle_after = timedelta(0)
        assert outbox.recover(engine, {"wecom": adapter}, lease=timedelta(0)) == (30, 0)
        assert outbox.run_once(engine, {"wecom": adapter}, "heir").sent == 0
        assert len(w.sim.msg_templates) == 1  # no second task
        assert statuses(engine) == {"sent": 30}
        received = w.sim.messages_received()
        poll = poll_results(engine, w.client)
    assert received == dict.fromkeys(A, 1)
    assert poll.delivered == 30
    with engine.connect() as conn:
        results = [r[0] for r in conn.execute(select(OutboxItem.result))]
        task = conn.execute(select(WeComMassTask)).one()
    assert all(r["recovered"] is True and r["msgid"] == task.msgid for r in results)
    assert task.state == "done"


def test_two_workers_recovering_one_intent_at_once_agree_on_its_task(store) -> None:  # type: ignore[no-untyped-def]
    """Worker B asks WeCom about a dead worker's intent; meanwhile worker C finds the task and
    records it (then dies before settling the rows). B must not mistake the task, now owned by
    this very intent, for another's and requeue the rows — that sent them a second time."""
    engine, brand = store
    ids = customers(engine, brand, 30)
    outbox.enqueue(engine, brand, one_to_one("guide01", A, ids))
    with wecom_world({"guide01": A}, auto_confirm_after=0) as w:
        real = w.client.add_msg_template

        def created_then_died(**kw):  # type: ignore[no-untyped-def]
            real(**kw)
            raise Crash

        w.client.add_msg_template = created_then_died  # type: ignore[method-assign]
        with pytest.raises(Crash):
            outbox.run_once(engine, {"wecom": WeComMassAdapter(w.client, engine)}, "doomed", limit=1000)  # fmt: skip
        w.client.add_msg_template = real  # type: ignore[method-assign]
        b = WeComMassAdapter(w.client, engine, settle_after=timedelta(0))
        c = WeComMassAdapter(w.client, engine, settle_after=timedelta(0))
        real_list = w.client.get_groupmsg_list_v2
        with engine.connect() as conn:
            claimed = conn.execute(
                select(
                    OutboxItem.dedup_key, OutboxItem.customer_id, OutboxItem.payload, OutboxItem.id
                )  # fmt: skip
            ).all()
        rows = [Outbound(*r) for r in claimed]

        def list_after_c_settled(**kw):  # type: ignore[no-untyped-def]
            w.client.get_groupmsg_list_v2 = real_list  # type: ignore[method-assign]
            assert all(c.lookup_batch(rows))  # C finds the task, then dies
            return real_list(**kw)

        w.client.get_groupmsg_list_v2 = list_after_c_settled  # type: ignore[method-assign]
        assert outbox.recover(engine, {"wecom": b}, lease=timedelta(0)) == (30, 0)
        assert outbox.run_once(engine, {"wecom": b}, "heir").sent == 0
        received = w.sim.messages_received()
        tasks = len(w.sim.msg_templates)
    assert tasks == 1
    assert received == dict.fromkeys(A, 1)
    assert statuses(engine) == {"sent": 30}


def test_an_intent_whose_call_never_reached_wecom_is_sent_once_more(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    ids = customers(engine, brand, 10)
    outbox.enqueue(engine, brand, one_to_one("guide02", B, ids))
    with wecom_world({"guide02": B}, auto_confirm_after=0) as w:
        adapter = WeComMassAdapter(w.client, engine)
        real = w.client.add_msg_template

        def died_before_calling(**kw):  # type: ignore[no-untyped-def]
            raise Crash

        w.client.add_msg_template = died_before_calling  # type: ignore[method-assign]
        adapter.settle_after = timedelta(0)
        with pytest.raises(Crash):
            outbox.run_once(engine, {"wecom": adapter}, "doomed")
        w.client.add_msg_template = real  # type: ignore[method-assign]
        assert outbox.recover(engine, {"wecom": adapter}, lease=timedelta(0)) == (0, 10)
        assert outbox.run_once(engine, {"wecom": adapter}, "heir").sent == 10
        received = w.sim.messages_received()
    assert received == dict.fromkeys(B, 1)
    with engine.connect() as conn:
        states = sorted(conn.execute(select(WeComMassTask.state)).scalars())
    assert states == ["open", "void"]


def test_a_call_that_timed_out_stays_in_doubt_until_wecom_is_asked(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    ids = customers(engine, brand, 10)
    outbox.enqueue(engine, brand, one_to_one("guide02", B, ids))
    # Every 2nd API call (gettoken is the 1st) is executed but answered after the client's
    # timeout: add_msg_template creates its task, and the worker cannot know it did.
    faults = ApiFaults(timeout_every=2, timeout_seconds=0.6)
    with wecom_world({"guide02": B}, auto_confirm_after=0, faults=faults, timeout=0.2) as w:
        adapter = WeComMassAdapter(w.client, engine, settle_after=timedelta(0))
        report = outbox.run_once(engine, {"wecom": adapter}, "w")
        assert (report.in_doubt, report.retrying, report.sent) == (10, 0, 0)
        assert statuses(engine) == {"claimed": 10}  # neither re-sent nor given up
        assert len(w.sim.msg_templates) == 1
        assert outbox.recover(engine, {"wecom": adapter}, lease=timedelta(0)) == (10, 0)
        received = w.sim.messages_received()
        assert len(w.sim.msg_templates) == 1
    assert received == dict.fromkeys(B, 1)
    assert statuses(engine) == {"sent": 10}


def test_task_results_become_deliveries_and_events(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    ids = customers(engine, brand, 40)
    outbox.enqueue(
        engine, brand, one_to_one("guide01", A, ids[:30]) + one_to_one("guide02", B, ids[30:])
    )
    with wecom_world({"guide01": A, "guide02": B}) as w:
        outbox.run_once(engine, {"wecom": WeComMassAdapter(w.client, engine)}, "w", limit=100)
        first = poll_results(engine, w.client)
        assert (first.waiting, first.delivered) == (40, 0)  # nobody confirmed yet
        # A customer deletes guide01 before guide01 confirms; guide02 never confirms.
        w.sim.customer_deletes_staff("guide01", A[0])
        task = next(t for t in w.sim.msg_templates.values() if t["creator"] == "guide01")
        w.sim.staff_confirms(task["msgid"], "guide01")
        second = poll_results(engine, w.client, unconfirmed_after=timedelta(hours=1))
        third = poll_results(engine, w.client, unconfirmed_after=timedelta(hours=1),
                             now=utcnow() + timedelta(hours=2))  # fmt: skip
        again = poll_results(engine, w.client, now=utcnow() + timedelta(hours=48))
    assert (second.delivered, second.not_friend, second.waiting) == (29, 1, 10)
    assert (third.unconfirmed, third.tasks) == (10, 1)
    assert again.tasks == 0  # every task finished
    with engine.connect() as conn:
        deliveries = conn.execute(
            select(Delivery.status, Delivery.channel, Delivery.id_type, func.count())
            .group_by(Delivery.status, Delivery.channel, Delivery.id_type)
            .order_by(Delivery.status)
        ).all()
        events = dict(conn.execute(select(Event.type, func.count()).group_by(Event.type)).all())
        gone = conn.execute(select(Delivery.status).where(Delivery.id_value == A[0])).scalar_one()
        customer = conn.execute(
            select(Event.customer_id, Event.payload).where(Event.type == "message.not_friend")
        ).one()
    assert [tuple(d) for d in deliveries] == [
        ("delivered", "wecom", "external_userid", 29),
        ("failed", "wecom", "external_userid", 11),
    ]
    assert events == {"message.delivered": 29, "message.not_friend": 1,
                      "message.unconfirmed": 10}  # fmt: skip
    assert gone == "failed"
    assert customer.customer_id == ids[0]
    assert customer.payload["sop"] == {"key": "memberday", "version": 1, "step": "s1"}


def test_group_messages_name_their_groups(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    with wecom_world({"guide01": A[:4], "guide02": B[:2]}, auto_confirm_after=0) as w:
        g1 = w.sim.create_group(owner="guide01", name="门店1群", members=A[:2])
        g2 = w.sim.create_group(owner="guide01", name="门店2群", members=A[2:4])
        w.sim.create_group(owner="guide01", name="不推送的群", members=[])
        g3 = w.sim.create_group(owner="guide02", name="门店3群", members=B[:2])
        rows = [
            outbox.Enqueue(f"push:v1:s1:{chat}:2026-11-23", "group", None,
                           {"kind": "marketing", "sender": owner, "chat_id": chat,
                            "text": "午市套餐", "attachments": [],
                            "sop": {"key": "push", "version": 1, "step": "s1"}})
            for owner, chat in (("guide01", g1), ("guide01", g2), ("guide02", g3))
        ]  # fmt: skip
        outbox.enqueue(engine, brand, rows)
        adapters = {"group": WeComMassAdapter(w.client, engine, chat_type="group")}
        assert outbox.run_once(engine, adapters, "w").sent == 3
        received = w.sim.messages_received()
        poll = poll_results(engine, w.client)
    assert received == {g1: 1, g2: 1, g3: 1}  # the third group of guide01 was not named
    assert poll.delivered == 3
    with engine.connect() as conn:
        events = conn.execute(select(Event.type, Event.payload)).all()
    assert {e.type for e in events} == {"message.delivered"}
    assert {e.payload["channel"] for e in events} == {"group"}


def test_bad_payloads_are_refused_naming_the_field(store) -> None:  # type: ignore[no-untyped-def]
    engine, brand = store
    bad = [
        ({"sender": "guide01", "text": "hi"}, "payload needs external_userid"),
        ({"external_userid": A[0], "text": "hi"}, "payload needs a sender"),
        ({"sender": "guide01", "external_userid": A[1]}, "payload needs a text or attachments"),
        ({"sender": "guide01", "external_userid": A[2], "text": "长" * 1500},
         "longer than WeCom's 4000 bytes"),
    ]  # fmt: skip
    outbox.enqueue(engine, brand, [outbox.Enqueue(f"bad:{n}", "wecom", None, p)
                                   for n, (p, _) in enumerate(bad)])  # fmt: skip
    with wecom_world({"guide01": A}) as w:
        report = outbox.run_once(engine, {"wecom": WeComMassAdapter(w.client, engine)}, "w")
        assert w.sim.msg_templates == {}
    assert report.failed == 4
    with engine.connect() as conn:
        errors = dict(conn.execute(select(OutboxItem.dedup_key, OutboxItem.error)).all())
    for n, (_, message) in enumerate(bad):
        assert message in errors[f"bad:{n}"]


def test_worker_and_results_commands_use_the_configured_corp(settings: Settings) -> None:
    engine, brand = open_brand(settings)
    ids = customers(engine, brand, 10)
    outbox.enqueue(engine, brand, one_to_one("guide02", B, ids))
    engine.dispose()
    with wecom_world({"guide02": B}) as w:
        env = {"SIYU_WECOM_CORP_ID": w.sim.corp_id, "SIYU_WECOM_SECRET": w.sim.secret,
               "SIYU_WECOM_API_BASE": w.url}  # fmt: skip
        if settings.database_url:
            env["SIYU_DATABASE_URL"] = settings.database_url
        base = ["--data-dir", str(settings.data_dir)]
        sent = CliRunner().invoke(app, [*base, "worker", "--once"], env=env)
        task = next(iter(w.sim.msg_templates.values()))
        w.sim.staff_confirms(task["msgid"], "guide02")
        read = CliRunner().invoke(app, [*base, "wecom", "results"], env=env)
        unconfigured = CliRunner().invoke(
            app,
            [*base, "wecom", "results"],
            env={"SIYU_DATABASE_URL": env.get("SIYU_DATABASE_URL", "")},
        )
    assert sent.exit_code == 0, sent.output
    assert "adapters sms" not in sent.output and "wecom, group, webhook" in sent.output
    assert "done: sent 10, failed 0" in sent.output
    assert read.exit_code == 0, read.output
    assert "1 read, 1 finished; delivered 10" in read.output
    assert unconfigured.exit_code == 2 and "SIYU_WECOM_CORP_ID" in unconfigured.output
