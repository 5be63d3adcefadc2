"""How each interchange file lands in the operational store (DATA_FORMAT.md, file by file)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
from sqlalchemy import Connection, Table, text

from siyu import pii
from siyu.automation.models import Delivery
from siyu.bulk import bulk_load
from siyu.channels.models import Channel, ChannelCost, ChannelReach
from siyu.communities.models import ChatGroup
from siyu.connections.models import Connection as ConnectionRow
from siyu.consent.models import OptOut
from siyu.events.models import Interaction, SurveyResponse
from siyu.identity.models import IDENTITY_TYPES, Identifier, RecordIdentity, SourceRecord
from siyu.imports import protect
from siyu.imports import upsert as up
from siyu.imports.specs import FileSpec, Ref
from siyu.imports.validate import Check, _lit, raw, ref_value
from siyu.membership.models import Membership
from siyu.orders.models import Order, OrderItem, Product
from siyu.orgs.models import Store
from siyu.privacy import blocks
from siyu.referral.models import Referral
from siyu.staff.models import Staff


@dataclass
class Applied:
    inserted: int
    updated: int
    late_rejects: list[tuple[int, str, str | None, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Context:
    duck: duckdb.DuckDBPyConnection
    conn: Connection
    brand_id: int
    now: datetime
    source: str  # the validated DuckDB table, personal values hashed (siyu.imports.protect)
    spec: FileSpec
    ring: pii.Keyring

    def add_identifiers(self, source: str) -> None:
        """Identifiers (hash + sealed value) for the phones and emails facts of `source` name."""
        protect.add_identifiers(
            self.duck, self.conn, self.ring, spec=self.spec, source=source,
            brand_id=self.brand_id, now=self.now,
        )  # fmt: skip


def ref_checks(spec: FileSpec) -> list[Check]:
    """A code that names no store / staff / channel / group is a row-level reject."""
    checks = [_ref_check(r) for r in spec.refs]
    t = {n: raw(n) for n in spec.column_names}
    if spec.name == "connections":
        checks += [
            Check(
                "staff_id",
                f"lower({t['kind']}) = 'wecom_friend' AND {t['staff_id']} IS NULL",
                _lit("staff_id is required for a wecom_friend connection"),
            ),
            Check(
                "group_id",
                f"lower({t['kind']}) = 'group_member' AND {t['group_id']} IS NULL",
                _lit("group_id is required for a group_member connection"),
            ),
            Check(
                "ended_at",
                "TRY_CAST(ended_at AS TIMESTAMPTZ) < TRY_CAST(created_at AS TIMESTAMPTZ)",
                _lit("ended_at is before created_at"),
            ),
        ]
    if spec.name == "orders":
        checks.append(
            Check(
                "refund_fen",
                "TRY_CAST(refund_fen AS BIGINT) > TRY_CAST(amount_fen AS BIGINT)",
                _lit("refund_fen is larger than amount_fen"),
            )
        )
    if spec.name == "referrals":
        checks.append(
            Check(
                "invitee_id_value",
                "lower(referrer_id_type) = lower(invitee_id_type) AND "
                "siyu_normalize_identifier(lower(referrer_id_type), referrer_id_value) = "
                "siyu_normalize_identifier(lower(invitee_id_type), invitee_id_value)",
                _lit("a customer cannot refer themselves"),
            )
        )
    return checks


def _ref_check(r: Ref) -> Check:
    v = raw(r.column)
    return Check(
        r.column,
        f"{v} IS NOT NULL AND {v} NOT IN (SELECT code FROM ref_{r.table})",
        f"'unknown {r.column} ' || {v} || ' (not in {r.file})'",
    )


def erasure_checks(spec: FileSpec) -> list[Check]:
    """A row carrying an erased person's identifier or source-record key is rejected
    (siyu.privacy.blocks: re-collection needs fresh consent, not a re-sent file). The reject
    report names the file, line and column but not the value: writing it would store the
    erased person's data again."""

    def erased(column: str, condition: str) -> Check:
        return Check(column, condition, _lit(blocks.REASON), shown="NULL")

    checks: list[Check] = []
    if spec.name == "records":
        checks.append(erased("record_id", f"siyu_erased('record', {raw('record_id')})"))
        checks += [
            erased(t, f"siyu_erased('{t}', siyu_normalize_identifier('{t}', {raw(t)}))")
            for t in IDENTITY_TYPES
        ]
    if spec.name == "memberships":
        checks.append(erased("member_no", f"siyu_erased('member_no', {raw('member_no')})"))
    for prefix in spec.customer_refs:
        kind = f"lower({raw(prefix + 'id_type')})"
        checks.append(erased(f"{prefix}id_value", f"siyu_erased({kind}, {ref_value(prefix)})"))
    return checks


def load_ref_maps(duck: duckdb.DuckDBPyConnection, conn: Connection, brand_id: int) -> int:
    """Copy the (small) code → id maps of stores, staff, channels and groups into DuckDB, and
    the erasure list; the number of entries on that list."""
    for table in ("store", "staff", "channel", "chat_group"):
        rows = conn.execute(
            text(f"SELECT code, id FROM {table} WHERE brand_id = :b"), {"b": brand_id}
        ).fetchall()
        duck.execute(
            f"CREATE OR REPLACE TABLE ref_{table} AS SELECT unnest($c::VARCHAR[]) AS code, "
            "unnest($i::BIGINT[]) AS id",
            {"c": [r[0] for r in rows], "i": [r[1] for r in rows]},
        )
    return blocks.load_for_import(duck, conn, brand_id)


def _code(col: str, table: str) -> str:
    return f"(SELECT id FROM ref_{table} WHERE code = {col})"


def _simple(
    target: Table,
    cols: list[up.StageCol],
    key: list[str],
) -> Callable[[Context], Applied]:
    def apply(ctx: Context) -> Applied:
        constants: dict[str, object] = {}
        if "brand_id" in target.c:
            constants["brand_id"] = ctx.brand_id
        source, staged_cols, fresh = ctx.source, cols, False
        if up.HASH in target.c and "brand_id" in target.c:
            where = f'FROM "{target.name}" WHERE brand_id = :b'
            source = up.pending(
                ctx.duck,
                ctx.conn,
                ctx.source,
                up.hashed(cols),
                f"SELECT {up.HASH} {where} AND {up.HASH} IS NOT NULL",
                ctx.brand_id,
            )
            if up.count(ctx.duck, source) == 0:
                return Applied(0, 0)
            staged_cols = [*cols, up.integer(up.HASH)]
            fresh = not up.brand_has_rows(ctx.conn, where, ctx.brand_id)
        ctx.add_identifiers(source)
        if fresh:
            if "changed_at" in target.c:
                constants["changed_at"] = ctx.now
            by_key = [c.expr for c in cols if c.name in key]
            n = up.insert_direct(
                ctx.duck,
                ctx.conn,
                target,
                staged_cols,
                source,
                constants=constants,
                order_by=by_key,
            )
            return Applied(n, 0)
        staged = up.stage(ctx.duck, ctx.conn, f"stage_{target.name}", staged_cols, source)
        ins, upd = up.upsert(
            ctx.conn,
            target,
            staged,
            key=key,
            columns=[c.name for c in staged_cols],
            constants=constants,
            now=ctx.now,
        )
        return Applied(ins, upd)

    return apply


def _row_key(*exprs: str) -> str:
    """md5 of a fact's natural key: nullable parts can't sit in a composite unique index."""
    parts = ", ".join(f"coalesce(CAST({e} AS VARCHAR), '')" for e in exprs)
    return f"md5(concat_ws('|', {parts}))"


def _fact(
    target: Table, cols: list[up.StageCol], key_exprs: list[str]
) -> Callable[[Context], Applied]:
    return _simple(target, [up.text("row_key", _row_key(*key_exprs)), *cols], ["row_key"])


def _ref_cols(prefix: str = "") -> list[up.StageCol]:
    return [
        up.text(f"{prefix}id_type", f'"{prefix}id_type"'),
        up.text(f"{prefix}id_value", f'"{prefix}ref_value"'),
    ]


def apply_records(ctx: Context) -> Applied:
    """Records and the identifiers they carry; a changed identifier set counts as an update."""
    conn, b = ctx.conn, {"b": ctx.brand_id}
    # Phones and emails arrive hashed, the name with its hash (siyu.imports.protect): the row
    # hash and every comparison below see hashes; names are sealed for the rows stored.
    rec_cols = [
        up.text("record_key", "record_id"),
        up.text("source"),
        up.text("name_hash"),
        up.text("gender"),
        up.day("birthday"),
        up.text("city"),
    ]
    # One hash covers the record's fields and every identifier it carries.
    where = "FROM source_record WHERE brand_id = :b"
    source = up.pending(
        ctx.duck,
        conn,
        ctx.source,
        up.hashed(rec_cols, [f'"{t}"' for t in IDENTITY_TYPES]),
        f"SELECT {up.HASH} {where} AND {up.HASH} IS NOT NULL",
        ctx.brand_id,
    )
    if up.count(ctx.duck, source) == 0:
        return Applied(0, 0)
    fresh = not up.brand_has_rows(conn, where, ctx.brand_id)
    protect.seal_column(ctx.duck, ctx.ring, source, "name", "name_sealed")
    rec_cols += [up.text("name_sealed"), up.integer(up.HASH)]
    unpivot = " UNION ALL ".join(
        f"SELECT record_id, '{t}' AS id_type, \"{t}\" AS value, "
        + (f'"{t}{protect.CLEAR}"' if pii.is_pii(t) else "NULL::VARCHAR")
        + f' AS clear FROM {source} WHERE "{t}" IS NOT NULL'
        for t in IDENTITY_TYPES
    )
    ident = f"ident_{ctx.source}"
    ctx.duck.execute(f"CREATE OR REPLACE TABLE {ident} AS {unpivot}")
    protect.seal_column(ctx.duck, ctx.ring, ident, "clear", "sealed")
    ctx.duck.execute(
        f"CREATE OR REPLACE TABLE {ident} AS SELECT record_id, id_type, value, sealed, "
        f"{protect.tail_expr('id_type', 'clear')} AS tail FROM {ident}"
    )
    up.stage(
        ctx.duck,
        conn,
        "stage_ident",
        [
            up.text("record_key", "record_id"),
            up.text("id_type"),
            up.text("value"),
            up.text("sealed"),
            up.text("tail"),
        ],
        ident,
        order_by=["id_type", "value"],
    )
    n_ident = up.count(ctx.duck, ident)
    with bulk_load(conn, Identifier.__table__, n_ident if fresh else 0):
        conn.execute(
            text(
                "INSERT INTO identifier (brand_id, id_type, value, value_sealed, tail_hash, "
                "status, changed_at) "
                "SELECT DISTINCT :b, s.id_type, s.value, s.sealed, s.tail, 'linked', :now "
                "FROM stage_ident s WHERE NOT EXISTS (SELECT 1 FROM identifier i "
                "WHERE i.brand_id = :b AND i.id_type = s.id_type AND i.value = s.value)"
            ),
            {**b, "now": ctx.now},
        )
    if fresh:  # the brand's first records: nothing to compare, nothing to replace
        inserted = up.insert_direct(
            ctx.duck,
            conn,
            SourceRecord.__table__,
            rec_cols,
            source,
            constants={"brand_id": ctx.brand_id, "created_at": ctx.now, "updated_at": ctx.now},
            order_by=["record_id"],
        )
        with bulk_load(conn, RecordIdentity.__table__, n_ident):
            conn.execute(
                text(
                    "INSERT INTO record_identity (record_id, id_type, identifier_id) "
                    "SELECT r.id, s.id_type, i.id FROM stage_ident s"
                    " JOIN source_record r ON r.brand_id = :b AND r.record_key = s.record_key"
                    " JOIN identifier i ON i.brand_id = :b AND i.id_type = s.id_type"
                    " AND i.value = s.value"
                ),
                b,
            )
        return Applied(inserted, 0)
    staged = up.stage(ctx.duck, conn, "stage_records", rec_cols, source)
    conn.exec_driver_sql("CREATE INDEX ix_stage_ident_key ON stage_ident (record_key, id_type)")
    conn.execute(text("DROP TABLE IF EXISTS changed_records"))
    conn.execute(text("CREATE TEMPORARY TABLE changed_records (record_id BIGINT PRIMARY KEY)"))
    differs = " OR ".join(
        f"r.{c} IS DISTINCT FROM s.{c}"
        for c in ("source", "name_hash", "gender", "birthday", "city")
    )
    conn.execute(
        text(
            "INSERT INTO changed_records SELECT r.id FROM source_record r JOIN stage_records s "
            f"ON r.record_key = s.record_key WHERE r.brand_id = :b AND ({differs}) "
            "UNION SELECT r.id FROM stage_ident s "
            " JOIN source_record r ON r.brand_id = :b AND r.record_key = s.record_key"
            " JOIN identifier i ON i.brand_id = :b AND i.id_type = s.id_type AND i.value = s.value"
            " LEFT JOIN record_identity ri ON ri.record_id = r.id AND ri.id_type = s.id_type"
            " WHERE ri.identifier_id IS DISTINCT FROM i.id "
            "UNION SELECT ri.record_id FROM record_identity ri"
            " JOIN source_record r ON r.id = ri.record_id AND r.brand_id = :b"
            " JOIN stage_records sr ON sr.record_key = r.record_key"
            " WHERE NOT EXISTS (SELECT 1 FROM stage_ident s WHERE s.record_key = r.record_key"
            "  AND s.id_type = ri.id_type)"
        ),
        b,
    )
    updated = conn.execute(text("SELECT count(*) FROM changed_records")).scalar_one()
    inserted, _ = up.upsert(
        conn,
        SourceRecord.__table__,
        staged,
        key=["record_key"],
        columns=[c.name for c in rec_cols],
        constants={"brand_id": ctx.brand_id, "created_at": ctx.now},
        now=ctx.now,
        on_update={"updated_at": ctx.now},
        carried=("name_sealed",),  # sealed anew each time: compared through name_hash
    )
    conn.execute(
        text(
            "DELETE FROM record_identity WHERE record_id IN (SELECT record_id FROM changed_records)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO record_identity (record_id, id_type, identifier_id) "
            "SELECT r.id, s.id_type, i.id FROM stage_ident s"
            " JOIN source_record r ON r.brand_id = :b AND r.record_key = s.record_key"
            " JOIN identifier i ON i.brand_id = :b AND i.id_type = s.id_type AND i.value = s.value"
            " WHERE NOT EXISTS (SELECT 1 FROM record_identity ri WHERE ri.record_id = r.id"
            "  AND ri.id_type = s.id_type)"
        ),
        b,
    )
    # A record whose identifiers alone changed is changed too: the next identity pass starts
    # from the records updated since the last one.
    conn.execute(
        text(
            "UPDATE source_record SET updated_at = :now "
            "WHERE id IN (SELECT record_id FROM changed_records)"
        ),
        {"now": ctx.now},
    )
    return Applied(inserted, updated)


def apply_order_items(ctx: Context) -> Applied:
    """Items name their order by order_id; an order the store has never seen is a reject."""
    conn, b = ctx.conn, {"b": ctx.brand_id}
    cols = [
        up.integer("line", "_line"),
        up.text("order_key", "order_id"),
        up.text("sku"),
        up.integer("qty"),
        up.integer("amount_fen"),
    ]
    # The hash leaves out the file line: moving a row within the file changes nothing.
    where = 'FROM order_item i JOIN "order" o ON o.id = i.order_id WHERE o.brand_id = :b'
    source = up.pending(
        ctx.duck,
        conn,
        ctx.source,
        up.hashed(cols[1:]),
        f"SELECT i.{up.HASH} {where} AND i.{up.HASH} IS NOT NULL",
        ctx.brand_id,
    )
    if up.count(ctx.duck, source) == 0:
        return Applied(0, 0)
    fresh = not up.brand_has_rows(conn, where, ctx.brand_id)
    cols += [up.integer("order_id", "NULL::BIGINT"), up.integer(up.HASH)]
    staged = up.stage(ctx.duck, conn, "stage_items", cols, source, order_by=["order_id", "sku"])
    conn.execute(
        text(
            'UPDATE stage_items SET order_id = (SELECT o.id FROM "order" o WHERE o.brand_id = :b'
            " AND o.order_key = stage_items.order_key)"
        ),
        b,
    )
    missing = conn.execute(
        text("SELECT line, order_key FROM stage_items WHERE order_id IS NULL ORDER BY line")
    ).fetchall()
    conn.execute(text("DELETE FROM stage_items WHERE order_id IS NULL"))
    ins, upd = up.upsert(
        conn,
        OrderItem.__table__,
        staged,
        key=["order_id", "sku"],
        columns=["order_id", "sku", "qty", "amount_fen", up.HASH],
        constants={},
        now=ctx.now,
        fresh=fresh,
    )
    late = [
        (line, "order_id", key, f"unknown order_id {key} (not in orders)") for line, key in missing
    ]
    return Applied(ins, upd, late)


def apply_referrals(ctx: Context) -> Applied:
    """First touch (DATA_FORMAT.md): a stored referral changes only to an earlier touch."""
    cols = [*_ref_cols("referrer_"), *_ref_cols("invitee_"), up.timestamp("created_at")]
    ctx.add_identifiers(ctx.source)
    staged = up.stage(ctx.duck, ctx.conn, "stage_referrals", cols, ctx.source)
    target = Referral.__table__
    ins, upd = up.upsert(
        ctx.conn,
        target,
        staged,
        key=["invitee_id_type", "invitee_id_value"],
        columns=[c.name for c in cols],
        constants={"brand_id": ctx.brand_id},
        now=ctx.now,
        update_when=staged.c.created_at < target.c.created_at,
    )
    return Applied(ins, upd)


def _orders_refund() -> str:
    return "coalesce(refund_fen, CASE WHEN status = 'refunded' THEN amount_fen ELSE 0 END)"


APPLY: dict[str, Callable[[Context], Applied]] = {
    "stores": _simple(
        Store.__table__,
        [
            up.text("code", "store_id"),
            up.text("name"),
            up.text("region"),
            up.text("city"),
            up.number("lat"),
            up.number("lon"),
            up.integer("radius_m"),
        ],
        ["code"],
    ),
    "staff": _simple(
        Staff.__table__,
        [
            up.text("code", "staff_id"),
            up.text("name"),
            up.integer("store_id", _code("store_id", "store")),
            up.text("persona"),
            up.text("wecom_userid", "staff_id"),
        ],
        ["code"],
    ),
    "channels": _simple(
        Channel.__table__,
        [up.text("code", "channel_id"), up.text("name"), up.text("type")],
        ["code"],
    ),
    "groups": _simple(
        ChatGroup.__table__,
        [
            up.text("code", "group_id"),
            up.text("name"),
            up.integer("owner_staff_id", _code("owner_staff_id", "staff")),
            up.integer("store_id", _code("store_id", "store")),
            up.timestamp("created_at"),
        ],
        ["code"],
    ),
    "channel_costs": _simple(
        ChannelCost.__table__,
        [
            up.integer("channel_id", _code("channel_id", "channel")),
            up.day("day", "date"),
            up.integer("cost_fen"),
        ],
        ["channel_id", "day"],
    ),
    "channel_reach": _simple(
        ChannelReach.__table__,
        [
            up.integer("channel_id", _code("channel_id", "channel")),
            up.day("day", "date"),
            up.integer("count"),
        ],
        ["channel_id", "day"],
    ),
    "products": _simple(
        Product.__table__,
        [
            up.text("sku"),
            up.text("name"),
            up.text("category"),
            up.integer("price_fen"),
            up.text("ladder_role"),
        ],
        ["sku"],
    ),
    "records": apply_records,
    "memberships": _simple(
        Membership.__table__,
        [up.text("member_no"), up.timestamp("joined_at"), up.text("level"), up.integer("points")],
        ["member_no"],
    ),
    "connections": _fact(
        ConnectionRow.__table__,
        [
            up.text("kind"),
            *_ref_cols(),
            up.integer("staff_id", _code("staff_id", "staff")),
            up.integer("group_id", _code("group_id", "chat_group")),
            up.integer("channel_id", _code("channel_id", "channel")),
            up.timestamp("created_at"),
            up.timestamp("ended_at"),
        ],
        [
            "kind",
            "id_type",
            "ref_value",
            "staff_id",
            "group_id",
            "strftime(created_at, '%Y-%m-%dT%H:%M:%S.%f')",
        ],
    ),
    "orders": _simple(
        Order.__table__,
        [
            up.text("order_key", "order_id"),
            up.text("platform", "lower(platform)"),
            up.integer("store_id", _code("store_id", "store")),
            *_ref_cols(),
            up.timestamp("created_at"),
            up.integer("amount_fen"),
            up.text("status"),
            up.integer("refund_fen", _orders_refund()),
        ],
        ["order_key"],
    ),
    "order_items": apply_order_items,
    "referrals": apply_referrals,
    "deliveries": _fact(
        Delivery.__table__,
        [*_ref_cols(), up.text("channel"), up.timestamp("created_at"), up.text("status")],
        ["id_type", "ref_value", "channel", "created_at", "status"],
    ),
    "interactions": _fact(
        Interaction.__table__,
        [*_ref_cols(), up.text("kind"), up.timestamp("created_at")],
        ["id_type", "ref_value", "kind", "created_at"],
    ),
    "surveys": _fact(
        SurveyResponse.__table__,
        [*_ref_cols(), up.timestamp("created_at"), up.integer("score")],
        ["id_type", "ref_value", "created_at", "score"],
    ),
    "opt_outs": _fact(
        OptOut.__table__,
        [*_ref_cols(), up.text("channel", "NULL::VARCHAR"), up.timestamp("created_at")],
        ["id_type", "ref_value", "created_at"],
    ),
}
