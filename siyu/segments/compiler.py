"""Compile a parsed rule tree into one DuckDB statement over the warehouse.

The statement reads the `v_*` views of siyu.metrics.scope (installed for the brand) and the
mirrored tables, and returns the `customer_id` of every live customer the rule selects as of the
instant `$end` (brand-local day `$to_day`). Lifecycle, value layers, RFM and the quadrant come
from their SPEC §6 definition files in siyu/metrics/sql, included as CTEs only when the rule reads
them, so a segment and the daily snapshot can never disagree on a definition. When the daily
snapshot of the as-of day is known to hold exactly those values (siyu.lifecycle.service.
fresh_snapshot), lifecycle, RFM and quadrant are read from it instead (`snapshot=True`), and so
are order leaves over every paid order or over a trailing window the pass counts (those of the
SPEC constants: loyal, super-user, paying and quadrant days), from the order figures it stored
beside it. Such a leaf is a semi-join whose condition the table's scan filters, not a join of
every customer's row. Value layers are not read from the snapshot: it only has the customers
lifecycle knows at `$end`, and a customer first seen later can still be "active" through an
interaction. When the warehouse's per-customer order summary serves the rule
(siyu.warehouse.order_summary), lifecycle, RFM and order leaves without options (every paid
order before `$end`) read it instead of aggregating every order; there, order leaves with a
window, platform, store or product still read the orders.

Values only ever reach the SQL as bound parameters ($v1, $v2, …). Column names, tables and
operators come from the tables in this module, keyed by names the parser has already checked.

Two-valued logic: every leaf is `coalesce(<condition>, false)`, so a missing value (no orders,
no city) makes a leaf false, never NULL, and NOT over it is true. A customer with no orders is
therefore "NOT bought coffee", and `ne` / `not_in` / `none_of` are exactly NOT of `eq` / `in` /
`any_of` (a customer without a city is "not in 上海").
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from siyu.lifecycle.service import ORDERS, SNAPSHOT
from siyu.metrics.constants import Constants
from siyu.metrics.report import SQL_PACKAGE
from siyu.segments.rules import All, AnyOf, Leaf, Node, Not
from siyu.warehouse import order_summary
from siyu.warehouse.duck import composed, sql_file

ACTIVE = "cn.created_at <= $end AND (cn.ended_at IS NULL OR cn.ended_at > $end)"

# Set fields: a subquery of (customer_id, x) pairs; the leaf tests x against the given values.
SETS = {
    "identity": (
        "SELECT customer_id, id_type AS x FROM identifiers "
        "WHERE brand_id = $brand_id AND customer_id IS NOT NULL AND status <> 'quarantined'"
    ),
    "tag": (
        "SELECT coalesce(cu.merged_into_id, ct.customer_id) AS customer_id, t.name AS x "
        "FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id AND t.brand_id = $brand_id "
        "JOIN customers cu ON cu.id = ct.customer_id "
        "WHERE ct.added_at < $end{group}"
    ),
    "group": (
        "SELECT cn.customer_id, g.code AS x FROM v_connections cn "
        "JOIN groups g ON g.id = cn.group_id "
        f"WHERE cn.kind = 'group_member' AND cn.customer_id IS NOT NULL AND {ACTIVE}"
    ),
    "staff": (
        "SELECT cn.customer_id, s.code AS x FROM v_connections cn "
        "JOIN staff s ON s.id = cn.staff_id "
        f"WHERE cn.kind = 'wecom_friend' AND cn.customer_id IS NOT NULL AND {ACTIVE}"
    ),
    # A customer belongs to a store through an active friendship with its staff or membership
    # of its groups, as the store filter of the metrics reports reads it (siyu.metrics.scope).
    "store": (
        "SELECT cn.customer_id, st.code AS x FROM v_connections cn "
        "LEFT JOIN staff s ON s.id = cn.staff_id LEFT JOIN groups g ON g.id = cn.group_id "
        "JOIN stores st ON st.id = coalesce(s.store_id, g.store_id) "
        f"WHERE cn.customer_id IS NOT NULL AND {ACTIVE}"
    ),
    "region": (
        "SELECT cn.customer_id, st.region AS x FROM v_connections cn "
        "LEFT JOIN staff s ON s.id = cn.staff_id LEFT JOIN groups g ON g.id = cn.group_id "
        "JOIN stores st ON st.id = coalesce(s.store_id, g.store_id) "
        f"WHERE cn.customer_id IS NOT NULL AND {ACTIVE}"
    ),
}

# Per-customer definition files (siyu/metrics/sql) and the column a field reads from each.
ATTRIBUTES = {
    "lifecycle": ("lifecycle_stage", "stage"),
    "value_layer": ("value_layer", "layer"),
    "loyal": ("value_layer", "loyal"),
    "super_user": ("value_layer", "super_user"),
    "rfm.class": ("rfm", "class"),
    "rfm.r_score": ("rfm", "r_score"),
    "rfm.f_score": ("rfm", "f_score"),
    "rfm.m_score": ("rfm", "m_score"),
    "quadrant": ("quadrant", "quadrant"),
}

# The same values in the daily snapshot (customer_attributes.sql's columns), by field. Its rows
# are the customers lifecycle_stage.sql knows at `$end`, a superset of those with an RFM class or
# a quadrant, so a customer without a row has no value here exactly as in the live files.
SNAPSHOT_COLUMNS = {
    "lifecycle": "stage",
    "rfm.class": "rfm_class",
    "rfm.r_score": "r_score",
    "rfm.f_score": "f_score",
    "rfm.m_score": "m_score",
    "quadrant": "quadrant",
}
# The pass's order figures (customer_orders.sql's columns) over every paid order before $end, by
# measure, and each one's value for a customer without a row (no paid order before $end).
STORED_LIFETIME = {
    "orders.count": ("coalesce(paid_orders, 0)", 0),
    "orders.amount": ("coalesce(paid_net, 0)", 0),
    "orders.days_since_last": ("datediff('day', local_day(last_paid_at), $to_day)", None),
}
WINDOWS = ("loyal", "super", "paying", "quadrant")  # the stored paid_<name>_window counts

PROFILE = {"city": "c.city", "gender": "c.gender", "birthday_month": "month(c.birthday)"}

MEMBER_CTE = (
    "SELECT customer_id, arg_max(level, joined_at) AS level, sum(points) AS points "
    "FROM memberships WHERE brand_id = $brand_id AND customer_id IS NOT NULL "
    "AND joined_at < $end GROUP BY customer_id"
)
FIRST_CONNECTION_CTE = (
    "SELECT customer_id, datediff('day', local_day(min(created_at)), $to_day) AS days "
    "FROM v_connections WHERE customer_id IS NOT NULL AND created_at < $end GROUP BY customer_id"
)

# Aggregate fields: the measure over the matching facts, and its value for a customer with none.
ORDER_MEASURES = {
    "orders.count": ("count(*)", "0"),
    "orders.amount": ("sum(o.amount_fen - o.refund_fen)", "0"),
    "orders.days_since_last": ("datediff('day', local_day(max(o.created_at)), $to_day)", None),
}
# The same measures over every paid order before $end, from customer_orders_lifetime.sql.
SUMMARY_MEASURES = {
    "orders.count": "coalesce({alias}.paid_orders, 0)",
    "orders.amount": "coalesce({alias}.paid_net, 0)",
    "orders.days_since_last": "datediff('day', local_day({alias}.last_paid_at), $to_day)",
}
INTERACTION_MEASURES = {
    "interactions.count": ("count(*)", "0"),
    "interactions.days_since_last": (
        "datediff('day', local_day(max(o.created_at)), $to_day)",
        None,
    ),
}

COMPARE = {"eq": "=", "ne": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
PY_COMPARE = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@dataclass
class Compiled:
    """`sql` selects the customer_id of every member; `params` are its rule values."""

    sql: str
    params: dict[str, Any]
    reads_snapshot: bool = False  # some leaf reads the daily attribute snapshot


@dataclass(frozen=True)
class Windows:
    """The trailing windows (in days) whose paid orders the daily pass counts, and the one whose
    net sales it sums: the SPEC constants customer_orders.sql is computed with."""

    counts: dict[int, str] = field(default_factory=dict)  # days -> stored column
    amounts: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, constants: Constants) -> Windows:
        counts: dict[int, str] = {}
        for name in WINDOWS:
            counts.setdefault(getattr(constants, f"{name}_days"), f"paid_{name}_window")
        return cls(counts, {constants.quadrant_days: "net_quadrant_window"})


@dataclass
class _Builder:
    params: dict[str, Any] = field(default_factory=dict)
    ctes: dict[str, str] = field(default_factory=dict)  # name -> body, in order
    joins: list[str] = field(default_factory=list)
    snapshot: bool = False  # read SNAPSHOT_COLUMNS fields from the daily snapshot
    summary: bool = False  # lifetime order figures from the warehouse's order summary
    windows: Windows = field(default_factory=Windows)  # the pass's stored order windows
    read_snapshot: bool = False  # some leaf did

    def bind(self, value: Any) -> str:
        name = f"v{len(self.params) + 1}"
        self.params[name] = value
        return f"${name}"

    def joined(self, name: str, body: str) -> str:
        """LEFT JOIN the CTE `name` (once) on the customer; its alias is its name."""
        if name not in self.ctes:
            self.ctes[name] = body
            self.joins.append(f"LEFT JOIN {name} ON {name}.customer_id = c.customer_id")
        return name

    def aggregate(self, body: str) -> str:
        return self.joined(f"leaf_{len(self.ctes) + 1}", body)


def compile_rule(
    rule: Node,
    *,
    snapshot: bool = False,
    summary: bool = False,
    windows: Windows | None = None,
) -> Compiled:
    """One statement selecting the rule's members (the caller binds $brand_id, $end, $to_day
    and the SPEC constants with the returned params). `snapshot`: the daily snapshot of
    `$to_day` is fresh for `$end`, read per-customer attributes from it, and the order leaves
    it has figures for (`windows`: the trailing windows it counts). `summary`: the warehouse's
    order summary serves the scope (siyu.warehouse.order_summary.usable), read the figures over
    all paid orders from it — lifecycle, RFM, and order leaves without options."""
    b = _Builder(snapshot=snapshot, summary=summary, windows=windows or Windows())
    where = _node(rule, b)
    with_ = ""
    if b.ctes:
        with_ = "WITH " + ",\n".join(f"{n} AS (\n{body}\n)" for n, body in b.ctes.items()) + "\n"
    sql = (
        f"{with_}SELECT c.customer_id FROM v_customers c\n"
        + "".join(f"{j}\n" for j in b.joins)
        + f"WHERE {where}"
    )
    return Compiled(sql, b.params, b.read_snapshot)


def _node(node: Node, b: _Builder) -> str:
    if isinstance(node, All):
        return "(" + " AND ".join(_node(c, b) for c in node.children) + ")"
    if isinstance(node, AnyOf):
        return "(" + " OR ".join(_node(c, b) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"(NOT {_node(node.child, b)})"
    return f"coalesce({_leaf(node, b)}, false)"


def _leaf(leaf: Leaf, b: _Builder) -> str:
    name = leaf.field.name
    if name in PROFILE:
        return _compare(PROFILE[name], leaf, b)
    if b.snapshot and name in SNAPSHOT_COLUMNS:
        return _stored(SNAPSHOT, SNAPSHOT_COLUMNS[name], None, leaf, b)
    if name in ATTRIBUTES:
        file, column = ATTRIBUTES[name]
        lifetime = b.summary and file in order_summary.LIFETIME_FILES
        alias = b.joined(
            file, composed(SQL_PACKAGE, file, order_summary.LIFETIME if lifetime else ())
        )
        return _compare(f"{alias}.{column}", leaf, b)
    if name in SETS:
        return _set(name, leaf, b)
    if name in ORDER_MEASURES:
        return _orders(leaf, b)
    if name in INTERACTION_MEASURES:
        return _interactions(leaf, b)
    if name in ("member", "member.level", "member.points"):
        alias = b.joined("member_card", MEMBER_CTE)
        if name == "member":
            return _compare(f"({alias}.customer_id IS NOT NULL)", leaf, b)
        return _compare(f"{alias}.{name.split('.')[1]}", leaf, b)
    if name == "days_since_first_connection":
        alias = b.joined("first_connection", FIRST_CONNECTION_CTE)
        return _compare(f"{alias}.days", leaf, b)
    if name == "opted_out":
        channel = ""
        if "channel" in leaf.options:
            channel = f" AND (channel IS NULL OR channel = {b.bind(leaf.options['channel'])})"
        expr = (
            "(c.customer_id IN (SELECT customer_id FROM opt_outs WHERE brand_id = $brand_id "
            f"AND customer_id IS NOT NULL AND created_at < $end{channel}))"
        )
        return _compare(expr, leaf, b)
    raise AssertionError(f"field {name} has no compilation")  # the parser admits only FIELDS


def _compare(expr: str, leaf: Leaf, b: _Builder) -> str:
    op, value = leaf.op, leaf.value
    if op == "is":
        return expr if value else f"(NOT {expr})"
    if op == "is_set":
        return f"({expr} IS NOT NULL)"
    if op == "is_not_set":
        return f"({expr} IS NULL)"
    if op == "between":
        return f"({expr} BETWEEN {b.bind(value[0])} AND {b.bind(value[1])})"
    if op in ("in", "not_in"):
        test = f"list_contains({b.bind(value)}, {expr})"
    else:
        test = f"({expr} {COMPARE[op]} {b.bind(value)})"
    if op in ("ne", "not_in"):
        return f"(NOT coalesce({test}, false))"
    return test


def _set(name: str, leaf: Leaf, b: _Builder) -> str:
    source = SETS[name]
    if name == "tag":
        group = leaf.options.get("group")
        source = source.format(group=f" AND t.group_name = {b.bind(group)}" if group else "")
    if leaf.op == "exists":
        return f"(c.customer_id IN (SELECT customer_id FROM ({source})))"
    values = b.bind(sorted(set(leaf.value)))
    matching = f"SELECT customer_id, x FROM ({source}) WHERE list_contains({values}, x)"
    if leaf.op == "all_of":
        wanted = b.bind(len(set(leaf.value)))
        return (
            f"(c.customer_id IN (SELECT customer_id FROM ({matching}) GROUP BY customer_id "
            f"HAVING count(DISTINCT x) = {wanted}))"
        )
    test = f"(c.customer_id IN (SELECT customer_id FROM ({matching})))"
    return f"(NOT {test})" if leaf.op == "none_of" else test


def _window(leaf: Leaf, b: _Builder, alias: str) -> list[str]:
    where = [f"{alias}.customer_id IS NOT NULL", f"{alias}.created_at < $end"]
    if "within_days" in leaf.options:
        days = b.bind(leaf.options["within_days"])
        where.append(f"{alias}.created_at >= plus_days($end, -{days})")
    return where


def _stored(table: str, expr: str, missing: Any, leaf: Leaf, b: _Builder) -> str:
    """The leaf over a column `expr` of a table the daily pass wrote for `$to_day`, as a
    semi-join: the table's scan filters its rows by the condition. A customer without a row has
    the value `missing` there; if the condition holds for it, the leaf is the anti-join of the
    rows where it does not."""
    b.read_snapshot = True
    test = f"coalesce({_compare(expr, leaf, b)}, false)"
    day = "brand_id = $brand_id AND as_of = $to_day"
    if _holds(leaf, missing):
        return (
            f"(NOT c.customer_id IN (SELECT customer_id FROM {table} WHERE {day} AND NOT {test}))"
        )
    return f"(c.customer_id IN (SELECT customer_id FROM {table} WHERE {day} AND {test}))"


def _holds(leaf: Leaf, value: Any) -> bool:
    """Whether `_compare`'s condition, coalesced to false, holds for `value` (None: NULL)."""
    op, want = leaf.op, leaf.value
    if op == "is_set":
        return value is not None
    if op == "is_not_set":
        return value is None
    if op in ("ne", "not_in"):  # NOT coalesce(test, false)
        return value is None or (value != want if op == "ne" else value not in want)
    if value is None:
        return False
    if op == "is":
        return bool(value) == bool(want)
    if op == "between":
        return bool(want[0] <= value <= want[1])
    if op == "in":
        return value in want
    return bool(PY_COMPARE[op](value, want))


def _stored_orders(leaf: Leaf, b: _Builder) -> str | None:
    """The leaf from the order figures the daily pass stored, or None if it has no such figure."""
    name, o = leaf.field.name, leaf.options
    if not b.snapshot or set(o) - {"within_days"}:
        return None
    days = o.get("within_days")
    expr, missing = STORED_LIFETIME[name]
    if days is None:
        return _stored(ORDERS, expr, missing, leaf, b)
    if name == "orders.days_since_last":  # the last paid order, if it lies in the window
        since = f"(CASE WHEN last_paid_at >= plus_days($end, -{b.bind(days)}) THEN {expr} END)"
        return _stored(ORDERS, since, None, leaf, b)
    column = (b.windows.counts if name == "orders.count" else b.windows.amounts).get(days)
    if column is None:
        return None
    return _stored(ORDERS, f"coalesce({column}, 0)", 0, leaf, b)


def _orders(leaf: Leaf, b: _Builder) -> str:
    measure, missing = ORDER_MEASURES[leaf.field.name]
    o = leaf.options
    stored = _stored_orders(leaf, b)
    if stored is not None:
        return stored
    if b.summary and not o:  # every paid order before $end: the order summary has the figure
        alias = b.joined("order_lifetime", sql_file(SQL_PACKAGE, "customer_orders_lifetime"))
        value = SUMMARY_MEASURES[leaf.field.name].format(alias=alias)
        return _compare(value, leaf, b)
    where = ["o.paid", *_window(leaf, b, "o")]
    if "platform" in o:
        where.append(f"list_contains({b.bind(o['platform'])}, o.platform)")
    if "store" in o:
        where.append(
            "o.store_id IN (SELECT id FROM stores WHERE brand_id = $brand_id "
            f"AND list_contains({b.bind(o['store'])}, code))"
        )
    if "region" in o:
        where.append(
            "o.store_id IN (SELECT id FROM stores WHERE brand_id = $brand_id "
            f"AND list_contains({b.bind(o['region'])}, region))"
        )
    if "sku" in o or "category" in o:
        items = []
        if "sku" in o:
            items.append(f"list_contains({b.bind(o['sku'])}, i.sku)")
        if "category" in o:
            items.append(
                "i.sku IN (SELECT sku FROM products WHERE brand_id = $brand_id "
                f"AND list_contains({b.bind(o['category'])}, category))"
            )
        where.append(f"o.id IN (SELECT i.order_id FROM order_items i WHERE {' AND '.join(items)})")
    alias = b.aggregate(
        f"SELECT o.customer_id, {measure} AS value FROM v_orders o "
        f"WHERE {' AND '.join(where)} GROUP BY o.customer_id"
    )
    value = f"coalesce({alias}.value, {missing})" if missing else f"{alias}.value"
    return _compare(value, leaf, b)


def _interactions(leaf: Leaf, b: _Builder) -> str:
    measure, missing = INTERACTION_MEASURES[leaf.field.name]
    where = _window(leaf, b, "o")
    if "kind" in leaf.options:
        where.append(f"list_contains({b.bind(leaf.options['kind'])}, o.kind)")
    alias = b.aggregate(
        f"SELECT o.customer_id, {measure} AS value FROM v_interactions o "
        f"WHERE {' AND '.join(where)} GROUP BY o.customer_id"
    )
    value = f"coalesce({alias}.value, {missing})" if missing else f"{alias}.value"
    return _compare(value, leaf, b)
