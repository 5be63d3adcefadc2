"""A journey through wait, variants, tag, branch, staff task and webhook."""

from __future__ import annotations

from tests.sop.conftest import World, local

JOURNEY = """
key: onboarding
name: 新客旅程 Onboarding
trigger: {event: {type: friend_added}}
guards: {holdout: 0, kind: service}
steps:
  - send:
      channel: wecom
      variants:
        - when: {store: S001}
          text: "静安店欢迎{{ customer.name }}"
          image: {pic_url: "https://cdn.example/poster.png"}
        - text: "欢迎{{ customer.name }}，{{ staff.name }}为您服务"
          link: {title: "{{ store.name }}菜单", url: "https://m.example/menu"}
  - wait: {days: 1, until: "10:00"}
  - tag: {group: 旅程, name: 已欢迎}
  - branch: {when: {field: city, op: eq, value: 上海}, then: shanghai}
  - webhook: {url: "https://hooks.example/crm", body: {name: "{{ customer.name }}", source: sop}}
  - branch: {when: {field: identity, op: exists}, then: end, else: end}
  - id: shanghai
    task: {title: "回访{{ customer.name }}", body: "{{ staff.name }}：请在三天内电话回访", due_days: 3}
"""


def test_journey_steps(world: World) -> None:
    world.put(JOURNEY, activate_at=local(2025, 8, 1, 9))
    for i, (who, userid) in enumerate((("a", "G1"), ("b", "G2"))):
        world.event("wecom.friend_added", f"f{i}", at=local(2025, 8, 1, 15),
                    payload={"userid": userid, "external_userid": who})  # fmt: skip
    world.tick(local(2025, 8, 1, 15, 1))
    sent = {x["customer_id"]: x["payload"] for x in world.outbox()}
    a, b = world.people["a"], world.people["b"]
    assert sent[a]["text"] == "静安店欢迎张三"
    assert sent[a]["attachments"] == [
        {"msgtype": "image", "image": {"pic_url": "https://cdn.example/poster.png"}}
    ]
    assert sent[b]["text"] == "欢迎李四，李导购为您服务"
    assert sent[b]["attachments"][0]["link"]["title"] == "朝阳店菜单"
    # waiting until 10:00 the next day
    world.tick(local(2025, 8, 2, 9, 59))
    assert world.sql("SELECT count(*) FROM customer_tag") == [(0,)]
    world.tick(local(2025, 8, 2, 10, 0))
    tagged = world.sql("SELECT ct.customer_id FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
                       "WHERE t.name = '已欢迎'")  # fmt: skip
    assert world.who(c for (c,) in tagged) == "ab"
    assert len(world.sql("SELECT id FROM event WHERE type = 'tag.added'")) == 2
    # 上海 (a) → a staff task for G1; the others → the webhook
    tasks = world.sql("SELECT s.code, t.customer_id, t.title, t.body, t.status, t.due_at "
                      "FROM staff_task t JOIN staff s ON s.id = t.staff_id")  # fmt: skip
    assert [(s, c, t, body, st) for s, c, t, body, st, _ in tasks] == [
        ("G1", a, "回访张三", "王导购：请在三天内电话回访", "open")
    ]
    hooks = world.outbox("sop:onboarding:1:4:")
    assert [(h["customer_id"], h["adapter"], h["payload"]["body"]) for h in hooks] == [
        (b, "webhook", {"name": "李四", "source": "sop"})
    ]
    assert hooks[0]["payload"]["url"] == "https://hooks.example/crm"
    done = world.sql("SELECT customer_id, status, step_index FROM sop_enrollment ORDER BY id")
    assert done == [(a, "done", 7), (b, "done", 7)]
    # nothing runs twice
    world.tick(local(2025, 8, 3, 10, 0))
    assert len(world.sql("SELECT id FROM staff_task")) == 1
    assert len(world.outbox()) == 3


def test_a_new_version_leaves_running_journeys_on_theirs(world: World) -> None:
    world.put(JOURNEY, activate_at=local(2025, 8, 1, 9))
    world.event("wecom.friend_added", "f1", at=local(2025, 8, 1, 15),
                payload={"userid": "G1", "external_userid": "a"})  # fmt: skip
    world.tick(local(2025, 8, 1, 15, 1))
    world.put(JOURNEY.replace("已欢迎", "欢迎过"))
    world.event("wecom.friend_added", "f2", at=local(2025, 8, 1, 16),
                payload={"userid": "G2", "external_userid": "c"})  # fmt: skip
    world.tick(local(2025, 8, 1, 16, 1))
    world.tick(local(2025, 8, 2, 10, 1))
    tags = world.sql("SELECT t.name, ct.customer_id FROM customer_tag ct "
                     "JOIN tag t ON t.id = ct.tag_id ORDER BY t.name")  # fmt: skip
    assert tags == [("已欢迎", world.people["a"]), ("欢迎过", world.people["c"])]
    assert [x["dedup_key"].split(":")[2] for x in world.outbox("sop:onboarding:")][:2] == ["1", "2"]
