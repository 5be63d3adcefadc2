"""Malformed rules are refused before any SQL exists, with a message naming the node."""

from __future__ import annotations

from typing import Any

import pytest

from siyu.segments.rules import MAX_DEPTH, RuleError, parse

CITY = {"field": "city", "op": "eq", "value": "上海"}

BAD = [
    (
        {"all": [CITY, {"not": {"field": "cty", "op": "eq", "value": "上海"}}]},
        "rule.all[1].not.field: unknown field 'cty' (did you mean 'city'?)",
    ),
    ({"all": []}, "rule.all: expected a non-empty list of nodes, got []"),
    ({"any": CITY}, "rule.any: expected a non-empty list of nodes"),
    ([CITY], 'rule: expected an object with "all", "any", "not" or "field", got [{'),
    (
        {"all": [CITY], "any": [CITY]},
        'rule: a node has exactly one of "all", "any", "not" or "field"; found "all" and "any"',
    ),  # fmt: skip
    ({"al": [CITY]}, 'rule: a node needs one of "all", "any", "not" or "field" (keys found: "al")'),
    ({"not": CITY, "note": "x"}, 'rule.note: unexpected key beside "not"'),
    ({"any": [CITY, 3]}, "rule.any[1]: expected an object"),
    ({"field": "city", "value": "上海"}, 'rule: missing "op" (one of: eq, ne, in, not_in'),
    (
        {"field": "city", "op": "contains", "value": "上"},
        "rule.op: \"contains\" is not an operator of field 'city' (use one of: eq, ne, in",
    ),  # fmt: skip
    ({"field": "city", "op": "eq"}, "rule: missing \"value\" for operator 'eq'"),
    (
        {"field": "city", "op": "in", "value": "上海"},
        "rule.value: expected a non-empty list for 'in', got \"上海\"",
    ),  # fmt: skip
    (
        {"field": "city", "op": "is_set", "value": "x"},
        "rule.value: operator 'is_set' takes no value",
    ),
    (
        {"field": "lifecycle", "op": "eq", "value": "chruned"},
        "rule.value: 'chruned' is not a value of 'lifecycle' (did you mean 'churned'?",
    ),  # fmt: skip
    (
        {"field": "orders.count", "op": ">=", "value": "2"},
        "rule.value: expected a whole number for 'orders.count', got \"2\"",
    ),  # fmt: skip
    (
        {"field": "orders.count", "op": "gte", "value": True},
        "rule.value: expected a whole number for 'orders.count', got true",
    ),  # fmt: skip
    (
        {"field": "birthday_month", "op": "eq", "value": 13},
        "rule.value: 13 is outside 1–12 for 'birthday_month'",
    ),  # fmt: skip
    (
        {"field": "birthday_month", "op": "between", "value": [7, 3]},
        "rule.value: the low end 7 is above the high end 3",
    ),  # fmt: skip
    (
        {"field": "birthday_month", "op": "between", "value": [3, "x"]},
        "rule.value[1]: expected a whole number",
    ),  # fmt: skip
    (
        {"field": "orders.count", "op": "gte", "value": 1, "within_days": 0},
        "rule.within_days: expected a whole number of days from 1 to 36500, got 0",
    ),  # fmt: skip
    (
        {"field": "orders.count", "op": "gte", "value": 1, "within_days": 10**12},
        "rule.within_days: expected a whole number of days from 1 to 36500, got 1000000000000",
    ),  # fmt: skip
    (
        {"field": "orders.count", "op": "gte", "value": 1, "skus": ["C1"]},
        "rule.skus: unknown key for field 'orders.count' (options: within_days, sku, category",
    ),  # fmt: skip
    (
        {"field": "city", "op": "eq", "value": "上海", "within_days": 3},
        "rule.within_days: unknown key for field 'city' (options: none)",
    ),  # fmt: skip
    (
        {"field": "tag", "op": "any_of", "value": ["a", ""]},
        "rule.value[1]: expected text for 'tag'",
    ),
    (
        {"field": "orders.count", "op": "gte", "value": 1, "sku": "C1"},
        'rule.sku: expected a non-empty list of text, got "C1"',
    ),  # fmt: skip
    (
        {"field": "loyal", "op": "is", "value": "yes"},
        'rule.value: expected true or false, got "yes"',
    ),
    (
        {"any": [CITY, {"all": [CITY, {"not": {"field": "tag", "op": "has", "value": ["x"]}}]}]},
        "rule.any[1].all[1].not.op: \"has\" is not an operator of field 'tag'",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("rule", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_malformed_rule_names_the_node(rule: Any, message: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse(rule)
    assert str(caught.value).startswith(message), str(caught.value)


def test_depth_is_bounded() -> None:
    rule: Any = CITY
    for _ in range(MAX_DEPTH + 1):
        rule = {"not": rule}
    with pytest.raises(RuleError, match="nested deeper than"):
        parse(rule)


def test_operator_aliases_and_a_valid_tree_parse() -> None:
    tree = parse({"all": [{"field": "orders.count", "op": ">=", "value": 2, "within_days": 90},
                          {"not": CITY}]})  # fmt: skip
    assert tree.children[0].op == "gte"  # type: ignore[union-attr]
