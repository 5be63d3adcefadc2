"""Tags: the service the SOP engine calls, history and events, the `siyu tags` commands, rule
tags' refresh, delete protection, merge, and untagging reaching the warehouse incrementally.

The brand is the segments test brand (tests/segments/brand.py): people a–e, with tags
兴趣/咖啡爱好者 on a and e, 兴趣/茶爱好者 on b, 口味/茶爱好者 on e.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.segments import evaluate
from siyu.segments import service as segment_service
from siyu.segments.rules import parse
from siyu.tags import service
from siyu.tags.service import TagError
from siyu.warehouse.service import open_synced
from tests.factories import rows
from tests.segments.conftest import build, customer_of

TZ = ZoneInfo("Asia/Shanghai")
AS_OF = datetime(2025, 8, 1, tzinfo=TZ)
runner = CliRunner()


@pytest.fixture
def brand(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    build(settings, tmp_path / "in")
    engine, brand_id = open_brand(settings)
    try:
        yield engine, brand_id
    finally:
        engine.dispose()


def siyu(settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--data-dir", str(settings.data_dir), *args], env=_env(settings))


def _env(settings: Settings) -> dict[str, str]:
    env = {"SIYU_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    if settings.database_url:
        env["SIYU_DATABASE_URL"] = settings.database_url
    return env


def holders(engine: Engine, tag_id: int) -> str:
    """People carrying the tag, as a sorted string: "ae"."""
    with engine.connect() as conn:
        got = conn.execute(
            text(
                "SELECT i.value FROM customer_tag ct JOIN identifier i ON "
                "i.customer_id = ct.customer_id AND i.id_type = 'external_userid' "
                "WHERE ct.tag_id = :t"
            ),
            {"t": tag_id},
        ).scalars()
        return "".join(sorted(got))


def history(engine: Engine, tag_id: int) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    'SELECT i.value, h.action, h."by", h.source FROM customer_tag_history h '
                    "JOIN identifier i ON i.customer_id = h.customer_id "
                    "AND i.id_type = 'external_userid' WHERE h.tag_id = :t "
                    "ORDER BY h.change_no, i.value"
                ),
                {"t": tag_id},
            )
        ]


def events(engine: Engine, kind: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT idempotency_key, customer_id FROM event WHERE type = :k "
                    "ORDER BY occurred_at, customer_id"
                ),
                {"k": kind},
            )
        ]


def tag_id_of(engine: Engine, brand_id: int, ref: str) -> int:
    with engine.connect() as conn:
        return service.find_tag(conn, brand_id=brand_id, ref=ref).id


def test_tag_and_untag_are_set_based_idempotent_with_history_and_events(brand) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    a, c, d = (customer_of(engine, p) for p in "acd")
    with engine.begin() as conn:
        vip = service.create_tag(conn, brand_id=b, group="等级", name="VIP")
        # a twice in one call, and a customer id of another brand's range: counted once / ignored
        n = service.tag_customers(conn, brand_id=b, tag_id=vip, customer_ids=[a, a, c, 999_999],
                                  by="sop:welcome", source="sop")  # fmt: skip
    assert n == 2
    assert holders(engine, vip) == "ac"
    with engine.begin() as conn:
        again = service.tag_customers(conn, brand_id=b, tag_id=vip, customer_ids=[a, c, d],
                                      by="王导购", source="manual")  # fmt: skip
    assert again == 1  # only d was new
    with engine.begin() as conn:
        gone = service.untag_customers(conn, brand_id=b, tag_id=vip, customer_ids=[a, d],
                                       by="王导购", source="manual")  # fmt: skip
        gone_again = service.untag_customers(conn, brand_id=b, tag_id=vip, customer_ids=[a],
                                             by="王导购", source="manual")  # fmt: skip
    assert (gone, gone_again) == (2, 0)
    assert holders(engine, vip) == "c"
    assert history(engine, vip) == [
        ("a", "added", "sop:welcome", "sop"),
        ("c", "added", "sop:welcome", "sop"),
        ("d", "added", "王导购", "manual"),
        ("a", "removed", "王导购", "manual"),
        ("d", "removed", "王导购", "manual"),
    ]
    added = events(engine, "tag.added")
    assert [k for k, _ in added] == [f"tag.added:{vip}:{a}:1", f"tag.added:{vip}:{c}:1",
                                     f"tag.added:{vip}:{d}:2"]  # fmt: skip
    assert [cid for _, cid in events(engine, "tag.removed")] == [a, d]
    with engine.connect() as conn:
        raw = conn.execute(text("SELECT payload FROM event WHERE type = 'tag.added'")).first()
    assert raw is not None
    first = raw[0] if isinstance(raw[0], dict) else json.loads(raw[0])
    assert first == {"tag_id": vip, "tag": "VIP", "group": "等级", "by": "sop:welcome",
                     "source": "sop", "change": 1}  # fmt: skip


def test_service_refuses_bad_requests_naming_the_field(brand) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    a = customer_of(engine, "a")
    with engine.begin() as conn:
        vip = service.create_tag(conn, brand_id=b, group="等级", name="VIP")
        with pytest.raises(TagError, match="^source: 'robot' is not one of"):
            service.tag_customers(conn, brand_id=b, tag_id=vip, customer_ids=[a], by="x",
                                  source="robot")  # fmt: skip
        with pytest.raises(TagError, match="^tag_id: no tag 424242"):
            service.tag_customers(conn, brand_id=b, tag_id=424242, customer_ids=[a], by="x",
                                  source="manual")  # fmt: skip
        with pytest.raises(TagError, match="^NAME: group '等级' already has a tag 'VIP'"):
            service.create_tag(conn, brand_id=b, group="等级", name=" VIP ")
        with pytest.raises(TagError, match="^NAME: a name cannot be empty"):
            service.create_tag(conn, brand_id=b, group="等级", name="  ")
        with pytest.raises(TagError, match=r"^rule: invalid rule — rule\.any\[0\]\.field"):
            service.create_tag(conn, brand_id=b, group="自动", name="x",
                               rule={"any": [{"field": "cty", "op": "eq", "value": "上海"}]})  # fmt: skip
        rule_tag = service.create_tag(conn, brand_id=b, group="自动", name="上海客",
                                      rule={"field": "city", "op": "eq", "value": "上海"})  # fmt: skip
        with pytest.raises(TagError, match="is a rule tag; its customers come from its rule"):
            service.tag_customers(conn, brand_id=b, tag_id=rule_tag, customer_ids=[a], by="x",
                                  source="manual")  # fmt: skip
    assert holders(engine, vip) == ""


def test_tags_cli_crud_add_remove_and_customer_show(
    settings: Settings, brand, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    r = siyu(settings, "tags", "create", "等级", "VIP")
    assert r.exit_code == 0, r.output
    r = siyu(settings, "tags", "create", "等级", "VIP")
    assert r.exit_code == 2 and "NAME: group '等级' already has a tag 'VIP'" in r.output
    r = siyu(settings, "tags", "groups")
    assert r.exit_code == 0 and "等级" in r.output and "兴趣" in r.output
    # 茶爱好者 is in two groups: by name alone it is ambiguous
    r = siyu(settings, "tags", "add", "茶爱好者", "--customer", "external_userid:a")
    assert r.exit_code == 2 and "兴趣/茶爱好者, 口味/茶爱好者" in r.output

    a = customer_of(engine, "a")
    r = siyu(settings, "tags", "add", "VIP", "--customer", str(a), "--customer",
             "external_userid:c", "--by", "王导购")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "2 customers tagged" in r.output
    vip = tag_id_of(engine, b, "等级/VIP")
    assert holders(engine, vip) == "ac"

    # A CSV with bad lines: each is reported by line, and nothing is changed.
    bad = tmp_path / "bad.csv"
    bad.write_text("customer\nexternal_userid:b\nexternal_userid:nobody\nphone:12\n", "utf-8")
    r = siyu(settings, "tags", "add", "VIP", "--csv", str(bad))
    assert r.exit_code == 2
    assert "line 3: 'external_userid:nobody' — no such customer" in r.output
    assert "line 4: 'phone:12'" in r.output
    assert "2 of 3 customers not found" in r.output
    assert holders(engine, vip) == "ac"
    good = tmp_path / "good.csv"
    good.write_text("customer\nexternal_userid:b\nexternal_userid:c\n", "utf-8")
    r = siyu(settings, "tags", "add", "VIP", "--csv", str(good))
    assert r.exit_code == 0 and "1 customers tagged (1 of 2 already were)" in r.output
    assert holders(engine, vip) == "abc"

    r = siyu(settings, "tags", "list", "--group", "等级")
    assert r.exit_code == 0
    assert "VIP" in r.output and " 3 " in r.output and "咖啡爱好者" not in r.output
    r = siyu(settings, "tags", "list", "--group", "nope")
    assert r.exit_code == 2 and "--group: no tag group 'nope'" in r.output

    r = siyu(settings, "tags", "remove", "VIP", "--customer", "external_userid:c")
    assert r.exit_code == 0 and "1 customers untagged" in r.output
    r = siyu(settings, "tags", "rename", "VIP", "贵宾")
    assert r.exit_code == 0, r.output
    assert holders(engine, vip) == "ab"

    r = siyu(settings, "customer", "show", "external_userid:a")
    assert r.exit_code == 0, r.output
    assert "等级/贵宾" in r.output and "王导购" in r.output and "manual" in r.output
    assert "兴趣/咖啡爱好者" in r.output
    r = siyu(settings, "tags", "history", "external_userid:c")
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "等级/VIP" in ln]
    assert len(lines) == 2 and "removed" in lines[0] and "added" in lines[1]  # newest first
    assert "王导购" in lines[1]
    r = siyu(settings, "tags", "history", "external_userid:nobody")
    assert r.exit_code == 2 and "KEY: no customer has external_userid:nobody" in r.output


def test_rule_tag_refresh_adds_and_removes_with_history_and_events(
    settings: Settings, brand, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    rule = tmp_path / "sh.json"
    rule.write_text(json.dumps({"field": "city", "op": "eq", "value": "上海"}), "utf-8")
    r = siyu(settings, "tags", "create", "自动", "上海客", "--rule", str(rule))
    assert r.exit_code == 0, r.output
    tag = tag_id_of(engine, b, "上海客")
    r = siyu(settings, "tags", "refresh", "--as-of", "2025-08-01")
    assert r.exit_code == 0, r.output
    assert holders(engine, tag) == "ad"  # a and d live in 上海
    r = siyu(settings, "tags", "refresh")
    assert r.exit_code == 0 and holders(engine, tag) == "ad"  # nothing changes twice
    assert len(events(engine, "tag.added")) == 2

    rule.write_text(json.dumps({"any": [{"field": "city", "op": "eq", "value": "北京"},
                                        {"field": "member.level", "op": "eq", "value": "gold"}]}),
                    "utf-8")  # fmt: skip
    r = siyu(settings, "tags", "rule", "上海客", "--rule", str(rule))
    assert r.exit_code == 0, r.output
    r = siyu(settings, "tags", "refresh", "上海客")
    assert r.exit_code == 0, r.output
    assert holders(engine, tag) == "ab"  # b in 北京, a gold; d no longer matches
    assert history(engine, tag) == [
        ("a", "added", "rule", "rule"),
        ("d", "added", "rule", "rule"),
        ("b", "added", "rule", "rule"),
        ("d", "removed", "rule", "rule"),
    ]
    assert [cid for _, cid in events(engine, "tag.removed")] == [customer_of(engine, "d")]
    r = siyu(settings, "tags", "refresh", "兴趣/咖啡爱好者")
    assert r.exit_code == 2 and "only rule tags are refreshed" in r.output
    r = siyu(settings, "tags", "add", "上海客", "--customer", "external_userid:c")
    assert r.exit_code == 2 and "is a rule tag" in r.output


def test_delete_is_refused_while_a_rule_names_the_tag_and_untags_with_history(
    settings: Settings, brand
) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    coffee = tag_id_of(engine, b, "咖啡爱好者")
    with engine.begin() as conn:
        segment_service.create(conn, brand_id=b, name="咖啡控",
                               rule={"field": "tag", "op": "any_of", "value": ["咖啡爱好者"]})  # fmt: skip
        service.create_tag(conn, brand_id=b, group="自动", name="不喝咖啡",
                           rule={"not": {"field": "tag", "op": "any_of", "value": ["咖啡爱好者"],
                                         "group": "兴趣"}})  # fmt: skip
    r = siyu(settings, "tags", "delete", "咖啡爱好者")
    assert r.exit_code == 2
    assert "used by segment '咖啡控', rule tag '自动/不喝咖啡'" in r.output
    r = siyu(settings, "tags", "rename", "咖啡爱好者", "咖啡")
    assert r.exit_code == 2 and "cannot rename" in r.output
    assert holders(engine, coffee) == "ae"
    # A rule naming the tag in another group does not protect it.
    tea = tag_id_of(engine, b, "口味/茶爱好者")
    with engine.begin() as conn:
        segment_service.create(conn, brand_id=b, name="兴趣茶",
                               rule={"field": "tag", "op": "any_of", "value": ["茶爱好者"],
                                     "group": "兴趣"})  # fmt: skip
    r = siyu(settings, "tags", "delete", "口味/茶爱好者", "--by", "admin")
    assert r.exit_code == 0 and "1 customers untagged" in r.output
    assert history(engine, tea) == [("e", "removed", "admin", "manual")]

    r = siyu(settings, "tags", "delete", "咖啡爱好者", "--force", "--by", "admin")
    assert r.exit_code == 0, r.output
    assert "2 customers untagged" in r.output
    assert history(engine, coffee) == [("a", "removed", "admin", "manual"),
                                       ("e", "removed", "admin", "manual")]  # fmt: skip
    assert rows(settings, "SELECT count(*) FROM tag WHERE id = :t", t=coffee) == [(0,)]


def test_merge_moves_customers_and_deletes_the_source(settings: Settings, brand) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    interest_tea = tag_id_of(engine, b, "兴趣/茶爱好者")  # b
    taste_tea = tag_id_of(engine, b, "口味/茶爱好者")  # e
    coffee = tag_id_of(engine, b, "咖啡爱好者")  # a, e
    r = siyu(settings, "tags", "merge", "兴趣/茶爱好者", "咖啡爱好者", "--by", "admin")
    assert r.exit_code == 0, r.output
    assert holders(engine, coffee) == "abe"
    assert history(engine, coffee)[-1] == ("b", "added", "admin", "manual")
    assert history(engine, interest_tea) == [("b", "removed", "admin", "manual")]
    r = siyu(settings, "tags", "merge", "口味/茶爱好者", "咖啡爱好者")
    assert r.exit_code == 0 and "0 newly got" in r.output  # e already had coffee
    assert holders(engine, coffee) == "abe" and holders(engine, taste_tea) == ""
    r = siyu(settings, "tags", "merge", "咖啡爱好者", "咖啡爱好者")
    assert r.exit_code == 2 and "DST: a tag cannot be merged into itself" in r.output


def test_untagging_leaves_the_warehouse_on_the_next_incremental_sync(
    settings: Settings, brand
) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    coffee_rule = parse({"field": "tag", "op": "any_of", "value": ["咖啡爱好者"]})

    def coffee_drinkers() -> tuple[bool, str]:
        wh = open_synced(settings)
        try:
            ev = evaluate.prepare(wh.con, coffee_rule, scope=Scope(b), as_of=datetime.now(UTC),
                                  constants=Constants())  # fmt: skip
            people = dict(wh.con.execute(
                "SELECT customer_id, value FROM identifiers WHERE id_type = 'external_userid'"
            ).fetchall())  # fmt: skip
            got = "".join(sorted(people[int(i)] for i in evaluate.member_ids(wh.con, ev)))
            return wh.synced.full, got
        finally:
            wh.con.close()

    assert coffee_drinkers() == (True, "ae")
    coffee = tag_id_of(engine, b, "咖啡爱好者")
    a = customer_of(engine, "a")
    with engine.begin() as conn:
        service.untag_customers(conn, brand_id=b, tag_id=coffee, customer_ids=[a], by="x",
                                source="manual")  # fmt: skip
    assert coffee_drinkers() == (False, "e")
    # Tagged again: back on the next incremental sync.
    with engine.begin() as conn:
        service.tag_customers(conn, brand_id=b, tag_id=coffee, customer_ids=[a], by="x",
                              source="manual")  # fmt: skip
    assert coffee_drinkers() == (False, "ae")


def test_add_by_segment_uses_its_members_at_the_last_refresh(settings: Settings, brand) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    with engine.begin() as conn:
        service.create_tag(conn, brand_id=b, group="等级", name="VIP")
        for name in ("上海客", "未刷新"):
            segment_service.create(conn, brand_id=b, name=name,
                                   rule={"field": "city", "op": "eq", "value": "上海"})  # fmt: skip
    r = siyu(settings, "tags", "add", "VIP", "--segment", "未刷新")
    assert r.exit_code == 2 and "--segment: '未刷新' was never refreshed" in r.output
    r = siyu(settings, "tags", "add", "VIP", "--segment", "没有")
    assert r.exit_code == 2 and "--segment: no segment named '没有'" in r.output
    r = siyu(settings, "tags", "add", "VIP", "--segment", "上海客", "--customer", "1")
    assert r.exit_code == 2 and "give exactly one of" in r.output
    wh = open_synced(settings)
    try:
        segment_service.refresh(engine, wh.con, scope=Scope(b), name="上海客",
                                constants=Constants(), as_of=AS_OF)  # fmt: skip
    finally:
        wh.con.close()
    r = siyu(settings, "tags", "add", "VIP", "--segment", "上海客")
    assert r.exit_code == 0, r.output
    assert holders(engine, tag_id_of(engine, b, "VIP")) == "ad"


def test_a_wecom_corp_tag_is_changed_in_wecom_not_here(settings: Settings, brand) -> None:  # type: ignore[no-untyped-def]
    engine, b = brand
    coffee = tag_id_of(engine, b, "咖啡爱好者")
    with engine.begin() as conn:
        conn.execute(text("UPDATE tag SET wecom_tag_id = 'etCOFFEE' WHERE id = :t"), {"t": coffee})
    for args in (("delete", "咖啡爱好者", "--force"), ("rename", "咖啡爱好者", "咖啡"),
                 ("merge", "咖啡爱好者", "兴趣/茶爱好者")):  # fmt: skip
        r = siyu(settings, "tags", *args)
        assert r.exit_code == 2, args
        assert "is WeCom corp tag etCOFFEE" in r.output
    assert holders(engine, coffee) == "ae"
    r = siyu(settings, "tags", "add", "咖啡爱好者", "--customer", "external_userid:b")
    assert r.exit_code == 0 and holders(engine, coffee) == "abe"  # customers still change here
