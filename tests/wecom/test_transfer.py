"""Staff transfer (在职继承 / 离职继承) end to end through the simulator, and the directory events.

A guide leaves: WeCom's delete_user callback marks them left; their customers and group are
handed to another guide; the statuses are followed (transfer_result) to completion; the
friendships move, keeping each customer's channel. With failure injection on, the same end.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from siyu import pii
from siyu.cli import app
from siyu.config import Settings
from siyu.wecom import service as wecom_service
from siyu.wecom.events import process_until_idle
from siyu.wecom.simulator import CallbackFaults
from siyu.wecom.transfer import TransferRefused, refresh, transfer
from tests.wecom.world import MIXED_FAULTS, World, cli_env, world

CUSTOMERS = 5


def process(w: World) -> None:
    result = process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
    assert result.failed == 0 or result.processed > 0, result.errors


def friendships(w: World) -> list[tuple]:
    """Per customer name: (guide, channel, open?, ended_by), in a stable order."""
    ring = pii.keyring(w.engine)  # names are stored sealed (siyu.pii)
    rows = [
        (ring.open_(r[0]), *r[1:])
        for r in w.rows(
            "SELECT r.name_sealed, s.code, ch.code, c.ended_at IS NULL, c.ended_by "
            "FROM connection c JOIN staff s ON s.id = c.staff_id "
            "LEFT JOIN channel ch ON ch.id = c.channel_id JOIN source_record r "
            "ON r.record_key = 'wecom:' || c.id_value AND r.brand_id = c.brand_id "
            "WHERE c.brand_id = :b AND c.kind = 'wecom_friend'"
        )
    ]
    return sorted(rows, key=lambda r: (r[0], r[1]))


def resigned_guide_scenario(w: World) -> dict[str, object]:
    w.sim.add_user(userid="guide01", name="王导购")
    w.sim.add_user(userid="guide02", name="李导购")
    way = wecom_service.create_contact_way(
        w.engine, w.client, brand_id=w.brand_id, channel_code="store_qr", user_ids=["guide01"]
    )
    added = [w.sim.customer_scans(way.config_id, name=f"顾客{i}") for i in range(CUSTOMERS)]
    chat = w.sim.create_group(owner="guide01", name="老王的群", members=[added[0][1]])
    w.sim.clock.advance(3600)
    w.sim.resign("guide01")
    process(w)
    left = w.rows("SELECT userid FROM wecom_member WHERE brand_id = :b AND left_at IS NOT NULL")

    summary = transfer(
        w.engine, w.client, brand_id=w.brand_id, handover="guide01", takeover="guide02"
    )
    waiting = refresh(w.engine, w.client, brand_id=w.brand_id)
    w.sim.clock.advance(24 * 3600)
    w.sim.complete_transfers()
    process(w)
    done = refresh(w.engine, w.client, brand_id=w.brand_id)
    again = transfer(
        w.engine, w.client, brand_id=w.brand_id, handover="guide01", takeover="guide02"
    )
    return {
        "left": left,
        "summary": (summary.kind, summary.requested, summary.waiting, summary.groups_moved),
        "waiting": waiting.changed,
        "done": done.changed,
        "again": again.requested,
        "statuses": w.rows(
            "SELECT kind, subject, status, count(*) FROM wecom_transfer WHERE brand_id = :b "
            "GROUP BY kind, subject, status"
        ),
        "friendships": friendships(w),
        "group_owner": w.rows(
            "SELECT s.code FROM chat_group g JOIN staff s ON s.id = g.owner_staff_id "
            "WHERE g.brand_id = :b AND g.code = :c",
            c=chat,
        ),
        "wecom_friends": sorted(w.sim.friends()),
        "added": added,
    }


def expected_friendships() -> list[tuple]:
    rows = []
    for i in range(CUSTOMERS):
        rows.append((f"顾客{i}", "guide01", "store_qr", False, "system"))
        rows.append((f"顾客{i}", "guide02", "store_qr", True, None))
    return rows


def check(run: dict[str, object]) -> None:
    assert run["left"] == [("guide01",)]
    assert run["summary"] == ("resigned", CUSTOMERS, CUSTOMERS, 1)
    assert run["waiting"] == {}  # nothing settled before WeCom's 24 hours
    assert run["done"] == {"succeeded": CUSTOMERS}
    assert run["again"] == 0  # nobody is left to hand over
    assert sorted(run["statuses"]) == [
        ("resigned", "customer", "succeeded", CUSTOMERS),
        ("resigned", "group", "succeeded", 1),
    ]
    assert run["friendships"] == expected_friendships()
    assert run["group_owner"] == [("guide02",)]
    assert run["wecom_friends"] == sorted(("guide02", e) for _, e in run["added"])


def test_a_resigned_guides_customers_are_transferred_and_tracked(settings: Settings) -> None:
    with world(settings) as w:
        run = resigned_guide_scenario(w)
        events = dict(w.rows("SELECT type, count(*) FROM event WHERE brand_id = :b GROUP BY type"))
    check(run)
    assert events["wecom.customer_transferred"] == CUSTOMERS
    assert events["wecom.staff_left"] == 1


def test_the_same_transfer_with_failures_injected_ends_the_same(settings: Settings) -> None:
    faults = MIXED_FAULTS
    with world(
        settings,
        api_faults=faults,
        callback_faults=CallbackFaults(duplicate_every=2, reorder=True),
        client_timeout=0.3,
    ) as w:
        run = resigned_guide_scenario(w)
        # A transfer call that timed out is not retried (it may have been executed); its rows
        # stay 'requesting' until transfer_result settles them — ask once more if so.
        refresh(w.engine, w.client, brand_id=w.brand_id)
        run["statuses"] = w.rows(
            "SELECT kind, subject, status, count(*) FROM wecom_transfer WHERE brand_id = :b "
            "GROUP BY kind, subject, status"
        )
        run["friendships"] = friendships(w)
        injected = dict(w.injector.injected)
    check(run)
    assert {"token_expired", "rate_limit", "busy", "server_error"} <= set(injected)


def test_in_service_transfer_refusal_and_the_90_day_rule(settings: Settings) -> None:
    with world(settings) as w:
        for i in (1, 2, 3):
            w.sim.add_user(userid=f"guide0{i}", name=f"导购{i}")
        way = w.sim.add_contact_way(type=1, scene=2, user=["guide01"], state="s")
        (_, a), (_, b) = (w.sim.customer_scans(way["config_id"], name=n) for n in ("甲", "乙"))
        process(w)
        first = transfer(
            w.engine, w.client, brand_id=w.brand_id, handover="guide01", takeover="guide02",
            message="您好，我的同事李导购将继续为您服务",
        )  # fmt: skip
        w.sim.complete_transfers(refuse={b})  # 乙 refuses: transfer_fail callback
        process(w)
        refresh(w.engine, w.client, brand_id=w.brand_id)
        after_first = dict(
            w.rows("SELECT subject_id, status FROM wecom_transfer WHERE brand_id = :b")
        )
        # 甲 moves twice more: the second goes, the third is WeCom's 90-day limit.
        transfer(
            w.engine, w.client, brand_id=w.brand_id, handover="guide02", takeover="guide03",
            customers=[a],
        )  # fmt: skip
        w.sim.complete_transfers()
        process(w)
        refresh(w.engine, w.client, brand_id=w.brand_id)
        third = transfer(
            w.engine, w.client, brand_id=w.brand_id, handover="guide03", takeover="guide01",
            customers=[a],
        )  # fmt: skip
        open_friends = w.rows(
            "SELECT c.id_value, s.code FROM connection c JOIN staff s ON s.id = c.staff_id "
            "WHERE c.brand_id = :b AND c.ended_at IS NULL ORDER BY s.code"
        )
        with pytest.raises(TransferRefused, match="not left"):
            transfer(
                w.engine, w.client, brand_id=w.brand_id, handover="guide01",
                takeover="guide02", resigned=True,
            )  # fmt: skip
        with pytest.raises(TransferRefused, match="same staff"):
            transfer(w.engine, w.client, brand_id=w.brand_id, handover="x", takeover="x")
        out = CliRunner().invoke(
            app,
            ["--data-dir", str(w.settings.data_dir), "wecom", "transfer-status", "--no-refresh"],
            env=cli_env(w),
        )
    assert (first.kind, first.waiting) == ("in_service", 2)
    assert after_first == {a: "succeeded", b: "refused"}
    assert third.requested == 0
    assert third.skipped == [(a, "transferred 2 times in 90 days (WeCom allows 2)")]
    assert sorted(open_friends) == sorted([(a, "guide03"), (b, "guide01")])
    assert out.exit_code == 0, out.output
    assert "refused" in out.output and "succeeded" in out.output


def test_directory_callbacks_keep_staff_current(settings: Settings) -> None:
    with world(settings) as w:
        w.sim.staff_joins(userid="guide07", name="新导购", department=[1])
        w.sim.staff_renamed("guide07", name="新导购（静安）")
        process(w)
        joined = w.rows(
            "SELECT m.userid, s.name, m.left_at IS NULL FROM wecom_member m "
            "JOIN staff s ON s.id = m.staff_id WHERE m.brand_id = :b"
        )
        w.sim.resign("guide07")
        process(w)
        left = w.rows("SELECT status, left_at IS NOT NULL FROM wecom_member WHERE brand_id = :b")
        statuses = w.rows("SELECT DISTINCT status FROM wecom_callback_event WHERE brand_id = :b")
    assert joined == [("guide07", "新导购（静安）", True)]
    assert left == [(5, True)]
    assert statuses == [("processed",)]
