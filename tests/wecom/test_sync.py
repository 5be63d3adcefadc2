"""`siyu wecom sync` against the simulator over HTTP: full pull, reconcile, idempotence, resume.

The simulated corp is built with its callbacks held back (never delivered), so everything
Siyu learns it learns from the sync, as after an outage of the callback URL.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from siyu import pii
from siyu.cli import app
from siyu.config import Settings
from siyu.wecom import service as wecom_service
from siyu.wecom.simulator.state import Follow
from siyu.wecom.sync import SyncInterrupted, sync
from tests.wecom.world import MIXED_FAULTS, World, cli_env, world

CUSTOMERS = 45
# Open friendships per (guide, channel): 15 through the mall code (guide01), 30 round-robin
# over guide02/03 through a code of no channel, and guide01's extra friendship.
FRIENDS = [
    ("guide01", None, 1),
    ("guide01", "mall_qr", 15),
    ("guide02", None, 15),
    ("guide03", None, 15),
]


def build_corp(w: World) -> dict[str, object]:
    """Three guides in two departments, 45 customers (one a friend of two guides), corp tags
    on some pairs, a channel code, and a group."""
    w.sender.hold()  # no callback reaches Siyu: the sync alone must find everything
    w.sim.add_department(id=2, name="华东区")
    w.sim.add_user(userid="guide01", name="王导购")
    w.sim.add_user(userid="guide02", name="李导购")
    w.sim.add_user(userid="guide03", name="赵导购", department=[2])
    way = wecom_service.create_contact_way(
        w.engine, w.client, brand_id=w.brand_id, channel_code="mall_qr", user_ids=["guide01"]
    )
    added = [
        w.sim.customer_scans(
            way.config_id, name=f"顾客{i}", unionid=f"oU{i:03d}" if i % 3 == 0 else None
        )
        for i in range(15)
    ]
    plain = w.sim.add_contact_way(type=2, scene=2, user=["guide02", "guide03"], state="")
    added += [
        w.sim.customer_scans(plain["config_id"], name=f"顾客{i}") for i in range(15, CUSTOMERS)
    ]
    shared = added[20][1]  # guide01 also adds this customer
    with w.sim.lock:
        w.sim.follows[("guide01", shared)] = Follow("guide01", shared, w.sim.clock.now())
    vip = w.client.add_corp_tag(group_name="会员", tag=[{"name": "VIP"}])["tag"][0]["id"]
    for userid, ext in added[:5]:
        w.sim.mark_tag(userid, ext, add_tag=[vip])
    chat = w.sim.create_group(owner="guide02", name="福利群", members=[e for _, e in added[15:20]])
    return {"added": added, "shared": shared, "vip": vip, "chat": chat, "way": way}


def state(w: World) -> dict[str, object]:
    """What a user would see: staff, friendships per guide and channel, tags, groups."""
    return {
        "staff": w.rows(
            "SELECT m.userid, s.name, m.main_department, m.left_at IS NOT NULL FROM wecom_member m "
            "JOIN staff s ON s.id = m.staff_id WHERE m.brand_id = :b ORDER BY m.userid"
        ),
        "friends": sorted(
            w.rows(
                "SELECT s.code, ch.code, count(*) FROM connection c "
                "JOIN staff s ON s.id = c.staff_id LEFT JOIN channel ch ON ch.id = c.channel_id "
                "WHERE c.brand_id = :b AND c.kind = 'wecom_friend' AND c.ended_at IS NULL "
                "GROUP BY s.code, ch.code"
            ),
            key=lambda r: (r[0], r[1] or ""),
        ),
        "ended": w.rows(
            "SELECT c.id_value, c.ended_by FROM connection c WHERE c.brand_id = :b "
            "AND c.ended_at IS NOT NULL ORDER BY c.id_value"
        ),
        "customers": w.rows(
            "SELECT count(*) FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"
        ),
        "unionids": w.rows(
            "SELECT count(*) FROM identifier WHERE brand_id = :b AND id_type = 'unionid'"
        ),
        "tagged": w.rows(
            "SELECT t.name, count(*) FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
            "JOIN customer c ON c.id = ct.customer_id WHERE c.brand_id = :b GROUP BY t.name"
        ),
        "members": w.rows(
            "SELECT g.name, s.code, count(c.id) FROM chat_group g JOIN staff s "
            "ON s.id = g.owner_staff_id LEFT JOIN connection c ON c.group_id = g.id "
            "AND c.ended_at IS NULL WHERE g.brand_id = :b GROUP BY g.name, s.code"
        ),
    }


def test_first_sync_pulls_everything_and_a_second_changes_nothing(settings: Settings) -> None:
    with world(settings) as w:
        corp = build_corp(w)
        first = sync(w.engine, w.client, brand_id=w.brand_id, page_size=7)
        seen = state(w)
        second = sync(w.engine, w.client, brand_id=w.brand_id, page_size=7)
        out = CliRunner().invoke(
            app, ["--data-dir", str(w.settings.data_dir), "wecom", "sync"], env=cli_env(w)
        )
        again = state(w)
        stored = w.rows("SELECT count(*) FROM wecom_callback_event WHERE brand_id = :b")
    assert stored == [(0,)]  # nothing came by callback
    assert seen["staff"] == [
        ("guide01", "王导购", 1, False),
        ("guide02", "李导购", 1, False),
        ("guide03", "赵导购", 2, False),
    ]
    assert seen["friends"] == FRIENDS
    assert seen["customers"] == [(CUSTOMERS,)]  # the shared customer is one customer
    assert seen["unionids"] == [(5,)]
    assert seen["tagged"] == [("VIP", 5)]
    assert seen["members"] == [("福利群", "guide02", 5)]
    assert first.counts["friendships_added"] == CUSTOMERS + 1
    assert first.counts["members_joined"] == 5
    assert first.changed and not second.changed, second.counts
    assert out.exit_code == 0, out.output
    assert "nothing changed" in out.output
    assert again == seen
    assert corp["chat"]


def test_a_later_sync_repairs_what_the_callbacks_missed(settings: Settings) -> None:
    with world(settings) as w:
        corp = build_corp(w)
        sync(w.engine, w.client, brand_id=w.brand_id)
        added = corp["added"]
        gone_friend = added[3]  # guide01 deletes a customer; the callback never arrives
        w.sim.staff_deletes_customer(*gone_friend)
        w.sim.leave_group(str(corp["chat"]), added[16][1])
        w.sim.mark_tag(*added[4], remove_tag=[str(corp["vip"])])
        with w.sim.lock:
            w.sim.customers[added[31][1]]["name"] = "改名的顾客"
        new = w.sim.customer_scans(str(corp["way"].config_id), name="新顾客")
        w.sim.resign("guide03")  # left: customers stay until a transfer, not ended
        result = sync(w.engine, w.client, brand_id=w.brand_id)
        after = state(w)
        # The WeCom record takes the new name (the customer's merged profile is identity's
        # to recompute).
        renamed = w.rows(  # names are stored sealed, with their hash (siyu.pii)
            "SELECT count(*) FROM source_record WHERE brand_id = :b AND name_hash = :h",
            h=pii.keyring(w.engine).lookup_hash("name", "改名的顾客"),
        )
        new_conn = w.rows(
            "SELECT ch.code FROM connection c JOIN channel ch ON ch.id = c.channel_id "
            "WHERE c.brand_id = :b AND c.id_value = :e",
            e=new[1],
        )
    assert result.counts == {
        "staff_left": 1,
        "customers": 2,  # the new customer and the renamed one
        "friendships_added": 1,
        "friendships_ended": 1,
        "pair_tags": 1,
        "members_left": 1,
        "customer_tags": 2,  # the deleted friend's VIP went with the friendship
    }
    assert after["ended"] == sorted([(gone_friend[1], "system"), (added[16][1], "system")])
    assert after["tagged"] == [("VIP", 3)]
    assert after["members"] == [("福利群", "guide02", 4)]
    assert ("guide03", "赵导购", 2, True) in after["staff"]
    assert ("guide03", None, 15) in after["friends"]
    assert renamed == [(1,)]
    assert new_conn == [("mall_qr",)]


def test_an_interrupted_sync_resumes_where_it_stopped(settings: Settings) -> None:
    with world(settings) as w:
        build_corp(w)
        pages = -(-(CUSTOMERS + 1) // 5)  # batch/get_by_user pages of 5
        w.injector.start_outage(after_calls=8)  # staff and tags pass; customers stop midway
        with pytest.raises(SyncInterrupted) as stopped:
            sync(w.engine, w.client, brand_id=w.brand_id, page_size=5)
        w.injector.end_outage()
        stored = w.rows(
            "SELECT phase, last_error IS NOT NULL FROM wecom_sync_run WHERE brand_id = :b"
        )
        partial = w.rows(
            "SELECT count(*) FROM connection WHERE brand_id = :b AND kind = 'wecom_friend'"
        )[0][0]
        calls_before = w.injector.paths.get("/cgi-bin/externalcontact/batch/get_by_user", 0)
        resumed = sync(w.engine, w.client, brand_id=w.brand_id, page_size=5)
        calls = w.injector.paths["/cgi-bin/externalcontact/batch/get_by_user"] - calls_before
        final = state(w)
        third = sync(w.engine, w.client, brand_id=w.brand_id, page_size=5)
    assert stopped.value.phase == "customers"
    assert stored == [("customers", True)]
    assert 0 < partial < CUSTOMERS + 1
    assert resumed.resumed_from == "customers"
    # Only the pages not yet written were fetched again (the one that failed included).
    assert calls == pages - partial // 5
    assert sum(n for _, _, n in final["friends"]) == CUSTOMERS + 1
    assert final["members"] == [("福利群", "guide02", 5)]
    assert not third.changed


def test_a_sync_under_injected_failures_ends_the_same(settings: Settings) -> None:
    faults = MIXED_FAULTS
    with world(settings, api_faults=faults, client_timeout=0.3) as w:
        build_corp(w)
        sync(w.engine, w.client, brand_id=w.brand_id, page_size=7)
        got = state(w)
        injected = dict(w.injector.injected)
        again = sync(w.engine, w.client, brand_id=w.brand_id, page_size=7)
    assert got["friends"] == FRIENDS
    assert got["members"] == [("福利群", "guide02", 5)]
    assert got["tagged"] == [("VIP", 5)]
    assert got["customers"] == [(CUSTOMERS,)]
    assert not again.changed, again.counts
    assert {"token_expired", "rate_limit", "busy", "server_error", "timeout"} <= set(injected)
