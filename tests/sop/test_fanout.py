"""The set-based fan-out (siyu.sop.fanout) stores what the per-journey path stores.

The same brand is built twice on the same engine; one copy ticks with the fan-out, the other
with `fanout=False`, and every journey, outbox row, report figure and audit row is compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from siyu import pii
from siyu.automation import outbox
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.sop import engine as sop_engine
from siyu.sop import fanout, guards
from tests.conftest import engine_settings
from tests.sop.conftest import World, built, local
from tests.sop.test_guards import opt_out

RICH = """
key: rich
name: 新品推送
trigger: {schedule: "0 10,23 * * *"}
guards: {holdout: 0}
steps:
- send:
    channel: wecom
    variants:
    - text: "{{ customer.name }}您好（{{ customer.id }}/{{ customer.city }}/{{ customer.birthday }}），{{ store.name }}{{ staff.name }}：{{ sop.name }} {{ occurrence }}"
      image: {pic_url: "https://img.example/p.png"}
      link: {title: "{{ store.city }}新品", url: "https://shop.example/n", desc: "{{ staff.code }}推荐"}
      miniprogram: {title: "{{ customer.name }}的专属券", appid: wx1, page: /p/c, pic_media_id: M1}
"""
SMS = """
key: sms-push
name: 短信
trigger: {schedule: "0 10,23 * * *"}
guards: {holdout: 0.5}
steps: [{send: {channel: sms, variants: [{text: "{{ customer.name }}，{{ store.name }}本周上新"}]}}]
"""
SEGMENT = """
key: friends
name: 好友服务
trigger: {schedule: "0 10,23 * * *"}
audience: {rule: {field: staff, op: exists}}
guards: {holdout: 0, kind: service}
steps: [{send: {channel: wecom, variants: [{text: "{{ staff.name }}提醒您：本周会员日"}]}}]
"""
NOT_ELIGIBLE = """
key: two-steps
name: 两步
trigger: {schedule: "0 10,23 * * *"}
guards: {holdout: 0}
steps: [{wait: {minutes: 1}}, {send: {channel: sms, variants: [{text: "hi"}]}}]
"""


@pytest.fixture
def twins(settings: Settings, tmp_path: Path) -> Iterator[tuple[World, World]]:
    """Two copies of the brand on the settings' engine."""
    kind = "postgresql" if str(settings.database_url or "").startswith("postgresql") else "sqlite"
    with (
        built(settings, tmp_path / "one") as one,
        engine_settings(kind, tmp_path / "two-data") as s2,
        built(s2, tmp_path / "two") as two,
    ):
        assert one.people == two.people  # the same ids: rows compare as they are
        yield one, two


def prepare(w: World) -> None:
    opt_out(w, "b", "wecom")
    opt_out(w, "d", None, "phone", "+8613800000004")
    p = w.people  # c already had today's marketing message
    c = [outbox.Enqueue("other:c", "sms", p["c"], {"kind": "marketing"}, local(2025, 8, 6, 9))]
    outbox.enqueue(w.engine, w.brand_id, c)
    for d in (RICH, SMS, SEGMENT, NOT_ELIGIBLE):
        w.put(d, activate_at=local(2025, 8, 6, 9, 30))


def tick(w: World, at: Any, *, fan: bool) -> sop_engine.TickReport:
    engine, brand_id = open_brand(w.settings)
    try:
        return sop_engine.tick(w.settings, engine, brand_id, at, fanout=fan)
    finally:
        engine.dispose()


def stored(w: World) -> dict[str, Any]:
    """Everything a user can see of the ticks: journeys, outbox rows, audit rows."""
    journeys = w.sql(
        "SELECT s.key, e.version, e.subject, e.customer_id, e.chat_id, e.occurrence, e.holdout, "
        "e.status, e.step_index, e.due_at, e.note, e.enrolled_at FROM sop_enrollment e "
        "JOIN sop s ON s.id = e.sop_id ORDER BY s.key, e.subject, e.occurrence"
    )
    rows = [
        (
            x["dedup_key"],
            x["adapter"],
            x["customer_id"],
            clear(w, x["payload"]),
            x["status"],
            x["not_before"],
            x["attempts"],
        )  # fmt: skip
        for x in sorted(w.outbox(""), key=lambda x: x["dedup_key"])
    ]
    audit = w.sql(
        "SELECT actor, action, target, detail FROM audit_log WHERE actor LIKE 'sop:%' "
        "ORDER BY target, id"
    )
    return {"journeys": journeys, "outbox": rows,
            "audit": [(a, b, c, json.loads(d)) for a, b, c, d in audit]}  # fmt: skip


def clear(w: World, payload: dict[str, Any]) -> dict[str, Any]:
    """An SMS payload with its phone opened: each copy of the brand has its own PII key."""
    if "phone_sealed" not in payload:
        return payload
    ring = pii.keyring(w.engine)
    phone = ring.open_(payload["phone_sealed"])
    assert payload["phone"] == ring.lookup_hash("phone", phone)
    return {**payload, "phone": phone, "phone_sealed": "(sealed)"}


def audited(s: dict[str, Any]) -> dict[str, int]:
    """Messages audited per SOP step."""
    out: dict[str, int] = {}
    for _, _, target, detail in s["audit"]:
        out[target] = out.get(target, 0) + detail["messages"]
    return out


def figures(r: sop_engine.TickReport) -> tuple[Any, ...]:
    return (dict(r.fired), r.holdout, dict(r.steps), r.enqueued, r.tasks, dict(r.notes), r.errors)


@pytest.mark.parametrize("part", [100_000, 2])
def test_fanout_stores_what_the_per_journey_path_stores(
    twins: tuple[World, World], part: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "PART", part)  # 2: three parts (two lanes on PostgreSQL)
    monkeypatch.setattr(fanout, "PARALLEL", 2)
    fast, slow = twins
    for w in twins:
        prepare(w)
    for at in (local(2025, 8, 6, 10, 1), local(2025, 8, 6, 23, 1), local(2025, 8, 6, 23, 2)):
        a, b = tick(fast, at, fan=True), tick(slow, at, fan=False)
        assert figures(a) == figures(b)
    one, two = stored(fast), stored(slow)
    assert one["journeys"] == two["journeys"] and one["outbox"] == two["outbox"]
    if part > 5:  # one part: one audit row per fire and step, as the per-journey batch
        assert one["audit"] == two["audit"]
    assert audited(one) == audited(two)  # several parts: one audit row each, same totals
    s = one
    # the comparison covered every rule: each guard dropped someone, someone was held out,
    # someone was reached on each channel, and the quiet hours held the 23:00 fire
    notes = {j[10] for j in s["journeys"] if j[10]}
    assert notes == {"opted out of wecom", "opted out of sms", "unreachable: no active WeCom friend",
                     "unreachable: no phone", "capped: frequency limit"}  # fmt: skip
    assert any(j[6] for j in s["journeys"])  # holdout
    sent = {(r[1], r[0].split(":")[1]) for r in s["outbox"] if r[0].startswith("sop:")}
    assert sent >= {("wecom", "rich"), ("sms", "sms-push"), ("wecom", "friends")}
    assert {r[5] for r in s["outbox"] if r[0].endswith("T15:00Z")} == {local(2025, 8, 7, 8)}
    a_rich = next(
        r for r in s["outbox"] if r[0] == f"sop:rich:1:0:{fast.people['a']}:at:2025-08-06T02:00Z"
    )
    assert a_rich[3]["text"] == (
        f"张三您好（{fast.people['a']}/上海/1990-03-15），静安店王导购：新品推送 at:2025-08-06T02:00Z"
    )
    assert [x["msgtype"] for x in a_rich[3]["attachments"]] == ["image", "link", "miniprogram"]
    assert a_rich[3]["attachments"][2]["miniprogram"]["title"] == "张三的专属券"


def test_a_fanout_that_dies_part_way_finishes_on_the_next_tick(
    twins: tuple[World, World], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = twins
    for w in twins:
        prepare(w)
    at = local(2025, 8, 6, 10, 1)
    monkeypatch.setattr(fanout, "PART", 2)  # several parts for five customers
    monkeypatch.setattr(fanout, "PARALLEL", 1)  # one after the other: the second one dies
    real, calls = fanout._Fire.part, []

    def dies_on_the_second_part(self: Any, lo: int, hi: int, *rest: Any) -> Any:
        calls.append(lo)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(self, lo, hi, *rest)

    monkeypatch.setattr(fanout._Fire, "part", dies_on_the_second_part)
    state = "SELECT key, last_fire_at FROM sop WHERE key <> 'two-steps' ORDER BY key"
    before = fast.sql(state)
    with pytest.raises(RuntimeError):
        tick(fast, at, fan=True)
    assert fast.sql(state) == before  # the fire is not recorded: the next tick redoes it
    rich = (
        "SELECT count(*) FROM sop_enrollment e JOIN sop s ON s.id = e.sop_id WHERE s.key = 'rich'"
    )
    assert fast.sql(rich)[0][0] in (1, 2)  # the first part (ids 1–2) stayed, whole
    monkeypatch.setattr(fanout._Fire, "part", real)
    tick(fast, at, fan=True)
    tick(slow, at, fan=False)
    one, two = stored(fast), stored(slow)
    assert one["journeys"] == two["journeys"] and one["outbox"] == two["outbox"]
    assert audited(one) == audited(two)  # every message audited (parts one by one)


def test_holdout_in_sql_matches_the_guard(world: World) -> None:
    with world.engine.connect() as conn:
        for share in (0.05, 0.3, 0.5, 0.75):
            cond, params = fanout.holdout_sql(conn, "push-9", share, "i")
            series = (
                "SELECT generate_series(1, 3000) AS i"
                if conn.dialect.name == "postgresql"
                else "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                "WHERE i < 3000) SELECT i FROM s"
            )
            held = {
                int(r[0])
                for r in conn.execute(text(f"SELECT i FROM ({series}) s WHERE {cond}"), params)
            }
            assert held == {i for i in range(1, 3001) if guards.in_holdout("push-9", i, share)}
            assert 0.5 * share * 3000 < len(held) < 1.5 * share * 3000


def test_only_one_step_scheduled_customer_sends_are_eligible(world: World) -> None:
    import yaml

    from siyu.sop.definition import validate
    from siyu.sop.triggers import Fired

    one = Fired(fires=[local(2025, 8, 6, 10)])
    two = Fired(fires=[local(2025, 8, 6, 10), local(2025, 8, 6, 11)])
    assert fanout.eligible(validate(yaml.safe_load(RICH)), one)
    assert not fanout.eligible(validate(yaml.safe_load(RICH)), two)  # a catch-up of two instants
    assert not fanout.eligible(validate(yaml.safe_load(NOT_ELIGIBLE)), one)
    jinja = SMS.replace("{{ customer.name }}", "{{ customer.name | upper }}")
    assert not fanout.eligible(validate(yaml.safe_load(jinja)), one)


ESCAPES = r"""
key: quotes
name: 'say "hi" \ back'
trigger: {schedule: "0 10 * * *"}
guards: {holdout: 0, kind: service}
steps:
- send:
    channel: wecom
    variants:
    - text: "{{ customer.name }} \"quoted\" back\\slash\ttab\nline {{ sop.name }} </script> ☃"
      link: {title: "{{ customer.name }}", url: "https://x.example/?a=1&b=\"2\"", desc: "\u0001"}
"""


def test_payload_json_is_escaped_as_the_per_journey_path_does(
    twins: tuple[World, World],
) -> None:
    """The fan-out encodes the constant JSON in Python and quotes names and guide fields in
    SQL: quotes, backslashes, control characters and a name full of them come out as the
    per-journey path stores them."""
    fast, slow = twins
    for w in twins:
        ring = pii.keyring(w.engine)
        with w.engine.begin() as conn:
            conn.execute(
                text("UPDATE customer SET name_sealed = :n WHERE id = :c"),
                {"n": ring.seal('张"三\\\n\t'), "c": w.people["a"]},
            )
        w.put(ESCAPES, activate_at=local(2025, 8, 6, 9, 30))
    at = local(2025, 8, 6, 10, 1)
    assert figures(tick(fast, at, fan=True)) == figures(tick(slow, at, fan=False))
    one, two = stored(fast), stored(slow)
    assert one["outbox"] == two["outbox"] and one["journeys"] == two["journeys"]
    key = f"sop:quotes:1:0:{fast.people['a']}:at:2025-08-06T02:00Z"
    a = next(r[3] for r in one["outbox"] if r[0] == key)
    assert a["text"] == '张"三\\\n\t "quoted" back\\slash\ttab\nline say "hi" \\ back </script> ☃'
    assert a["attachments"][0]["link"]["desc"] == "\x01"
