"""Each trigger kind enrolls once per occurrence, and never twice across ticks and restarts."""

from __future__ import annotations

from siyu import pii
from tests.sop.conftest import World, local

WELCOME = """
key: welcome
name: 新好友欢迎 New-friend welcome
trigger: {event: {type: friend_added, filter: {channel: QR1}}}
guards: {holdout: 0}
steps:
  - send:
      channel: wecom
      variants:
        - text: "{{ customer.name }}您好，我是{{ store.name }}的{{ staff.name }}"
"""


def test_friend_added_event_fires_once_per_event(world: World) -> None:
    world.put(WELCOME, activate_at=local(2025, 8, 1, 9))
    qr1 = world.sql("SELECT id FROM channel WHERE code = 'QR1'")[0][0]
    qr2 = world.sql("SELECT id FROM channel WHERE code = 'QR2'")[0][0]
    at = local(2025, 8, 1, 10)
    world.event(
        "wecom.friend_added",
        "k1",
        at=at,
        payload={"userid": "G1", "external_userid": "a", "channel_id": qr1},
    )
    world.event(
        "wecom.friend_added",
        "k2",
        at=at,
        payload={"userid": "G2", "external_userid": "b", "channel_id": qr2},
    )
    world.event(
        "wecom.friend_added",
        "k3",
        at=at,
        payload={"userid": "G2", "external_userid": "nobody", "channel_id": qr1},
    )
    r = world.tick(local(2025, 8, 1, 10, 5))
    assert r.fired["welcome"] == 1  # b came through another channel; nobody is unknown
    rows = world.outbox()
    assert [x["payload"]["text"] for x in rows] == ["张三您好，我是静安店的王导购"]
    p = rows[0]["payload"]
    assert (p["sender"], p["external_userid"], p["kind"]) == ("G1", "a", "marketing")
    assert p["sop"] == {"key": "welcome", "version": 1, "step": 0}
    # a second tick and a tick of a "restarted" process add nothing
    assert world.tick(local(2025, 8, 1, 10, 6)).fired["welcome"] == 0
    assert world.tick(local(2025, 8, 1, 10, 30)).fired["welcome"] == 0
    assert len(world.outbox()) == 1
    # the next friend through QR1 is enrolled once
    world.event(
        "wecom.friend_added",
        "k4",
        at=local(2025, 8, 1, 11),
        payload={"userid": "G2", "external_userid": "c", "channel_id": qr1},
    )
    world.tick(local(2025, 8, 1, 11, 1))
    world.tick(local(2025, 8, 1, 11, 2))
    assert world.who(x["customer_id"] for x in world.outbox()) == "ac"


GROUP_PUSH = """
key: coffee-noon
name: 午间闪购 Noon flash coupon
trigger: {schedule: "0 12 * * *"}
audience: {groups: {}}
steps:
  - send:
      channel: group
      variants:
        - when: {store: S001}
          text: "{{ store.name }}午间闪购"
        - text: "{{ group.name }}：午间特惠"
"""


def test_schedule_fires_each_instant_once_across_restarts(world: World) -> None:
    world.put(GROUP_PUSH, activate_at=local(2025, 8, 1, 9))
    assert world.tick(local(2025, 8, 1, 11, 59)).fired["coffee-noon"] == 0
    assert world.tick(local(2025, 8, 1, 12, 0, 30)).fired["coffee-noon"] == 2
    assert world.tick(local(2025, 8, 1, 12, 1)).fired["coffee-noon"] == 0
    rows = world.outbox()
    assert sorted((x["payload"]["chat_id"], x["payload"]["text"]) for x in rows) == [
        ("GR1", "静安店午间闪购"),
        ("GR2", "朝阳福利群：午间特惠"),
    ]
    assert rows[0]["dedup_key"] == "sop:coffee-noon:1:0:group:GR1:at:2025-08-01T04:00Z"
    assert {x["payload"]["sender"] for x in rows} == {"G1", "G2"}
    # down for two days: each missed noon fires exactly once when the scheduler comes back
    world.tick(local(2025, 8, 3, 18))
    world.tick(local(2025, 8, 3, 18, 5))
    keys = sorted(x["dedup_key"].rsplit(":at:", 1)[1] for x in world.outbox())
    assert keys == sorted(["2025-08-01T04:00Z", "2025-08-02T04:00Z", "2025-08-03T04:00Z"] * 2)


FILTER = """
key: filter-reminder
name: 滤芯更换提醒 Filter reminder
trigger: {after_purchase: {days: 180, category: [filter], at: "10:00"}}
guards: {holdout: 0}
steps:
  - send:
      channel: sms
      variants:
        - text: "{{ customer.name }}，您的滤芯已使用半年，回复TD退订"
"""


def test_after_purchase_fires_on_the_day_once(world: World) -> None:
    world.put(FILTER, activate_at=local(2025, 7, 1, 9))
    # 2025-02-01 + 180 days = 2025-07-31
    world.tick(local(2025, 7, 30, 11))
    assert world.outbox() == []
    r = world.tick(local(2025, 7, 31, 11))
    assert r.fired["filter-reminder"] == 2  # a and d bought a filter; d's coffee is no filter
    world.tick(local(2025, 8, 1, 11))
    rows = world.outbox()
    ring = pii.keyring(world.engine)  # the number travels sealed; the worker opens it to send
    assert all(x["payload"]["phone"] == ring.lookup_hash("phone", pii.unsealed(
        ring, x["payload"])["phone"]) for x in rows)  # fmt: skip
    assert [(pii.unsealed(ring, x["payload"])["phone"], x["payload"]["text"]) for x in rows] == [
        ("+8613800000001", "张三，您的滤芯已使用半年，回复TD退订"),
        ("+8613800000004", "赵六，您的滤芯已使用半年，回复TD退订"),
    ]
    assert rows[0]["dedup_key"] == "sop:filter-reminder:1:0:" + f"{world.people['a']}:order:A1"


def test_a_missed_day_is_caught_up(world: World) -> None:
    world.put(FILTER, activate_at=local(2025, 7, 29, 9))
    world.tick(local(2025, 7, 29, 11))
    world.tick(local(2025, 8, 2, 11))  # the scheduler was down on 07-31
    assert world.who(x["customer_id"] for x in world.outbox()) == "ad"


BIRTHDAY = """
key: birthday
name: 生日关怀 Birthday
trigger: {birthday: {at: "09:00"}}
guards: {holdout: 0}
steps:
  - send: {channel: wecom, variants: [{text: "生日快乐，{{ customer.name }}"}]}
"""

ANNIVERSARY = """
key: anniversary
name: 入会周年 Membership anniversary
trigger: {anniversary: {}}
guards: {holdout: 0}
steps:
  - send: {channel: wecom, variants: [{text: "入会一周年快乐"}]}
"""


def test_birthday_and_anniversary(world: World) -> None:
    world.put(BIRTHDAY, activate_at=local(2026, 3, 14, 9))
    world.put(ANNIVERSARY, activate_at=local(2026, 3, 14, 9))
    world.tick(local(2026, 3, 15, 8))  # enrolled, due at 09:00
    assert world.outbox() == []
    world.tick(local(2026, 3, 15, 9, 30))
    world.tick(local(2026, 3, 16, 9, 30))
    assert [x["payload"]["text"] for x in world.outbox("sop:birthday:")] == ["生日快乐，张三"]
    assert world.outbox("sop:anniversary:") == []
    world.tick(local(2026, 3, 20, 10, 30))
    rows = world.outbox("sop:anniversary:")
    assert [x["dedup_key"].split(":", 5)[5] for x in rows] == ["anniversary:M1:2026"]


def test_lifecycle_and_segment_events_with_filters(world: World) -> None:
    world.put("""
key: winback
name: 召回 Win-back
trigger: {event: {type: lifecycle_changed, filter: {to: dormant}}}
guards: {holdout: 0}
steps: [{send: {channel: wecom, variants: [{text: 想你了}]}}]
""", activate_at=local(2025, 8, 1, 9))  # fmt: skip
    at = local(2025, 8, 2, 0)
    world.event(
        "lifecycle.changed", "l1", customer="a", at=at, payload={"from": "growth", "to": "dormant"}
    )
    world.event(
        "lifecycle.changed", "l2", customer="b", at=at, payload={"from": "dormant", "to": "churned"}
    )
    world.tick(local(2025, 8, 2, 9))
    world.tick(local(2025, 8, 2, 9, 1))
    assert world.who(x["customer_id"] for x in world.outbox()) == "a"


def test_an_event_of_a_merged_away_customer_goes_to_the_survivor(world: World) -> None:
    from sqlalchemy import text

    world.put("""
key: vip
name: 标签触发 Tag trigger
trigger: {event: {type: tag_added, filter: {tag: VIP}}}
guards: {holdout: 0}
steps: [{send: {channel: wecom, variants: [{text: "{{ customer.name }}，欢迎成为VIP"}]}}]
""", activate_at=local(2025, 8, 1, 9))  # fmt: skip
    with world.engine.begin() as conn:  # d was merged into a
        conn.execute(text("UPDATE customer SET merged_into_id = :a WHERE id = :d"),
                     {"a": world.people["a"], "d": world.people["d"]})  # fmt: skip
    world.event("tag.added", "t1", customer="d", at=local(2025, 8, 1, 10), payload={"tag": "VIP"})
    world.event("tag.added", "t2", customer="b", at=local(2025, 8, 1, 10), payload={"tag": "新客"})
    world.tick(local(2025, 8, 1, 10, 1))
    assert [x["payload"]["text"] for x in world.outbox()] == ["张三，欢迎成为VIP"]
