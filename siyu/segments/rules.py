"""Segment rules 人群规则: a JSON tree of AND / OR / NOT over leaf conditions (SPEC §6).

A node is an object with exactly one of these keys:

    {"all": [node, …]}      every child holds (AND)
    {"any": [node, …]}      at least one child holds (OR)
    {"not": node}           the child does not hold
    {"field": "…", "op": "…", "value": …, <options>}    a leaf condition

Parsing checks everything a rule can get wrong before any SQL exists, and every error names the
node by its path from the root, e.g. ``rule.all[1].not.field: unknown field 'cty' (did you mean
'city'?)``. The fields, their operators, value types and options are declared in FIELDS; the
compiler (siyu.segments.compiler) only ever sees a parsed, valid tree.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from siyu.metrics.report import LIFECYCLE_STAGES, QUADRANTS, RFM_CLASSES, VALUE_LAYERS

MAX_DEPTH = 32
# The longest trailing window a leaf can ask for (a century): longer ones hold no more facts,
# and far longer ones overflow the warehouse's date arithmetic.
MAX_DAYS = 36_500

ALIASES = {"=": "eq", "==": "eq", "!=": "ne", "<>": "ne", ">": "gt", ">=": "gte", "<": "lt",
           "<=": "lte"}  # fmt: skip

TEXT_OPS = ("eq", "ne", "in", "not_in", "is_set", "is_not_set")
NUMBER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_set",
              "is_not_set")  # fmt: skip
BOOL_OPS = ("is",)
SET_OPS = ("any_of", "all_of", "none_of", "exists")
NO_VALUE_OPS = ("is_set", "is_not_set", "exists")


class RuleError(ValueError):
    """A rule that cannot be evaluated; `path` names the failing node (``rule.all[1].op``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Option:
    """A leaf key besides field/op/value that narrows what the leaf looks at."""

    kind: str  # "days" (whole number 1…MAX_DAYS), "texts" (non-empty list of text), "text"
    help: str


WITHIN = Option("days", "only facts in the trailing N days before the as-of instant")
ORDER_OPTIONS = {
    "within_days": WITHIN,
    "sku": Option("texts", "orders holding one of these SKUs"),
    "category": Option("texts", "orders holding a product of one of these categories"),
    "store": Option("texts", "orders placed at one of these store codes"),
    "region": Option("texts", "orders placed at a store of one of these regions"),
    "platform": Option("texts", "orders from one of these platforms (pos, mp, tmall, …)"),
}
INTERACTION_OPTIONS = {
    "within_days": WITHIN,
    "kind": Option("texts", "interactions of one of these kinds"),
}


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text | number | bool | set
    help: str
    choices: tuple[str, ...] | None = None  # allowed text values
    lo: int | None = None  # allowed number range
    hi: int | None = None
    options: dict[str, Option] = field(default_factory=dict)

    @property
    def ops(self) -> tuple[str, ...]:
        return {"text": TEXT_OPS, "number": NUMBER_OPS, "bool": BOOL_OPS, "set": SET_OPS}[self.kind]


def _f(name: str, kind: str, help: str, **kw: Any) -> Field:
    return Field(name, kind, help, **kw)


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        # Profile 基本属性
        _f("city", "text", "the customer's city (profile)"),
        _f("gender", "text", "the customer's gender (profile)"),
        _f("birthday_month", "number", "month of the birthday, 1–12", lo=1, hi=12),
        # Identities 身份
        _f("identity", "set", "identifier types the customer has (phone, unionid, member_no…)"),
        # Tags 标签
        _f(
            "tag",
            "set",
            "tag names on the customer",
            options={"group": Option("text", "only tags of this tag group")},
        ),  # fmt: skip
        # Orders 订单 (paid orders: not cancelled, not fully refunded)
        _f("orders.count", "number", "paid orders", lo=0, options=ORDER_OPTIONS),
        _f(
            "orders.amount", "number", "net sales of paid orders, fen", lo=0, options=ORDER_OPTIONS
        ),  # fmt: skip
        _f(
            "orders.days_since_last",
            "number",
            "days since the last paid order",
            lo=0,
            options=ORDER_OPTIONS,
        ),  # fmt: skip
        # Interactions 互动
        _f("interactions.count", "number", "interactions", lo=0, options=INTERACTION_OPTIONS),
        _f(
            "interactions.days_since_last",
            "number",
            "days since the last interaction",
            lo=0,
            options=INTERACTION_OPTIONS,
        ),  # fmt: skip
        # Connections 连接
        _f("days_since_first_connection", "number", "days since the first connection", lo=0),
        _f("group", "set", "codes of brand groups (社群) the customer is in now"),
        _f("staff", "set", "codes of staff the customer is a WeCom friend of now (owning guide)"),
        _f("store", "set", "codes of stores whose staff or groups the customer is connected to"),
        _f("region", "set", "regions of those stores"),
        # Lifecycle, layers, RFM, quadrant (SPEC §6; computed as of the evaluation instant)
        _f("lifecycle", "text", "lifecycle stage 生命周期", choices=LIFECYCLE_STAGES),
        _f("value_layer", "text", "value layer 贡献度分层", choices=VALUE_LAYERS),
        _f("loyal", "bool", "loyal customer 忠实用户 (SPEC §5.9)"),
        _f("super_user", "bool", "super user 超级用户 (SPEC §5.10)"),
        _f("rfm.class", "text", "RFM class (eight classes)", choices=RFM_CLASSES),
        _f("rfm.r_score", "number", "RFM recency quintile score, 5 = most recent", lo=1, hi=5),
        _f("rfm.f_score", "number", "RFM frequency quintile score", lo=1, hi=5),
        _f("rfm.m_score", "number", "RFM monetary quintile score", lo=1, hi=5),
        _f("quadrant", "text", "business quadrant 生意四象限", choices=QUADRANTS),
        # Membership 会员
        _f("member", "bool", "has a member card"),
        _f("member.level", "text", "level of the newest member card"),
        _f("member.points", "number", "points over the customer's member cards"),
        # Consent 同意
        _f(
            "opted_out",
            "bool",
            "opted out of marketing (退订)",
            options={
                "channel": Option("text", "only opt-outs covering this channel (wecom, sms…)")
            },
        ),  # fmt: skip
    )
}


@dataclass(frozen=True)
class All:
    children: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class Not:
    child: Node
    path: str


@dataclass(frozen=True)
class Leaf:
    field: Field
    op: str
    value: Any
    options: dict[str, Any]
    path: str


Node = All | AnyOf | Not | Leaf

BRANCHES = ("all", "any", "not")


def parse(raw: Any, path: str = "rule") -> Node:
    """The rule tree, validated; a RuleError names the first node that is wrong."""
    return _node(raw, path, 0)


def _node(raw: Any, path: str, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise RuleError(path, f"the rule is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(raw, dict):
        raise RuleError(
            path, f'expected an object with "all", "any", "not" or "field", got {_show(raw)}'
        )
    heads = [k for k in (*BRANCHES, "field") if k in raw]
    if not heads:
        keys = ", ".join(f'"{k}"' for k in raw) or "none"
        raise RuleError(
            path, f'a node needs one of "all", "any", "not" or "field" (keys found: {keys})'
        )
    if len(heads) > 1:
        raise RuleError(
            path,
            f'a node has exactly one of "all", "any", "not" or "field"; found "{heads[0]}" '
            f'and "{heads[1]}" — wrap them in "all" or "any"',
        )
    head = heads[0]
    if head == "field":
        return _leaf(raw, path)
    extra = [k for k in raw if k != head]
    if extra:
        raise RuleError(f"{path}.{extra[0]}", f'unexpected key beside "{head}"')
    body = raw[head]
    if head == "not":
        return Not(_node(body, f"{path}.not", depth + 1), path)
    if not isinstance(body, list) or not body:
        raise RuleError(f"{path}.{head}", f"expected a non-empty list of nodes, got {_show(body)}")
    children = tuple(_node(c, f"{path}.{head}[{i}]", depth + 1) for i, c in enumerate(body))
    return All(children, path) if head == "all" else AnyOf(children, path)


def _leaf(raw: dict[str, Any], path: str) -> Leaf:
    name = raw["field"]
    if not isinstance(name, str):
        raise RuleError(f"{path}.field", f"expected a field name, got {_show(name)}")
    spec = FIELDS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, FIELDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else " (see `siyu segments fields`)"
        raise RuleError(f"{path}.field", f"unknown field '{name}'{hint}")
    if "op" not in raw:
        raise RuleError(path, f'missing "op" (one of: {", ".join(spec.ops)})')
    op_raw = raw["op"]
    op = ALIASES.get(op_raw, op_raw) if isinstance(op_raw, str) else op_raw
    if op not in spec.ops:
        raise RuleError(
            f"{path}.op",
            f"{_show(op_raw)} is not an operator of field '{name}' "
            f"(use one of: {', '.join(spec.ops)})",
        )
    for key in raw:
        if key not in ("field", "op", "value") and key not in spec.options:
            allowed = ", ".join(spec.options) or "none"
            raise RuleError(f"{path}.{key}", f"unknown key for field '{name}' (options: {allowed})")
    options = {k: _option(spec.options[k], raw[k], f"{path}.{k}") for k in raw if k in spec.options}
    if op in NO_VALUE_OPS:
        if "value" in raw:
            raise RuleError(f"{path}.value", f"operator '{op}' takes no value")
        return Leaf(spec, op, None, options, path)
    if "value" not in raw:
        raise RuleError(path, f"missing \"value\" for operator '{op}'")
    value = _value(spec, op, raw["value"], f"{path}.value")
    return Leaf(spec, op, value, options, path)


def _value(spec: Field, op: str, raw: Any, path: str) -> Any:
    if spec.kind == "bool":
        if not isinstance(raw, bool):
            raise RuleError(path, f"expected true or false, got {_show(raw)}")
        return raw
    many = op in ("in", "not_in", "any_of", "all_of", "none_of")
    if op == "between":
        if not isinstance(raw, list) or len(raw) != 2:
            raise RuleError(path, f"expected [low, high] for 'between', got {_show(raw)}")
        lo, hi = (_scalar(spec, v, f"{path}[{i}]") for i, v in enumerate(raw))
        if lo > hi:
            raise RuleError(path, f"the low end {lo} is above the high end {hi}")
        return [lo, hi]
    if many:
        if not isinstance(raw, list) or not raw:
            raise RuleError(path, f"expected a non-empty list for '{op}', got {_show(raw)}")
        return [_scalar(spec, v, f"{path}[{i}]") for i, v in enumerate(raw)]
    return _scalar(spec, raw, path)


def _scalar(spec: Field, raw: Any, path: str) -> Any:
    if spec.kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise RuleError(path, f"expected a whole number for '{spec.name}', got {_show(raw)}")
        if spec.lo is not None and raw < spec.lo or spec.hi is not None and raw > spec.hi:
            bounds = f"{spec.lo if spec.lo is not None else '…'}–{spec.hi if spec.hi is not None else '…'}"
            raise RuleError(path, f"{raw} is outside {bounds} for '{spec.name}'")
        return raw
    if not isinstance(raw, str) or not raw:
        raise RuleError(path, f"expected text for '{spec.name}', got {_show(raw)}")
    if spec.choices is not None and raw not in spec.choices:
        close = difflib.get_close_matches(raw, spec.choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise RuleError(
            path,
            f"'{raw}' is not a value of '{spec.name}' ({hint}one of: {', '.join(spec.choices)})",
        )
    return raw


def _option(opt: Option, raw: Any, path: str) -> Any:
    if opt.kind == "days":
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_DAYS:
            raise RuleError(
                path, f"expected a whole number of days from 1 to {MAX_DAYS}, got {_show(raw)}"
            )
        return raw
    if opt.kind == "text":
        if not isinstance(raw, str) or not raw:
            raise RuleError(path, f"expected text, got {_show(raw)}")
        return raw
    if not isinstance(raw, list) or not raw or not all(isinstance(v, str) and v for v in raw):
        raise RuleError(path, f"expected a non-empty list of text, got {_show(raw)}")
    return list(raw)


def _show(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "…"


def fields_used(node: Node) -> set[str]:
    """The names of the fields a rule reads."""
    if isinstance(node, Leaf):
        return {node.field.name}
    if isinstance(node, Not):
        return fields_used(node.child)
    return set().union(*(fields_used(c) for c in node.children))
