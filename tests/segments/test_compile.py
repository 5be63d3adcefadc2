"""Every field and operator of a segment rule, compiled and run on the hand-built brand
(tests/segments/brand.py) as of 2025-08-01, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.segments.compiler import compile_rule
from siyu.segments.rules import parse


def leaf(field: str, op: str, value: Any = None, **options: Any) -> dict[str, Any]:
    node = {"field": field, "op": op, **options}
    if value is not None:
        node["value"] = value
    return node


CASES = [
    # Profile: missing values are "not equal" (two-valued logic), and is_not_set finds them.
    (leaf("city", "eq", "上海"), "ad"),
    (leaf("city", "ne", "上海"), "bce"),
    (leaf("city", "in", ["上海", "北京"]), "abd"),
    (leaf("city", "not_in", ["上海", "北京"]), "ce"),
    (leaf("city", "is_set"), "abd"),
    (leaf("city", "is_not_set"), "ce"),
    (leaf("gender", "=", "女"), "b"),
    (leaf("birthday_month", "eq", 3), "a"),
    (leaf("birthday_month", "between", [3, 7]), "ab"),
    (leaf("birthday_month", "in", [7, 12]), "b"),
    (leaf("birthday_month", "gt", 3), "b"),
    (leaf("birthday_month", "lte", 3), "a"),
    # Identities
    (leaf("identity", "any_of", ["phone"]), "ab"),
    (leaf("identity", "all_of", ["phone", "member_no"]), "a"),
    (leaf("identity", "none_of", ["phone"]), "cde"),
    (leaf("identity", "exists"), "abcde"),
    # Tags, optionally within a tag group
    (leaf("tag", "any_of", ["咖啡爱好者"]), "ae"),
    (leaf("tag", "all_of", ["咖啡爱好者", "茶爱好者"]), "e"),
    (leaf("tag", "none_of", ["咖啡爱好者"]), "bcd"),
    (leaf("tag", "any_of", ["茶爱好者"], group="兴趣"), "b"),
    (leaf("tag", "exists"), "abe"),
    # Orders: paid orders only (e's cancelled tea order does not count), windows, products,
    # stores, regions, platforms; a customer without orders counts 0.
    (leaf("orders.count", "gte", 1), "abde"),
    (leaf("orders.count", "eq", 0), "c"),
    (leaf("orders.count", "gte", 2), "a"),
    (leaf("orders.count", "gte", 1, within_days=90), "abe"),
    (leaf("orders.count", "gte", 1, sku=["C1"]), "ade"),
    (leaf("orders.count", "gte", 1, category=["tea"]), "be"),
    (leaf("orders.count", "gte", 1, sku=["C1"], within_days=45), "ae"),
    (leaf("orders.count", "gte", 1, store=["S001"]), "ad"),
    (leaf("orders.count", "gte", 1, region=["华东"], within_days=90), "a"),
    (leaf("orders.count", "gte", 1, platform=["tmall", "mp"]), "be"),
    (leaf("orders.amount", "gte", 5000), "ae"),
    (leaf("orders.amount", "lt", 3000), "cd"),
    (leaf("orders.amount", "gte", 3000, category=["tea"]), "be"),
    (leaf("orders.days_since_last", "lte", 30), "be"),
    (leaf("orders.days_since_last", "gt", 30), "ad"),
    (leaf("orders.days_since_last", "is_not_set"), "c"),
    # NOT over a missing value: c never ordered, so c has NOT bought coffee.
    ({"not": leaf("orders.count", "gte", 1, sku=["C1"])}, "bc"),
    ({"not": leaf("orders.days_since_last", "lte", 30)}, "acd"),
    # Interactions
    (leaf("interactions.count", "gte", 1, kind=["article_view"], within_days=7), "c"),
    (leaf("interactions.count", "gte", 1, within_days=3), ""),
    (leaf("interactions.days_since_last", "lte", 5), "c"),
    # Connections: group, owning staff, store and region — active ones only (e's ended)
    (leaf("days_since_first_connection", "lte", 7), "b"),
    (leaf("group", "any_of", ["GR1"]), "a"),
    (leaf("group", "exists"), "a"),
    (leaf("staff", "any_of", ["G1"]), "a"),
    (leaf("staff", "any_of", ["G2"]), "bc"),
    (leaf("staff", "exists"), "abc"),
    (leaf("store", "any_of", ["S001"]), "a"),
    (leaf("region", "any_of", ["华北"]), "bc"),
    # SPEC §6 attributes from the metrics definition files
    (leaf("lifecycle", "eq", "churned"), "cde"),  # c: no orders, connected 92 days ago
    (leaf("lifecycle", "in", ["introduction", "growth"]), "b"),
    (leaf("lifecycle", "eq", "dormant"), "a"),
    (leaf("value_layer", "eq", "paying"), "abe"),
    (leaf("value_layer", "eq", "active"), "c"),
    (leaf("value_layer", "eq", "regular"), "d"),
    (leaf("loyal", "is", False), "abcde"),
    (leaf("super_user", "is", True), ""),
    (leaf("rfm.class", "is_set"), "abde"),
    (leaf("rfm.class", "eq", "important_value"), "a"),
    # Four buyers: score = 1 + floor(5 (rank − 1) / 4); b is the most recent (r 10 → 4),
    # a the most frequent (f 2 → 4), d the oldest and smallest.
    (leaf("rfm.r_score", "gte", 4), "b"),
    (leaf("rfm.r_score", "eq", 3), "e"),
    (leaf("rfm.f_score", "eq", 4), "a"),
    (leaf("rfm.m_score", "lte", 1), "d"),
    (leaf("quadrant", "eq", "low_freq_low_aov"), "abde"),
    # Membership
    (leaf("member", "is", True), "ad"),
    (leaf("member", "is", False), "bce"),
    (leaf("member.level", "eq", "gold"), "a"),
    (leaf("member.points", "gte", 50), "a"),
    # Consent: an opt-out without a channel covers every channel
    (leaf("opted_out", "is", True), "bc"),
    (leaf("opted_out", "is", True, channel="sms"), "bc"),
    (leaf("opted_out", "is", True, channel="wecom"), "b"),
    (leaf("opted_out", "is", False), "ade"),
]


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_each_field_and_operator(who, rule, expected) -> None:  # type: ignore[no-untyped-def]
    assert who(rule) == expected


def test_and_or_not_nest_to_any_depth(who) -> None:  # type: ignore[no-untyped-def]
    # The three-level rule: (city in {上海, 北京} AND orders in 90 d ≥ 2) OR
    # (tag 咖啡爱好者 AND NOT lifecycle = churned).
    rule = {
        "any": [
            {
                "all": [
                    leaf("city", "in", ["上海", "北京"]),
                    leaf("orders.count", "gte", 2, within_days=90),
                ]
            },  # fmt: skip
            {
                "all": [
                    leaf("tag", "any_of", ["咖啡爱好者"]),
                    {"not": leaf("lifecycle", "eq", "churned")},
                ]
            },  # fmt: skip
        ]
    }
    assert who(rule) == "a"
    assert who({"not": rule}) == "bcde"
    assert who({"not": {"not": rule}}) == "a"
    assert who({"all": [leaf("tag", "exists"), {"any": [leaf("gender", "eq", "女"),
                {"not": leaf("orders.count", "gte", 1, within_days=30)}]}]}) == "ab"  # fmt: skip


def test_values_are_bound_never_spliced(who) -> None:  # type: ignore[no-untyped-def]
    hostile = "上海' OR 1=1 --"
    assert who(leaf("city", "eq", hostile)) == ""
    compiled = compile_rule(parse(leaf("city", "in", [hostile, "北京"])))
    assert hostile not in compiled.sql and "北京" not in compiled.sql
    assert list(compiled.params.values()) == [[hostile, "北京"]]


def test_a_rule_reads_only_the_definitions_it_needs() -> None:
    sql = compile_rule(parse(leaf("city", "eq", "上海"))).sql
    assert "lifecycle_stage" not in sql and "rfm" not in sql
    sql = compile_rule(parse(leaf("lifecycle", "eq", "churned"))).sql
    assert "lifecycle_stage AS" in sql and "rfm AS" not in sql
