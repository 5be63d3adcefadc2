"""Quiet hours, caps, opt-out and holdout each change who receives what."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from siyu import pii
from siyu.automation import outbox
from siyu.consent.models import OptOut
from siyu.sop import guards
from tests.sop.conftest import World, local

EVERYONE_ON_WECOM = """
key: {key}
name: 推送 Push
trigger: {{schedule: "0 * * * *"}}
audience: {{rule: {{field: staff, op: exists}}}}
guards: {guards}
steps: [{{send: {{channel: {channel}, variants: [{{text: "本周上新"}}]}}}}]
"""


def push(world: World, *, key: str = "push", guards: str = "{holdout: 0}", channel: str = "wecom",
         rule: str | None = None) -> None:  # fmt: skip
    text = EVERYONE_ON_WECOM.format(key=key, guards=guards, channel=channel)
    if rule is not None:
        text = text.replace("{rule: {field: staff, op: exists}}", rule)
    world.put(text, activate_at=local(2025, 8, 6, 9, 30))


def recipients(world: World, prefix: str = "sop:") -> str:
    return world.who(x["customer_id"] for x in world.outbox(prefix))


def test_quiet_hours_hold_until_morning(world: World) -> None:
    world.put(EVERYONE_ON_WECOM.replace("0 * * * *", "0 10,23 * * *").format(
        key="push", guards="{holdout: 0, kind: service}", channel="wecom"),
        activate_at=local(2025, 8, 6, 9, 30))  # fmt: skip
    world.tick(local(2025, 8, 6, 10, 1))  # the 10:00 push goes now
    world.tick(local(2025, 8, 6, 23, 1))  # the 23:00 push is held until 08:00, not dropped
    by_fire: dict[str, set[datetime]] = {}
    for x in world.outbox():
        by_fire.setdefault(x["dedup_key"].rsplit(":at:", 1)[1], set()).add(x["not_before"])
    assert by_fire == {
        "2025-08-06T02:00Z": {local(2025, 8, 6, 10, 1)},
        "2025-08-06T15:00Z": {local(2025, 8, 7, 8)},
    }
    assert recipients(world) == "aabbcc"  # a, b, c are friends (e's friendship ended)


def test_quiet_hours_configurable_per_brand(world: World) -> None:
    world.settings.sop["quiet_start"] = "21:00"
    world.settings.sop["quiet_end"] = "09:30"
    push(world)
    world.tick(local(2025, 8, 6, 21, 1))
    assert {x["not_before"] for x in world.outbox()} == {local(2025, 8, 7, 9, 30)}


def test_daily_and_weekly_caps_count_pending_rows(world: World) -> None:
    p = world.people
    # b already has today's marketing message (pending); c had four this week (Mon 08-04 …)
    items = [outbox.Enqueue("other:b", "wecom", p["b"], {"kind": "marketing"},
                            local(2025, 8, 6, 9))]  # fmt: skip
    items += [outbox.Enqueue(f"other:c:{i}", "sms", p["c"], {"kind": "marketing"},
                             local(2025, 8, d, 12)) for i, d in enumerate((4, 4, 5, 5))]  # fmt: skip
    # a's service message does not count; a failed one does not count either
    items += [outbox.Enqueue("other:a", "wecom", p["a"], {"kind": "service"}, local(2025, 8, 6, 9)),
              outbox.Enqueue("other:a:x", "sms", p["a"], {"kind": "marketing"},
                             local(2025, 8, 6, 9))]  # fmt: skip
    assert outbox.enqueue(world.engine, world.brand_id, items) == 7
    with world.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'failed' WHERE dedup_key = 'other:a:x'"))
    push(world)
    world.tick(local(2025, 8, 6, 10, 1))
    assert recipients(world) == "a"
    # the next day b may get one again; c stays capped until next Monday
    world.tick(local(2025, 8, 7, 10, 1))
    assert recipients(world, "sop:push:1:0:") == "aab"
    # back after four days: the missed pushes all send now, so the daily cap lets one through
    world.tick(local(2025, 8, 11, 10, 1))
    assert recipients(world) == "aaabbc"
    assert recipients(world, "sop:push:1:0:c:") == ""


def test_service_messages_are_not_capped(world: World) -> None:
    outbox.enqueue(world.engine, world.brand_id, [
        outbox.Enqueue("other:b", "wecom", world.people["b"], {"kind": "marketing"},
                       local(2025, 8, 6, 9))])  # fmt: skip
    push(world, guards="{holdout: 0, kind: service}")
    world.tick(local(2025, 8, 6, 10, 1))
    assert recipients(world) == "abc"
    assert {x["payload"]["kind"] for x in world.outbox()} == {"service"}


def opt_out(world: World, person: str, channel: str | None, id_type: str = "external_userid",
            value: str | None = None) -> None:  # fmt: skip
    stored = pii.stored_value(
        pii.keyring(world.engine), id_type, value or person
    )  # a phone: hashed
    with world.engine.begin() as conn:
        conn.execute(OptOut.__table__.insert().values(
            brand_id=world.brand_id, row_key=f"t-{person}-{channel}", channel=channel,
            created_at=local(2025, 8, 1), id_type=id_type, id_value=stored))  # fmt: skip


def test_opt_out_is_per_channel(world: World) -> None:
    opt_out(world, "b", "wecom")
    opt_out(world, "a", "sms", "phone", "+8613800000001")
    push(world, key="wx")
    push(
        world,
        key="sms",
        channel="sms",
        rule="{rule: {field: identity, op: any_of, value: [phone]}}",
    )
    world.tick(local(2025, 8, 6, 10, 1))
    assert recipients(world, "sop:wx:") == "ac"  # b opted out of WeCom
    assert recipients(world, "sop:sms:") == "bd"  # a opted out of SMS; c has no phone
    notes = dict(world.sql("SELECT customer_id, note FROM sop_enrollment WHERE note IS NOT NULL "
                           "AND sop_id = (SELECT id FROM sop WHERE key = 'wx')"))  # fmt: skip
    assert notes == {world.people["b"]: "opted out of wecom"}


def test_opt_out_of_every_channel(world: World) -> None:
    opt_out(world, "c", None)
    push(world)
    world.tick(local(2025, 8, 6, 10, 1))
    assert recipients(world) == "ab"


def test_holdout_is_recorded_and_never_sent(world: World) -> None:
    push(world, key="half", guards="{holdout: 0.5}")
    world.tick(local(2025, 8, 6, 10, 1))
    friends = {k: v for k, v in world.people.items() if k in "abc"}
    held = {k for k, v in friends.items() if guards.in_holdout("half", v, 0.5)}
    assert held and held != set(friends)  # the hash splits these three
    rows = world.sql("SELECT customer_id, holdout, status FROM sop_enrollment")
    assert world.who(c for c, h, _ in rows if h) == "".join(sorted(held))
    assert {s for _, h, s in rows if h} == {"holdout"}
    assert recipients(world) == "".join(sorted(set(friends) - held))
    # stable: the next hour's push holds out the same customers
    world.tick(local(2025, 8, 6, 11, 1))
    rows = world.sql("SELECT customer_id, occurrence FROM sop_enrollment WHERE holdout")
    assert world.who(c for c, o in rows if o == "at:2025-08-06T03:00Z") == "".join(sorted(held))


def test_an_opt_out_reply_stops_that_channel(world: World) -> None:
    from siyu.consent.service import is_opt_out_reply, opt_out_from_reply

    assert is_opt_out_reply(" 退订 ") and is_opt_out_reply("td。")
    assert not is_opt_out_reply("TD是什么")
    with world.engine.begin() as conn:
        for msg in ("好的", "TD", "td"):  # only the opt-out counts, and once
            opt_out_from_reply(conn, brand_id=world.brand_id, id_type="phone",
                               id_value="+8613800000002", channel="sms", message=msg,
                               at=local(2025, 8, 6, 9))  # fmt: skip
    assert world.sql("SELECT channel FROM opt_out") == [("sms",)]
    push(
        world,
        key="sms",
        channel="sms",
        rule="{rule: {field: identity, op: any_of, value: [phone]}}",
    )
    push(world, key="wx", guards="{holdout: 0, kind: service}")  # (a's SMS fills the daily cap)
    world.tick(local(2025, 8, 6, 10, 1))
    assert recipients(world, "sop:sms:") == "ad"  # b replied TD to an SMS
    assert recipients(world, "sop:wx:") == "abc"  # … and still hears from their guide
