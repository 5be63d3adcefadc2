"""change_external_chat and change_external_tag callbacks, through the simulator."""

from __future__ import annotations

from siyu.config import Settings
from siyu.wecom.events import process_until_idle
from tests.wecom.world import world


def test_group_create_join_leave_and_dismiss_become_memberships(settings: Settings) -> None:
    with world(settings) as w:
        w.sim.add_user(userid="owner01", name="店长")
        way = w.sim.add_contact_way(type=1, scene=2, user=["owner01"], state="g")
        a = w.sim.customer_scans(way["config_id"], name="甲", unionid="oUnionA")[1]
        b = w.sim.customer_scans(way["config_id"], name="乙")[1]
        c = w.sim.customer_scans(way["config_id"], name="丙")[1]
        w.sim.clock.advance(10)
        chat = w.sim.create_group(owner="owner01", name="静安店福利群", members=[a, b])
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        # The later changes are processed together, newest first: each event's own
        # MemChangeList and CreateTime decide, not the order.
        w.sender.hold()
        w.sender.faults.reorder = True
        w.sim.clock.advance(10)
        w.sim.join_group(chat, c, join_scene=3)
        w.sim.clock.advance(10)
        w.sim.leave_group(chat, a, quit_scene=0)
        w.sim.clock.advance(10)
        w.sim.leave_group(chat, b, quit_scene=1)
        w.sender.release()
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        group = w.rows(
            "SELECT g.name, s.code FROM chat_group g JOIN staff s "
            "ON s.id = g.owner_staff_id WHERE g.brand_id = :b AND g.code = :c",
            c=chat,
        )
        members = w.rows(
            "SELECT id_value, ended_by FROM connection WHERE brand_id = :b "
            "AND kind = 'group_member' ORDER BY id_value"
        )
        w.sim.clock.advance(10)
        w.sim.dismiss_group(chat)
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        after = w.rows(
            "SELECT count(*) FROM connection WHERE brand_id = :b "
            "AND kind = 'group_member' AND ended_at IS NULL"
        )
        joined = w.rows(
            "SELECT count(*) FROM event WHERE brand_id = :b AND type = 'wecom.group_joined'"
        )
    assert group == [("静安店福利群", "owner01")]
    assert members == sorted([(a, "customer"), (b, "staff"), (c, None)])
    assert after == [(0,)]
    assert joined == [(3,)]


def test_a_corp_tag_change_is_pulled_into_siyu(settings: Settings) -> None:
    with world(settings) as w:
        created = w.client.add_corp_tag(
            group_name="会员等级", tag=[{"name": "金卡"}, {"name": "银卡"}]
        )
        gold, silver = (t["id"] for t in created["tag"])
        # WeCom reports changes made in its admin console by callback; the simulator's admin
        # is its API, so the callback is sent by hand here.
        from siyu.wecom.simulator import Event

        w.sim.edit_corp_tag(id=gold, name="黑金卡")
        w.sim.del_corp_tag(tag_id=[silver])
        w.sender.deliver(
            [
                Event(
                    w.sim.corp_id,
                    w.sim.clock.now(),
                    "change_external_tag",
                    "update",
                    {"Id": gold, "TagType": "tag"},
                )
            ]
        )
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        tags = w.rows(
            "SELECT g.name, t.name, t.wecom_tag_id FROM tag t JOIN tag_group g "
            "ON g.id = t.group_id WHERE g.brand_id = :b"
        )
    assert tags == [("会员等级", "黑金卡", gold)]
