"""Everything Siyu holds about one person, as one JSON document (PIPL 查阅复制权, SPEC §12).

The sections follow the tables that name a customer (by id, or by an identifier that resolves
to them — siyu.identity.facts.FACT_REFERENCES): identities with their sources, the merge
history, connections (WeCom friendships, groups, official-account follows), orders and their
items, memberships, referrals, tags and their history, consent (opt-outs), messages (outbox
rows, deliveries, staff tasks, SOP journeys), events, interactions, surveys, segment stays,
the daily lifecycle snapshots (from the warehouse) and WeCom's copy of the contact.

Personal data is stored sealed or as lookup hashes (siyu.pii); the document carries it clear:
names opened, and every phone or email a row names by its hash replaced by the person's value.
WeCom's copy of a contact keeps only a hash of the name, which is left out.

Another person is named only by customer id (the other side of a referral), never by their
identifiers. Coupons have no table in Siyu yet; when they do, they belong here.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import duckdb
from sqlalchemy import JSON, Connection, bindparam, text

from siyu import pii
from siyu.db import UTCDateTime
from siyu.lifecycle import service as lifecycle

FORMAT = "siyu.customer-export/1"

# A fact joined to the identifier it names, so it belongs to whoever that value resolves to.
_VIA = "JOIN identifier i ON i.brand_id = {t}.brand_id AND i.id_type = {t}.id_type " \
       "AND i.value = {t}.id_value AND i.customer_id IN :ids"  # fmt: skip


def _rows(conn: Connection, sql: str, params: dict[str, Any], *, times: tuple[str, ...] = (),
          json_cols: tuple[str, ...] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of a query as dicts, its timestamp and JSON columns typed on either engine."""
    stmt = text(sql)
    if "ids" in params:
        stmt = stmt.bindparams(bindparam("ids", expanding=True))
    types = {c: UTCDateTime() for c in times} | {c: JSON() for c in json_cols}
    if types:
        stmt = stmt.columns(**types)  # type: ignore[assignment]
    return [dict(r) for r in conn.execute(stmt, params).mappings()]


def export(
    conn: Connection,
    *,
    brand_id: int,
    customer_id: int,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, Any]:
    """The document for the live customer `customer_id` (and the ids merged into it)."""
    b: dict[str, Any] = {"b": brand_id, "c": customer_id}
    merged = [
        int(i)
        for i in conn.execute(
            text("SELECT id FROM customer WHERE brand_id = :b AND merged_into_id = :c"), b
        ).scalars()
    ]
    ids = [customer_id, *merged]
    p = {**b, "ids": ids}
    (customer,) = _rows(
        conn, "SELECT id, created_at, name_sealed, gender, birthday, city, erased_at FROM customer "
        "WHERE brand_id = :b AND id = :c", b, times=("created_at", "erased_at"),
    )  # fmt: skip
    records = _rows(
        conn, "SELECT id, record_key, source, name_sealed, gender, birthday, city, created_at, "
        "updated_at FROM source_record WHERE brand_id = :b AND customer_id IN :ids ORDER BY id",
        p, times=("created_at", "updated_at"),
    )  # fmt: skip
    carried = _rows(
        conn, "SELECT ri.record_id, i.id_type, i.value, i.status FROM record_identity ri "
        "JOIN identifier i ON i.id = ri.identifier_id JOIN source_record r ON r.id = ri.record_id "
        "WHERE r.brand_id = :b AND r.customer_id IN :ids ORDER BY ri.record_id, i.id_type", p,
    )  # fmt: skip
    for rec in records:
        rec["identifiers"] = [
            {"type": x["id_type"], "value": x["value"], "status": x["status"]}
            for x in carried
            if x["record_id"] == rec["id"]
        ]
    doc: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": datetime.now(UTC),
        "customer": {**customer, "merged_ids": merged},
        "identities": {
            "records": records,
            "identifiers": _rows(
                conn,
                "SELECT id_type, value, status FROM identifier WHERE brand_id = :b "
                "AND customer_id IN :ids ORDER BY id_type, value",
                p,
            ),
            "merges": _rows(
                conn,
                "SELECT kind, survivor_id, other_id, created_at, reason FROM customer_merge "
                "WHERE brand_id = :b AND (survivor_id IN :ids OR other_id IN :ids) ORDER BY id",
                p,
                times=("created_at",),
            ),
        },  # fmt: skip
        "connections": _rows(
            conn,
            "SELECT c.kind, c.id_type, c.id_value, s.code AS staff, s.name AS staff_name, "
            "g.code AS group_code, g.name AS group_name, ch.code AS channel, c.created_at, "
            "c.ended_at, c.ended_by, c.state FROM connection c "
            + _VIA.format(t="c")
            + " LEFT JOIN staff s ON s.id = c.staff_id LEFT JOIN chat_group g ON g.id = c.group_id "
            "LEFT JOIN channel ch ON ch.id = c.channel_id WHERE c.brand_id = :b "
            "ORDER BY c.created_at, c.id",
            p,
            times=("created_at", "ended_at"),
        ),  # fmt: skip
        "orders": _orders(conn, p),
        "memberships": _rows(
            conn,
            "SELECT m.member_no, m.joined_at, m.level, m.points FROM membership m "
            "JOIN identifier i ON i.brand_id = m.brand_id AND i.id_type = 'member_no' "
            "AND i.value = m.member_no AND i.customer_id IN :ids WHERE m.brand_id = :b "
            "ORDER BY m.joined_at",
            p,
            times=("joined_at",),
        ),  # fmt: skip
        "referrals": _referrals(conn, p),
        "tags": {
            "current": _rows(
                conn,
                "SELECT g.name AS tag_group, t.name AS tag, ct.added_at, ct.added_by, "
                "ct.source FROM customer_tag ct JOIN tag t ON t.id = ct.tag_id "
                "JOIN tag_group g ON g.id = t.group_id WHERE ct.customer_id IN :ids "
                "ORDER BY g.name, t.name",
                p,
                times=("added_at",),
            ),
            "history": _rows(
                conn,
                'SELECT at, tag_name AS tag, action, "by", source FROM '
                "customer_tag_history WHERE brand_id = :b AND customer_id IN :ids "
                "ORDER BY at, id",
                p,
                times=("at",),
            ),
        },  # fmt: skip
        "consent": {
            "opt_outs": _rows(
                conn,
                "SELECT o.channel, o.id_type, o.id_value, o.created_at FROM opt_out o "
                + _VIA.format(t="o")
                + " WHERE o.brand_id = :b ORDER BY o.created_at",
                p,
                times=("created_at",),
            ),
        },  # fmt: skip
        "messages": {
            "outbox": _rows(
                conn,
                "SELECT dedup_key, adapter, status, payload, created_at, done_at, error "
                "FROM outbox WHERE brand_id = :b AND customer_id IN :ids ORDER BY id",
                p,
                times=("created_at", "done_at"),
                json_cols=("payload",),
            ),
            "deliveries": _rows(
                conn,
                "SELECT d.channel, d.status, d.created_at, d.id_type, d.id_value "
                "FROM delivery d " + _VIA.format(t="d") + " WHERE d.brand_id = :b "
                "ORDER BY d.created_at",
                p,
                times=("created_at",),
            ),
            "staff_tasks": _rows(
                conn,
                "SELECT s.code AS staff, k.title, k.body, k.status, k.due_at, k.created_at, "
                "k.done_at, k.sop_key FROM staff_task k JOIN staff s ON s.id = k.staff_id "
                "WHERE k.brand_id = :b AND k.customer_id IN :ids ORDER BY k.id",
                p,
                times=("due_at", "created_at", "done_at"),
            ),
            "sop_journeys": _rows(
                conn,
                "SELECT s.key AS sop, e.version, e.occurrence, e.status, e.holdout, "
                "e.enrolled_at, e.note FROM sop_enrollment e JOIN sop s ON s.id = e.sop_id "
                "WHERE e.brand_id = :b AND e.customer_id IN :ids ORDER BY e.id",
                p,
                times=("enrolled_at",),
            ),
        },  # fmt: skip
        "events": _rows(
            conn,
            "SELECT type, idempotency_key, occurred_at, recorded_at, payload FROM event "
            "WHERE brand_id = :b AND customer_id IN :ids ORDER BY occurred_at, id",
            p,
            times=("occurred_at", "recorded_at"),
            json_cols=("payload",),
        ),  # fmt: skip
        "interactions": _rows(
            conn,
            "SELECT x.kind, x.created_at FROM interaction x "
            + _VIA.format(t="x")
            + " WHERE x.brand_id = :b ORDER BY x.created_at",
            p,
            times=("created_at",),
        ),  # fmt: skip
        "surveys": _rows(
            conn,
            "SELECT x.score, x.created_at FROM survey_response x "
            + _VIA.format(t="x")
            + " WHERE x.brand_id = :b ORDER BY x.created_at",
            p,
            times=("created_at",),
        ),  # fmt: skip
        "segments": _rows(
            conn,
            "SELECT s.name AS segment, m.entered_at, m.exited_at FROM segment_member m "
            "JOIN segment s ON s.id = m.segment_id WHERE s.brand_id = :b "
            "AND m.customer_id IN :ids ORDER BY m.entered_at, m.id",
            p,
            times=("entered_at", "exited_at"),
        ),  # fmt: skip
        "lifecycle": _lifecycle(warehouse, brand_id, ids),
        "wecom": _wecom(conn, p),
        "erasures": _rows(
            conn,
            "SELECT erased_at, actor, reason FROM customer_erasure WHERE brand_id = :b "
            "AND customer_id = :c ORDER BY id",
            b,
            times=("erased_at",),
        ),  # fmt: skip
    }
    return _opened(conn, doc, brand_id, ids)


def _opened(conn: Connection, doc: Any, brand_id: int, ids: list[int]) -> Any:
    """`doc` with its personal data clear: `name_sealed` opened into `name`, sealed payload
    fields opened, and hashed phones / emails (an identifier's value, a fact's `id_value`, a
    reference record's key) replaced by the person's own values."""
    ring = pii.keyring(conn)
    clear: dict[tuple[str, str], str] = {
        (t, v): ring.open_(sealed)
        for t, v, sealed in conn.execute(
            text("SELECT id_type, value, value_sealed FROM identifier WHERE brand_id = :b "
                 "AND value_sealed IS NOT NULL AND (customer_id IN :ids OR id IN (SELECT "
                 "ri.identifier_id FROM record_identity ri JOIN source_record r ON "
                 "r.id = ri.record_id WHERE r.brand_id = :b AND r.customer_id IN :ids))")
            .bindparams(bindparam("ids", expanding=True)),
            {"b": brand_id, "ids": ids},
        )
    }  # fmt: skip

    def value(kind: Any, v: Any) -> Any:
        return clear.get((kind, v), v) if isinstance(v, str) else v

    def walk(x: Any) -> Any:
        if isinstance(x, list):
            return [walk(i) for i in x]
        if not isinstance(x, dict):
            return x
        out: dict[str, Any] = {}
        for k, v in x.items():
            if k == "name_sealed":
                out["name"] = ring.open_or_none(v)
            elif k == "payload" and isinstance(v, dict) and pii.has_sealed(v):
                out[k] = pii.unsealed(ring, v)
            elif k.endswith("value") and (kind := _kind_of(x, k)) is not None:
                out[k] = value(kind, v)
            elif k == "record_key" and isinstance(v, str) and v.startswith("ref:"):
                kind, _, rest = v[4:].partition(":")
                out[k] = f"ref:{kind}:{value(kind, rest)}"
            else:
                out[k] = walk(v)
        return out

    return walk(doc)


def _kind_of(row: dict[str, Any], key: str) -> str | None:
    """The identifier type beside value column `key` (`id_value` → `id_type`, `value` →
    `type` or `id_type`)."""
    prefix = key[: -len("value")]
    kind = row.get(prefix + "type") or (row.get("id_type") if key == "value" else None)
    return kind if isinstance(kind, str) else None


def _orders(conn: Connection, p: dict[str, Any]) -> list[dict[str, Any]]:
    orders = _rows(
        conn, 'SELECT o.id, o.order_key, o.platform, st.code AS store, o.created_at, '
        'o.amount_fen, o.refund_fen, o.status, o.id_type, o.id_value FROM "order" o '
        + _VIA.format(t="o") + " LEFT JOIN store st ON st.id = o.store_id "
        "WHERE o.brand_id = :b ORDER BY o.created_at, o.id", p, times=("created_at",),
    )  # fmt: skip
    if not orders:
        return []
    items = conn.execute(
        text("SELECT oi.order_id, oi.sku, pr.name, oi.qty, oi.amount_fen FROM order_item oi "
             "LEFT JOIN product pr ON pr.brand_id = :b AND pr.sku = oi.sku "
             "WHERE oi.order_id IN :o ORDER BY oi.order_id, oi.sku")
        .bindparams(bindparam("o", expanding=True)),
        {"b": p["b"], "o": [o["id"] for o in orders]},
    ).all()  # fmt: skip
    for o in orders:
        o["items"] = [
            {"sku": sku, "product": name, "qty": qty, "amount_fen": amount}
            for oid, sku, name, qty, amount in items
            if oid == o["id"]
        ]
        del o["id"]
    return orders


def _referrals(conn: Connection, p: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Referrals the person made or came through; the other side by customer id only."""
    base = (
        "SELECT r.created_at, other.customer_id AS {other}_customer_id FROM referral r "
        "JOIN identifier me ON me.brand_id = r.brand_id AND me.id_type = r.{me}_id_type "
        " AND me.value = r.{me}_id_value AND me.customer_id IN :ids "
        "LEFT JOIN identifier other ON other.brand_id = r.brand_id "
        " AND other.id_type = r.{other}_id_type AND other.value = r.{other}_id_value "
        "WHERE r.brand_id = :b ORDER BY r.created_at"
    )
    return {
        "as_referrer": _rows(conn, base.format(me="referrer", other="invitee"), p,
                             times=("created_at",)),
        "as_invitee": _rows(conn, base.format(me="invitee", other="referrer"), p,
                            times=("created_at",)),
    }  # fmt: skip


def _wecom(conn: Connection, p: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """WeCom's copy of the contact (unionid, gender) and its corp tags per staff member."""
    mine = (
        "SELECT value FROM identifier WHERE brand_id = :b AND id_type = 'external_userid' "
        "AND customer_id IN :ids"
    )
    return {
        "contacts": _rows(
            conn, "SELECT external_userid, unionid, gender, updated_at FROM "
            f"wecom_external_contact WHERE brand_id = :b AND external_userid IN ({mine})", p,
            times=("updated_at",),
        ),
        "corp_tags": _rows(
            conn, "SELECT user_id AS staff_userid, external_userid, wecom_tag_id, added_at "
            f"FROM wecom_contact_tag WHERE brand_id = :b AND external_userid IN ({mine})", p,
            times=("added_at",),
        ),
    }  # fmt: skip


def _lifecycle(
    con: duckdb.DuckDBPyConnection | None, brand_id: int, ids: list[int]
) -> list[dict[str, Any]] | None:
    """The daily snapshots (`siyu lifecycle`) of the customer; None without a warehouse."""
    if con is None:
        return None
    lifecycle.ensure_table(con)
    cols = ["as_of", *(n for n, _ in lifecycle.COLUMNS)]
    rows = con.execute(
        f"SELECT {', '.join(cols)} FROM {lifecycle.SNAPSHOT} WHERE brand_id = ? "
        "AND list_contains(?, customer_id) ORDER BY as_of",
        [brand_id, ids],
    ).fetchall()
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(doc: dict[str, Any]) -> str:
    """The document as JSON text (UTF-8, Chinese as written, instants in UTC ISO 8601)."""
    return json.dumps(doc, ensure_ascii=False, indent=2, default=_default)
