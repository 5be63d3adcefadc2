"""Tag groups, tags and customer tags — SPEC §3, §6, §12.

Every change to who carries a tag goes through `_apply`, set-based over a temporary table of
(customer, tag) pairs: it first bumps each tag's `change_no` (a row lock on PostgreSQL, so two
batches on one tag run one after the other), keeps only the pairs that change something (a
customer of the brand, followed to the customer it was merged into; not already tagged / still
tagged), writes them, and records one history row and one `tag.added` / `tag.removed` event per
change, keyed `tag.<added|removed>:<tag>:<customer>:<change_no>` so the SOP engine sees each
change once. Asking twice is harmless: the second call changes nothing and returns 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, TextClause, bindparam, select, text

from siyu.bulk import int_table
from siyu.db import UTCDateTime
from siyu.tags.models import KINDS, SOURCES, Tag, TagGroup

NAME_MAX = 100
BY_MAX = 100


class TagError(ValueError):
    """A request about tags that cannot be done; the message names the field and says why."""


@dataclass(frozen=True)
class TagInfo:
    id: int
    group_id: int
    group: str
    name: str
    kind: str
    rule: Any
    wecom_tag_id: str | None

    @property
    def label(self) -> str:
        return f"{self.group}/{self.name}"


# ----- groups and tags ---------------------------------------------------------------------


def get_or_create_group(conn: Connection, *, brand_id: int, name: str) -> int:
    found = conn.execute(
        select(TagGroup.id).where(TagGroup.brand_id == brand_id, TagGroup.name == name)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            TagGroup.__table__.insert().values(brand_id=brand_id, name=name).returning(TagGroup.id)
        ).scalar_one()
    )


def get_or_create_tag(conn: Connection, *, brand_id: int, group: str, name: str) -> int:
    """The tag `name` in group `group`, both created on first use."""
    group_id = get_or_create_group(conn, brand_id=brand_id, name=group)
    found = conn.execute(
        select(Tag.id).where(Tag.group_id == group_id, Tag.name == name)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            Tag.__table__.insert().values(group_id=group_id, name=name).returning(Tag.id)
        ).scalar_one()
    )


def _check_name(field: str, name: str) -> str:
    name = name.strip()
    if not name:
        raise TagError(f"{field}: a name cannot be empty")
    if len(name) > NAME_MAX:
        raise TagError(f"{field}: {len(name)} characters, at most {NAME_MAX}")
    return name


_TAG_COLS = (
    "SELECT t.id, t.group_id, g.name, t.name, t.kind, t.rule, t.wecom_tag_id "
    "FROM tag t JOIN tag_group g ON g.id = t.group_id WHERE g.brand_id = :b"
)


def _info(row: Any) -> TagInfo:
    rule = row[5]
    if isinstance(rule, str):  # SQLite through raw text(): JSON comes back as text
        rule = json.loads(rule)
    return TagInfo(int(row[0]), int(row[1]), row[2], row[3], row[4], rule, row[6])


def all_tags(conn: Connection, *, brand_id: int) -> list[TagInfo]:
    rows = conn.execute(text(_TAG_COLS + " ORDER BY g.sort_order, g.name, t.sort_order, t.name"),
                        {"b": brand_id})  # fmt: skip
    return [_info(r) for r in rows]


def find_tag(conn: Connection, *, brand_id: int, ref: str, field: str = "TAG") -> TagInfo:
    """A tag by id, by name (when one group has it) or by GROUP/NAME."""
    ref = ref.strip()
    rows = []
    if ref.isascii() and ref.isdigit():
        rows = list(
            conn.execute(text(_TAG_COLS + " AND t.id = :i"), {"b": brand_id, "i": int(ref)})
        )
    if not rows:
        rows = list(conn.execute(text(_TAG_COLS + " AND t.name = :n"), {"b": brand_id, "n": ref}))
    if not rows and "/" in ref:
        group, _, name = ref.partition("/")
        rows = list(
            conn.execute(
                text(_TAG_COLS + " AND g.name = :g AND t.name = :n"),
                {"b": brand_id, "g": group, "n": name},
            )
        )
    if len(rows) > 1:
        choices = ", ".join(sorted(f"{r[2]}/{r[3]}" for r in rows))
        raise TagError(f"{field}: {ref!r} is in several groups; say which: {choices}")
    if not rows:
        raise TagError(f"{field}: no tag {ref!r} (see `siyu tags list`)")
    return _info(rows[0])


def get_tag(conn: Connection, *, brand_id: int, tag_id: int) -> TagInfo:
    row = conn.execute(text(_TAG_COLS + " AND t.id = :i"), {"b": brand_id, "i": tag_id}).first()
    if row is None:
        raise TagError(f"tag_id: no tag {tag_id} in this brand")
    return _info(row)


def list_groups(conn: Connection, *, brand_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT g.id, g.name, g.wecom_group_id, count(t.id) FROM tag_group g "
            "LEFT JOIN tag t ON t.group_id = g.id WHERE g.brand_id = :b "
            "GROUP BY g.id, g.name, g.wecom_group_id, g.sort_order ORDER BY g.sort_order, g.name"
        ),
        {"b": brand_id},
    )
    keys = ("id", "name", "wecom_group_id", "tags")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def list_tags(conn: Connection, *, brand_id: int, group: str | None = None) -> list[dict[str, Any]]:
    """Tags (of one group, if given) with how many customers carry each."""
    params: dict[str, Any] = {"b": brand_id}
    where = ""
    if group is not None:
        if not conn.execute(
            select(TagGroup.id).where(TagGroup.brand_id == brand_id, TagGroup.name == group)
        ).first():
            raise TagError(f"--group: no tag group {group!r} (see `siyu tags groups`)")
        where, params["g"] = " AND g.name = :g", group
    rows = conn.execute(
        text(
            "SELECT t.id, g.name, t.name, t.kind, t.wecom_tag_id, "
            "(SELECT count(*) FROM customer_tag ct WHERE ct.tag_id = t.id) "
            f"FROM tag t JOIN tag_group g ON g.id = t.group_id WHERE g.brand_id = :b{where} "
            "ORDER BY g.sort_order, g.name, t.sort_order, t.name"
        ),
        params,
    )
    keys = ("id", "group", "name", "kind", "wecom_tag_id", "customers")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def create_tag(
    conn: Connection, *, brand_id: int, group: str, name: str, rule: Any = None,
    kind: str | None = None,
) -> int:  # fmt: skip
    """A new tag (its group created on first use); a rule makes it a rule tag."""
    group = _check_name("GROUP", group)
    name = _check_name("NAME", name)
    kind = kind or ("rule" if rule is not None else "manual")
    if kind not in KINDS:
        raise TagError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if (kind == "rule") != (rule is not None):
        raise TagError("rule: a rule tag needs a rule, and only a rule tag has one")
    if rule is not None:
        _check_rule(rule, group=group, name=name)
    group_id = get_or_create_group(conn, brand_id=brand_id, name=group)
    if conn.execute(select(Tag.id).where(Tag.group_id == group_id, Tag.name == name)).first():
        raise TagError(f"NAME: group {group!r} already has a tag {name!r}")
    return int(
        conn.execute(
            Tag.__table__.insert()
            .values(group_id=group_id, name=name, kind=kind, rule=rule, change_no=0)
            .returning(Tag.id)
        ).scalar_one()
    )


def set_rule(conn: Connection, *, brand_id: int, tag: TagInfo, rule: Any) -> None:
    """Replace a rule tag's rule; its customers change at the next refresh."""
    if tag.kind != "rule":
        raise TagError(f"TAG: {tag.label} is a {tag.kind} tag, not a rule tag")
    _check_rule(rule, group=tag.group, name=tag.name)
    conn.execute(Tag.__table__.update().where(Tag.id == tag.id).values(rule=rule))


def _check_rule(rule: Any, *, group: str, name: str) -> None:
    from siyu.segments.service import SegmentError, parse_or_raise

    try:
        parse_or_raise(rule)
    except SegmentError as e:
        raise TagError(f"rule: {e}") from None
    if _mentions(rule, group=group, name=name):
        raise TagError(f"rule: the rule of tag {group}/{name} cannot test that same tag")


def _mentions(rule: Any, *, group: str, name: str) -> bool:
    """Whether a rule (raw JSON) has a tag leaf that can match the tag group/name."""
    if isinstance(rule, list):
        return any(_mentions(x, group=group, name=name) for x in rule)
    if not isinstance(rule, dict):
        return False
    if rule.get("field") == "tag":
        values = rule.get("value")
        values = values if isinstance(values, list) else [values]
        return name in values and rule.get("group") in (None, group)
    return any(_mentions(v, group=group, name=name) for v in rule.values())


def references(conn: Connection, *, brand_id: int, tag: TagInfo) -> list[str]:
    """Saved segments and rule tags whose rule names this tag (renaming or deleting it would
    silently change what they select)."""
    found = []
    segs = conn.execute(
        text("SELECT name, rule FROM segment WHERE brand_id = :b ORDER BY name"), {"b": brand_id}
    )
    for seg_name, rule in segs:
        if _mentions(_json(rule), group=tag.group, name=tag.name):
            found.append(f"segment {seg_name!r}")
    for other in all_tags(conn, brand_id=brand_id):
        if other.id != tag.id and other.rule is not None:
            if _mentions(other.rule, group=tag.group, name=tag.name):
                found.append(f"rule tag {other.label!r}")
    return found


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


def _protect(conn: Connection, *, brand_id: int, tag: TagInfo, doing: str, force: bool) -> None:
    if tag.wecom_tag_id is not None:
        # The next corp-tag sync (change_external_tag) would bring it back as WeCom has it.
        raise TagError(
            f"TAG: {tag.label} is WeCom corp tag {tag.wecom_tag_id} and stays one to one with "
            f"it: {doing} it in WeCom (Siyu follows); pushing changes to WeCom is not built yet"
        )
    refs = references(conn, brand_id=brand_id, tag=tag)
    if refs and not force:
        raise TagError(
            f"TAG: cannot {doing} {tag.label}: used by {', '.join(refs)}; change those rules "
            "first, or pass --force"
        )


def rename_tag(
    conn: Connection, *, brand_id: int, tag: TagInfo, new_name: str, force: bool = False
) -> None:
    new_name = _check_name("NEW_NAME", new_name)
    if new_name == tag.name:
        return
    _protect(conn, brand_id=brand_id, tag=tag, doing="rename", force=force)
    if conn.execute(
        select(Tag.id).where(Tag.group_id == tag.group_id, Tag.name == new_name)
    ).first():
        raise TagError(f"NEW_NAME: group {tag.group!r} already has a tag {new_name!r}")
    conn.execute(Tag.__table__.update().where(Tag.id == tag.id).values(name=new_name))


def delete_tag(
    conn: Connection, *, brand_id: int, tag: TagInfo, by: str, force: bool = False
) -> int:
    """Untag everyone (with history and events), then delete the tag; customers untagged."""
    _protect(conn, brand_id=brand_id, tag=tag, doing="delete", force=force)
    n = _untag_all(conn, brand_id=brand_id, tag=tag, by=by)
    conn.execute(Tag.__table__.delete().where(Tag.id == tag.id))
    return n


def merge_tags(
    conn: Connection, *, brand_id: int, src: TagInfo, dst: TagInfo, by: str, force: bool = False
) -> tuple[int, int]:
    """Give SRC's customers DST, then delete SRC; (customers newly tagged DST, untagged SRC)."""
    if src.id == dst.id:
        raise TagError("DST: a tag cannot be merged into itself")
    for field, t in (("SRC", src), ("DST", dst)):
        if t.kind == "rule":
            raise TagError(f"{field}: {t.label} is a rule tag; its customers come from its rule")
    _protect(conn, brand_id=brand_id, tag=src, doing="merge away", force=force)
    fill_pairs(
        conn,
        "SELECT customer_id, CAST(:dst AS BIGINT) AS tag_id FROM customer_tag WHERE tag_id = :src",
        {"src": src.id, "dst": dst.id},
    )
    added = apply_pairs(conn, brand_id=brand_id, action="added", by=by, source="manual")
    removed = _untag_all(conn, brand_id=brand_id, tag=src, by=by)
    conn.execute(Tag.__table__.delete().where(Tag.id == src.id))
    return added, removed


def _untag_all(conn: Connection, *, brand_id: int, tag: TagInfo, by: str) -> int:
    fill_pairs(
        conn, "SELECT customer_id, tag_id FROM customer_tag WHERE tag_id = :t", {"t": tag.id}
    )
    return apply_pairs(conn, brand_id=brand_id, action="removed", by=by, source="manual")


# ----- who carries a tag -------------------------------------------------------------------


def tag_customers(
    conn: Connection,
    *,
    brand_id: int,
    tag_id: int,
    customer_ids: Iterable[int],
    by: str,
    source: str,
) -> int:
    """Give the tag to these customers; how many did not have it yet."""
    return _change(conn, "added", brand_id, tag_id, customer_ids, by, source)


def untag_customers(
    conn: Connection,
    *,
    brand_id: int,
    tag_id: int,
    customer_ids: Iterable[int],
    by: str,
    source: str,
) -> int:
    """Take the tag from these customers; how many had it."""
    return _change(conn, "removed", brand_id, tag_id, customer_ids, by, source)


def _change(
    conn: Connection,
    action: str,
    brand_id: int,
    tag_id: int,
    customer_ids: Iterable[int],
    by: str,
    source: str,
) -> int:
    tag = get_tag(conn, brand_id=brand_id, tag_id=tag_id)
    if tag.kind == "rule" and source != "rule":
        raise TagError(
            f"tag_id: {tag.label} is a rule tag; its customers come from its rule "
            "(siyu tags refresh), not by hand"
        )
    ids = np.fromiter((int(c) for c in customer_ids), dtype=np.int64)
    int_table(conn, "_tag_pairs", ["customer_id", "tag_id"], [ids, np.full(len(ids), tag_id)],
              keyed=False)  # fmt: skip
    return apply_pairs(conn, brand_id=brand_id, action=action, by=by, source=source)


def _timed(sql: str) -> TextClause:
    """A statement whose `:now` is bound as a UTC timestamp (stored like ORM-written ones)."""
    return text(sql).bindparams(bindparam("now", type_=UTCDateTime()))


def fill_pairs(conn: Connection, select_sql: str, params: dict[str, Any]) -> None:
    """The pairs to apply next, from a query of (customer_id, tag_id)."""
    conn.execute(text("DROP TABLE IF EXISTS _tag_pairs"))
    conn.execute(text(f"CREATE TEMPORARY TABLE _tag_pairs AS {select_sql}"), params)


def apply_pairs(
    conn: Connection, *, brand_id: int, action: str, by: str, source: str,
    now: datetime | None = None,
) -> int:  # fmt: skip
    """Apply the pairs in `_tag_pairs` (added or removed); how many changed."""
    if action not in ("added", "removed"):
        raise TagError(f"action: {action!r} is not added or removed")
    if source not in SOURCES:
        raise TagError(f"source: {source!r} is not one of {', '.join(SOURCES)}")
    if by is not None and len(by) > BY_MAX:
        raise TagError(f"by: {len(by)} characters, at most {BY_MAX}")
    now = now or datetime.now(UTC)
    p = {"b": brand_id, "by": by, "src": source, "act": action, "now": now}
    brand_tags = (
        "SELECT t.id FROM tag t JOIN tag_group g ON g.id = t.group_id WHERE g.brand_id = :b"
    )
    conn.execute(
        text(
            "UPDATE tag SET change_no = change_no + 1 WHERE id IN "
            f"(SELECT DISTINCT tag_id FROM _tag_pairs) AND id IN ({brand_tags})"
        ),
        p,
    )
    live = (
        "SELECT DISTINCT coalesce(c.merged_into_id, c.id) AS customer_id, x.tag_id "
        "FROM _tag_pairs x JOIN customer c ON c.id = x.customer_id AND c.brand_id = :b "
        f"WHERE x.tag_id IN ({brand_tags})"
    )
    has = "SELECT 1 FROM customer_tag ct WHERE ct.customer_id = l.customer_id AND ct.tag_id = l.tag_id"
    conn.execute(text("DROP TABLE IF EXISTS _tag_do"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE _tag_do AS SELECT l.customer_id, l.tag_id FROM ({live}) l "
            f"WHERE {'NOT ' if action == 'added' else ''}EXISTS ({has})"
        ),
        p,
    )
    conn.execute(text("CREATE INDEX ix_tag_do ON _tag_do (customer_id, tag_id)"))
    n = int(conn.execute(text("SELECT count(*) FROM _tag_do")).scalar_one())
    if n:
        if action == "added":
            conn.execute(
                _timed(
                    "INSERT INTO customer_tag (customer_id, tag_id, added_at, added_by, source, "
                    "changed_at) SELECT customer_id, tag_id, :now, :by, :src, :now FROM _tag_do"
                ),
                p,
            )
        else:
            conn.execute(
                text(
                    "DELETE FROM customer_tag WHERE (customer_id, tag_id) IN "
                    "(SELECT customer_id, tag_id FROM _tag_do)"
                )
            )
        described = (
            "FROM _tag_do d JOIN tag t ON t.id = d.tag_id JOIN tag_group g ON g.id = t.group_id"
        )
        conn.execute(
            _timed(
                "INSERT INTO customer_tag_history (brand_id, customer_id, tag_id, tag_name, "
                'action, "by", source, change_no, at) SELECT :b, d.customer_id, d.tag_id, '
                f"g.name || '/' || t.name, :act, :by, :src, t.change_no, :now {described}"
            ),
            p,
        )
        pg = conn.dialect.name == "postgresql"
        obj = "json_build_object" if pg else "json_object"
        kind = f"tag.{action}"
        conn.execute(
            _timed(
                "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
                f"recorded_at, payload) SELECT :b, '{kind}', '{kind}:' || "
                "CAST(d.tag_id AS VARCHAR(20)) || ':' || CAST(d.customer_id AS VARCHAR(20)) || "
                "':' || CAST(t.change_no AS VARCHAR(20)), d.customer_id, :now, :now, "
                f"{obj}('tag_id', d.tag_id, 'tag', t.name, 'group', g.name, 'by', "
                f"CAST(:by AS VARCHAR(100)), 'source', CAST(:src AS VARCHAR(16)), "
                f"'change', t.change_no) {described}"
            ),
            p,
        )
    conn.execute(text("DROP TABLE IF EXISTS _tag_do"))
    conn.execute(text("DROP TABLE IF EXISTS _tag_pairs"))
    return n


# ----- one customer's tags ------------------------------------------------------------------


def customer_tags(conn: Connection, *, customer_id: int) -> list[dict[str, Any]]:
    """The customer's tags now: group, name, kind, when and by whom (and how) each was added."""
    rows = conn.execute(
        text(
            "SELECT t.id, g.name, t.name, t.kind, ct.added_at, ct.added_by, ct.source "
            "FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
            "JOIN tag_group g ON g.id = t.group_id WHERE ct.customer_id = :c "
            "ORDER BY g.sort_order, g.name, t.sort_order, t.name"
        ),
        {"c": customer_id},
    )
    keys = ("tag_id", "group", "name", "kind", "added_at", "added_by", "source")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:
        r["added_at"] = _instant(r["added_at"])
    return out


def customer_history(
    conn: Connection, *, customer_id: int, limit: int = 50
) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            'SELECT at, tag_name, action, "by", source FROM customer_tag_history '
            "WHERE customer_id = :c ORDER BY at DESC, id DESC LIMIT :n"
        ),
        {"c": customer_id, "n": limit},
    )
    keys = ("at", "tag", "action", "by", "source")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for r in out:
        r["at"] = _instant(r["at"])
    return out


def _instant(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
