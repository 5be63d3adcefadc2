"""Issue #8's end-to-end story, through the simulator over real HTTP on localhost.

Customers scan a store's channel live code → WeCom sends encrypted add_external_contact
callbacks (State, WelcomeCode) → Siyu stores and processes them: connections with the channel,
the welcome sent with the right WelcomeCode, auto-tags in WeCom and in Siyu; then one customer
deletes the guide and a guide deletes another customer, which ends those connections. With
failure injection on (expired tokens, 45009 bursts, -1, 5xx, slow answers, duplicate and
reordered callbacks, processing between partial deliveries) the final state is the same.
"""

from __future__ import annotations

import pytest

from siyu import pii
from siyu.config import Settings
from siyu.orgs.models import Store
from siyu.tags import service as tag_service
from siyu.wecom import service as wecom_service
from siyu.wecom.events import process_until_idle
from siyu.wecom.simulator import CallbackFaults
from tests.wecom.world import MIXED_FAULTS, World, world

CUSTOMERS = 6
WELCOME = {
    "text": "{name}，欢迎来到静安店！",
    "attachments": [{"msgtype": "link", "link": {"title": "新人券", "url": "https://e.example/c"}}],
}


def run_scenario(w: World, *, partial_release: bool) -> dict[str, object]:
    with w.engine.begin() as conn:
        conn.execute(
            Store.__table__.insert().values(brand_id=w.brand_id, code="S001", name="静安店")
        )
        scan_tag = tag_service.get_or_create_tag(
            conn, brand_id=w.brand_id, group="渠道", name="门店扫码"
        )
        coffee_tag = tag_service.get_or_create_tag(
            conn, brand_id=w.brand_id, group="兴趣", name="咖啡"
        )
    w.sim.add_user(userid="guide01", name="王导购")
    w.sim.add_user(userid="guide02", name="李导购")
    way = wecom_service.create_contact_way(
        w.engine,
        w.client,
        brand_id=w.brand_id,
        channel_code="store_qr",
        channel_name="门店二维码",
        store_code="S001",
        user_ids=["guide01", "guide02"],
        welcome=WELCOME,
        tag_ids=[scan_tag, coffee_tag],
    )
    assert way.state.startswith("S001-store_qr-") and len(way.state) <= 30

    # Customers scan: the odd ones carry a unionid. Under faults the batch arrives out of order,
    # duplicated, and half of it only after a first processing pass.
    w.sender.hold()
    added = []
    for i in range(CUSTOMERS):
        unionid = f"oUnion{i:04d}" if i % 2 else None
        added.append(w.sim.customer_scans(way.config_id, name=f"顾客{i}", unionid=unionid))
        w.sim.clock.advance(60)
    if partial_release:
        w.sender.release(CUSTOMERS // 2)
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
    w.sender.release()
    result = process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
    assert result.failed == 0 or result.processed > 0

    w.sim.clock.advance(3600)
    w.sim.customer_deletes_staff(*added[0])
    w.sim.staff_deletes_customer(*added[1])
    process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)

    names = {ext: f"顾客{i}" for i, (_, ext) in enumerate(added)}
    wecom_tag_ids = dict(
        w.rows("SELECT id, wecom_tag_id FROM tag WHERE id IN (:a, :c)", a=scan_tag, c=coffee_tag)
    )
    return {
        "way": way,
        "added": added,
        "names": names,
        "wecom_tags": {wecom_tag_ids[scan_tag], wecom_tag_ids[coffee_tag]},
        "summary": summarise(w, names),
    }


def summarise(w: World, names: dict[str, str]) -> dict[str, tuple]:
    """What a user would see per customer: guide, channel, state prefix, ended_by, tags,
    welcome status — keyed by customer name so two runs compare."""
    conns = w.rows(
        "SELECT c.id_value, s.code, ch.code, c.state, c.ended_by, c.ended_at IS NOT NULL "
        "FROM connection c JOIN staff s ON s.id = c.staff_id "
        "LEFT JOIN channel ch ON ch.id = c.channel_id "
        "WHERE c.brand_id = :b AND c.kind = 'wecom_friend' ORDER BY c.id"
    )
    tags = {}
    for ext, tag in w.rows(
        "SELECT i.value, t.name FROM identifier i JOIN customer_tag ct ON ct.customer_id = i.customer_id "
        "JOIN tag t ON t.id = ct.tag_id WHERE i.brand_id = :b AND i.id_type = 'external_userid'"
    ):
        tags.setdefault(ext, set()).add(tag)
    welcomes = dict(w.rows("SELECT external_userid, status FROM wecom_welcome WHERE brand_id = :b"))
    out = {}
    for ext, staff, channel, state, ended_by, ended in conns:
        assert names[ext] not in out, f"{names[ext]} has two friendships"
        out[names[ext]] = (
            staff,
            channel,
            state.rsplit("-", 1)[0],
            ended,
            ended_by,
            frozenset(tags.get(ext, ())),
            welcomes.get(ext),
        )
    return out


EXPECTED = {
    f"顾客{i}": (
        "guide01" if i % 2 == 0 else "guide02",
        "store_qr",
        "S001-store_qr",
        i in (0, 1),
        {0: "customer", 1: "staff"}.get(i),
        frozenset({"门店扫码", "咖啡"}),
        "sent",
    )
    for i in range(CUSTOMERS)
}


def check_wecom_side(w: World, run: dict) -> None:
    """WeCom got exactly one welcome per customer, with the code of that customer's add
    event and their name; every remaining friendship carries both auto-tags."""
    sent = w.sim.welcomes_sent
    assert sorted(m["external_userid"] for m in sent) == sorted(e for _, e in run["added"])
    for m in sent:
        issued = w.sim.welcome_codes[m["welcome_code"]]
        assert (issued["userid"], issued["external_userid"]) == (m["userid"], m["external_userid"])
        assert m["text"]["content"] == f"{run['names'][m['external_userid']]}，欢迎来到静安店！"
        assert m["attachments"] == WELCOME["attachments"]
    for userid, ext in run["added"][2:]:
        assert w.sim.tags_of(userid, ext) == run["wecom_tags"]
    assert w.sim.friends() == set(run["added"][2:])


def check_siyu_side(w: World) -> None:
    statuses = w.rows(
        "SELECT status, count(*) FROM wecom_callback_event WHERE brand_id = :b GROUP BY status"
    )
    assert statuses == [("processed", 2 * 1 + CUSTOMERS)]
    # One customer per WeChat user; the unionid is an identity of the odd ones.
    assert w.rows(
        "SELECT count(*) FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"
    ) == [(CUSTOMERS,)]
    assert w.rows(
        "SELECT count(*) FROM identifier WHERE brand_id = :b AND id_type = 'unionid'"
    ) == [(CUSTOMERS // 2,)]
    # Profiles come from WeCom's externalcontact/get.
    # (stored sealed: siyu.pii)
    ring = pii.keyring(w.engine)
    names = w.rows("SELECT name_sealed FROM customer WHERE brand_id = :b")
    assert sorted(ring.open_(r[0]) for r in names) == sorted(f"顾客{i}" for i in range(CUSTOMERS))
    kinds = dict(w.rows("SELECT type, count(*) FROM event WHERE brand_id = :b GROUP BY type"))
    # Every customer tag that came from WeCom arrived with a tag.added event (issue #5 tags).
    tagged = w.rows(
        "SELECT count(*) FROM customer_tag ct JOIN customer c ON c.id = ct.customer_id "
        "WHERE c.brand_id = :b AND ct.source = 'wecom'"
    )[0][0]
    assert kinds.pop("tag.added", 0) - kinds.pop("tag.removed", 0) == tagged > 0
    assert kinds == {"wecom.friend_added": CUSTOMERS, "wecom.friend_deleted": 2}


def test_customers_scan_a_store_code_end_to_end(settings: Settings) -> None:
    with world(settings) as w:
        run = run_scenario(w, partial_release=False)
        assert run["summary"] == EXPECTED
        check_wecom_side(w, run)
        check_siyu_side(w)
        assert w.sender.failed == 0


def test_the_same_scenario_with_failures_injected_ends_the_same(settings: Settings) -> None:
    faults = MIXED_FAULTS
    with world(
        settings,
        api_faults=faults,
        callback_faults=CallbackFaults(duplicate_every=2, reorder=True),
        client_timeout=0.3,
    ) as w:
        run = run_scenario(w, partial_release=True)
        injected = dict(w.injector.injected)
        assert run["summary"] == EXPECTED
        check_wecom_side(w, run)
        check_siyu_side(w)
    # The faults did happen: each kind at least once.
    assert set(injected) == {"token_expired", "rate_limit", "busy", "server_error", "timeout"}


@pytest.mark.parametrize("order", ["add_first", "delete_first"])
def test_a_deletion_ends_the_friendship_whatever_order_it_is_processed_in(
    settings: Settings, order: str
) -> None:
    with world(settings) as w:
        w.sim.add_user(userid="guide01", name="王导购")
        w.sender.hold()
        way = w.sim.add_contact_way(type=1, scene=2, user=["guide01"], state="ad-hoc")
        userid, ext = w.sim.customer_scans(way["config_id"], name="晚到的顾客")
        w.sim.clock.advance(5)
        w.sim.customer_deletes_staff(userid, ext)
        if order == "delete_first":  # the deletion is stored and processed before the add
            w.sender.faults.reorder = True
            w.sender.release(1)
            process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
            assert w.rows("SELECT count(*) FROM connection WHERE brand_id = :b") == [(0,)]
        w.sender.release()
        process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        rows = w.rows(
            "SELECT state, channel_id, ended_by, ended_at > created_at FROM connection "
            "WHERE brand_id = :b"
        )
    # An unknown state is kept on the connection but attributes no channel.
    assert rows == [("ad-hoc", None, "customer", True)]
