"""The scheduler: playbooks end to end, concurrent ticks, late-committed events, pausing."""

from __future__ import annotations

import json

from sqlalchemy import text

from siyu.sop import engine as sop_engine
from siyu.sop import service
from siyu.sop.commands import playbook_paths
from tests.sop.conftest import World, local
from tests.sop.test_triggers import WELCOME


def test_shipped_playbooks_run(world: World) -> None:
    for p in playbook_paths():
        world.put(p.read_text(encoding="utf-8"), activate_at=local(2025, 7, 31, 7))
    world.event("tag.added", "t1", customer="a", at=local(2025, 7, 31, 9),
                payload={"tag": "高意向", "group": "意向"})  # fmt: skip
    world.event("wecom.friend_added", "f1", at=local(2025, 7, 31, 9),
                payload={"userid": "G2", "external_userid": "c"})  # fmt: skip
    world.tick(local(2025, 7, 31, 21))  # the day's pushes, the filter reminder, welcome, tasks
    world.tick(local(2025, 7, 31, 21, 5))
    groups = world.outbox("sop:coffee-")
    assert len(groups) == 4 * 2  # four pushes to each of the two store groups, once
    assert {x["payload"]["chat_id"] for x in groups} == {"GR1", "GR2"}
    mini = next(x for x in groups if x["payload"]["attachments"]
                and x["payload"]["attachments"][0]["msgtype"] == "miniprogram")  # fmt: skip
    assert mini["payload"]["attachments"][0]["miniprogram"]["title"].endswith("午间闪购")
    filt = world.outbox("sop:appliance-filter-reminder:")
    assert world.who(x["customer_id"] for x in filt) == "a"  # d bought one too but is no friend
    assert "免费滤芯" in filt[0]["payload"]["text"]
    welcome = world.outbox("sop:welcome-day3:")
    assert [x["payload"]["text"] for x in welcome] == [
        "王五您好，我是朝阳店的李导购，以后有任何问题都可以找我～"]  # fmt: skip
    tasks = world.sql("SELECT customer_id, title FROM staff_task")
    assert tasks == [(world.people["a"], "破冰 Ice-break：张三")]
    # the consultative path's next task comes after its wait; d's reminder went nowhere (noted)
    world.tick(local(2025, 8, 2, 10, 1))
    assert [t for _, t in world.sql("SELECT customer_id, title FROM staff_task ORDER BY id")] == [
        "破冰 Ice-break：张三", "建信 Trust：张三"]  # fmt: skip
    notes = world.sql("SELECT customer_id, note FROM sop_enrollment WHERE note IS NOT NULL")
    assert (world.people["d"], "unreachable: no active WeCom friend") in notes
    # every send is in the audit log: one row per SOP step and tick with its message count,
    # adding up to the outbox rows the SOPs wrote
    sends = world.sql("SELECT actor, detail FROM audit_log WHERE action = 'send'")
    audited: dict[str, int] = {}
    for actor, detail in sends:
        n = (detail if isinstance(detail, dict) else json.loads(detail))["messages"]
        audited[actor] = audited.get(actor, 0) + n
    written = world.sql("SELECT dedup_key FROM outbox WHERE dedup_key LIKE 'sop:%'")
    expected: dict[str, int] = {}
    for (key,) in written:
        actor = "sop:" + key.split(":")[1]
        expected[actor] = expected.get(actor, 0) + 1
    assert audited == expected and audited["sop:coffee-0830-commute"] >= 2


def test_a_tick_waits_its_turn(world: World) -> None:
    world.put(WELCOME, activate_at=local(2025, 8, 1, 9))
    if world.engine.dialect.name != "postgresql":
        return  # SQLite: one writer at a time is the database's own rule
    with world.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
        key = sop_engine.lock_key(other, world.brand_id)
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        assert world.tick(local(2025, 8, 1, 10)).busy
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    assert not world.tick(local(2025, 8, 1, 10)).busy


def test_an_event_committed_late_with_a_lower_id_is_not_lost(world: World) -> None:
    world.put(WELCOME.replace(", filter: {channel: QR1}", ""), activate_at=local(2025, 8, 1, 9))
    world.event("wecom.friend_added", "k1", at=local(2025, 8, 1, 10),
                payload={"userid": "G1", "external_userid": "a"})  # fmt: skip
    world.event("wecom.friend_added", "k2", at=local(2025, 8, 1, 10),
                payload={"userid": "G2", "external_userid": "b"})  # fmt: skip
    # the tick saw k2 but not yet k1 (k1's transaction committed after it): simulate by
    # moving the cursor past both and k1 being recorded just now
    ids = [i for (i,) in world.sql("SELECT id FROM event ORDER BY id")]
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE sop SET event_cursor = :c"), {"c": ids[-1]})
    world.tick(local(2025, 8, 1, 10, 2))
    assert world.who(x["customer_id"] for x in world.outbox()) == "ab"
    world.tick(local(2025, 8, 1, 10, 3))
    assert len(world.outbox()) == 2


def test_paused_sops_neither_fire_nor_advance(world: World) -> None:
    world.put(WELCOME.replace(", filter: {channel: QR1}", ""), activate_at=local(2025, 8, 1, 9))
    with world.engine.begin() as conn:
        service.set_status(conn, brand_id=world.brand_id, key="welcome", status="paused",
                           now=local(2025, 8, 1, 9, 30))  # fmt: skip
    world.event("wecom.friend_added", "k1", at=local(2025, 8, 1, 10),
                payload={"userid": "G1", "external_userid": "a"})  # fmt: skip
    world.tick(local(2025, 8, 1, 10, 1))
    assert world.outbox() == []
    with world.engine.begin() as conn:
        service.set_status(conn, brand_id=world.brand_id, key="welcome", status="active",
                           now=local(2025, 8, 1, 11))  # fmt: skip
    world.tick(local(2025, 8, 1, 11, 1))  # events while paused are read on resume
    assert world.who(x["customer_id"] for x in world.outbox()) == "a"


def test_the_due_sweep_can_read_the_partial_index(world: World) -> None:
    """ix_sop_enrollment_due holds active journeys only (migration 0017: the fan-out's
    finished and holdout journeys stay out of it); the sweep's condition still lets both
    planners use it."""
    from sqlalchemy import select

    from siyu.sop.models import Sop, SopEnrollment

    query = (
        select(SopEnrollment.id)
        .join(Sop, Sop.id == SopEnrollment.sop_id)
        .where(sop_engine.due_journeys(world.brand_id, local(2025, 8, 6, 10)))
    )
    with world.engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        compiled = query.compile(conn)
        sql = str(compiled)
        values = {k: str(v) for k, v in compiled.params.items()}  # only planned, never run
        if pg:  # a table this small is read whole unless told otherwise
            conn.execute(text("SET enable_seqscan = off"))
            conn.execute(text("SET enable_bitmapscan = off"))
            plan = conn.exec_driver_sql("EXPLAIN " + sql, values).all()
        else:
            ordered = tuple(values[k] for k in compiled.positiontup or ())
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ordered).all()
        conn.rollback()
    assert "ix_sop_enrollment_due" in " ".join(str(r) for r in plan)
