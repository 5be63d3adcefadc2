"""Dry run (the guard funnel, samples, nothing sent) and the uplift report (SPEC §5.16)."""

from __future__ import annotations

import math

from siyu.automation import outbox
from siyu.sop import report, service
from siyu.sop.models import SopEnrollment
from tests.sop.conftest import World, local
from tests.sop.test_guards import opt_out

PUSH = """
key: push
name: 推送 Push
trigger: {schedule: "0 10 * * *"}
audience: {rule: {field: identity, op: any_of, value: [phone, external_userid]}}
guards: {holdout: 0}
conversion_days: 7
steps:
  - send:
      channel: wecom
      variants:
        - when: {store: S001}
          text: "{{ store.name }}新品：{{ customer.name }}专享"
        - when: {field: city, op: eq, value: 广州}
          text: "广州专享"
        - text: "{{ customer.name }}，本周上新"
"""


def test_dry_run_counts_each_guard_and_sends_nothing(world: World) -> None:
    world.put(PUSH)
    opt_out(world, "b", "wecom")
    outbox.enqueue(world.engine, world.brand_id, [outbox.Enqueue(
        "other:c", "wecom", world.people["c"], {"kind": "marketing"}, local(2025, 8, 6, 9))])  # fmt: skip
    r = report.dry_run(world.settings, world.engine, world.brand_id, "push", local(2025, 8, 6, 10))
    # a b c d e → b opted out → only a and c are WeCom friends → c has today's message
    assert [n for _, n in r.funnel] == [5, 5, 4, 2, 1, 1]
    assert r.samples == [
        ("store any_of ['S001']", "静安店新品：张三专享"),
        ("city eq 广州", "(no recipient in this variant)"),
        ("default", "(no recipient in this variant)"),
    ]
    assert r.held_until is None
    assert [x["dedup_key"] for x in world.outbox("")] == ["other:c"]
    assert world.sql("SELECT count(*) FROM sop_enrollment") == [(0,)]
    night = report.dry_run(world.settings, world.engine, world.brand_id, "push",
                           local(2025, 8, 6, 23))  # fmt: skip
    assert night.held_until == local(2025, 8, 7, 8)


def test_dry_run_holdout_row(world: World) -> None:
    world.put(PUSH.replace("holdout: 0", "holdout: 0.5"))
    from siyu.sop.guards import in_holdout

    r = report.dry_run(world.settings, world.engine, world.brand_id, "push", local(2025, 8, 6, 10))
    kept = sum(1 for c in world.people.values() if not in_holdout("push", c, 0.5))
    assert r.funnel[:2] == [("audience 受众", 5), ("after holdout 对照组 (50%)", kept)]


def test_report_hand_computed(world: World) -> None:
    world.put(PUSH)
    p = world.people
    with world.engine.begin() as conn:
        sop_id = service.get(conn, brand_id=world.brand_id, key="push").sop.id
        rows = [
            # treated: a converts (A1 on 02-01 12:00, within 7 days); b, c, e do not
            ("a", "o1", local(2025, 1, 30, 10), False),
            ("b", "o1", local(2025, 1, 30, 10), False),
            ("c", "o1", local(2025, 1, 30, 10), False),
            ("e", "o1", local(2025, 1, 30, 10), False),
            # holdout: d converts in the first (D1 02-01), not in the second (no order 03-01…08)
            ("d", "o1", local(2025, 1, 31, 10), True),
            ("d", "o2", local(2025, 3, 1, 10), True),
        ]
        conn.execute(SopEnrollment.__table__.insert(), [
            {"brand_id": world.brand_id, "sop_id": sop_id, "version": 1, "subject": f"c:{p[w]}",
             "customer_id": p[w], "occurrence": o, "enrolled_at": at, "holdout": h,
             "status": "holdout" if h else "done", "step_index": 1, "due_at": at}
            for w, o, at, h in rows])  # fmt: skip
    outbox.enqueue(world.engine, world.brand_id, [
        outbox.Enqueue(f"sop:push:1:0:{p['a']}:o1", "wecom", p["a"], {}),
        outbox.Enqueue(f"sop:push:1:0:{p['b']}:o1", "wecom", p["b"], {}),
    ])  # fmt: skip
    with world.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE outbox SET status = 'sent' WHERE customer_id = :a"), {"a": p["a"]}
        )
        r = report.report(conn, brand_id=world.brand_id, key="push")
    assert (r.enrolled, r.reached, r.delivered) == (6, 2, 1)
    assert (r.treated, r.treated_converted, r.holdout, r.holdout_converted) == (4, 1, 2, 1)
    u = r.uplift
    assert u is not None
    # 1/4 − 1/2 = −0.25; se = √(0.25·0.75/4 + 0.5·0.5/2) = √0.171875 = 0.414578…
    assert math.isclose(u[0], -0.25)
    assert math.isclose(u[1], -0.25 - 1.959964 * 0.4145781, abs_tol=1e-5)  # −1.062568
    assert math.isclose(u[2], -0.25 + 1.959964 * 0.4145781, abs_tol=1e-5)  # +0.562568


def test_report_window_excludes_its_end(world: World) -> None:
    world.put(PUSH.replace("conversion_days: 7", "conversion_days: 1"))
    with world.engine.begin() as conn:
        sop_id = service.get(conn, brand_id=world.brand_id, key="push").sop.id
        # a's order is at 2025-02-01 12:00: exactly one day after this enrollment
        conn.execute(SopEnrollment.__table__.insert().values(
            brand_id=world.brand_id, sop_id=sop_id, version=1, subject="x", occurrence="o",
            customer_id=world.people["a"], enrolled_at=local(2025, 1, 31, 12), holdout=False,
            status="done", step_index=1, due_at=local(2025, 1, 31, 12)))  # fmt: skip
        r = report.report(conn, brand_id=world.brand_id, key="push")
    assert (r.treated, r.treated_converted, r.uplift) == (1, 0, None)
