"""Rule tags 规则标签: a tag whose customers are the members of a segment rule.

`refresh` evaluates the rule in the warehouse (one DuckDB statement, the same compiler and
definitions as `siyu segments`), then in one operational transaction tags the members who lack
the tag and untags those who no longer match — with history (`by` = "rule", source "rule")
and `tag.added` / `tag.removed` events. Run daily after the warehouse sync, beside
`siyu segments refresh` and `siyu lifecycle` (README: "Daily jobs").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
from sqlalchemy import Engine, text

from siyu.bulk import int_table
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.segments import evaluate
from siyu.segments.service import SegmentError, parse_or_raise
from siyu.tags import service
from siyu.tags.service import TagError, TagInfo


@dataclass
class RefreshResult:
    tag: str
    members: int
    added: int
    removed: int


def rule_tags(engine: Engine, *, brand_id: int, refs: list[str] | None = None) -> list[TagInfo]:
    """The rule tags to refresh: the ones named (each must be a rule tag), or all of them."""
    with engine.connect() as conn:
        if not refs:
            return [t for t in service.all_tags(conn, brand_id=brand_id) if t.kind == "rule"]
        tags = [service.find_tag(conn, brand_id=brand_id, ref=r) for r in refs]
    for t in tags:
        if t.kind != "rule":
            raise TagError(f"TAG: {t.label} is a {t.kind} tag; only rule tags are refreshed")
    return tags


def refresh(
    engine: Engine,
    con: duckdb.DuckDBPyConnection,
    *,
    scope: Scope,
    tag: TagInfo,
    constants: Constants,
    as_of: datetime | None = None,
) -> RefreshResult:
    """Make the tag's customers exactly the rule's members as of `as_of` (default now)."""
    try:
        rule = parse_or_raise(tag.rule)
    except SegmentError as e:
        raise TagError(f"tag {tag.label}: {e}") from None
    ev = evaluate.prepare(con, rule, scope=scope, as_of=as_of or datetime.now(UTC),
                          constants=constants)  # fmt: skip
    members = evaluate.member_ids(con, ev)
    b = scope.brand_id
    with engine.begin() as conn:
        int_table(conn, "_tag_rule_members", ["customer_id"], [members])
        service.fill_pairs(
            conn,
            "SELECT customer_id, CAST(:t AS BIGINT) AS tag_id FROM _tag_rule_members",
            {"t": tag.id},
        )
        added = service.apply_pairs(conn, brand_id=b, action="added", by="rule", source="rule")
        service.fill_pairs(
            conn,
            "SELECT ct.customer_id, ct.tag_id FROM customer_tag ct WHERE ct.tag_id = :t "
            "AND NOT EXISTS (SELECT 1 FROM _tag_rule_members m "
            "WHERE m.customer_id = ct.customer_id)",
            {"t": tag.id},
        )
        removed = service.apply_pairs(conn, brand_id=b, action="removed", by="rule", source="rule")
        conn.execute(text("DROP TABLE IF EXISTS _tag_rule_members"))
    return RefreshResult(tag.label, len(members), added, removed)
