"""What the warehouse copies from the operational store, table by table.

Each mirror names its operational table, the columns it keeps (with their DuckDB types), and
how it is kept fresh: small reference tables are copied whole on every sync; facts and
identifiers are copied incrementally by their change stamp (siyu.db.Tracked). Facts that name a
customer by identifier (`id_type`, `id_value`) get a `customer_id` column in the warehouse,
resolved through the identifiers table, so every fact is keyed by customer (issue #4).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Col:
    name: str
    type: str  # DuckDB type
    source: str | None = None  # operational column, default: the same name

    @property
    def src(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Ref:
    """A customer reference to resolve: identifier columns -> customer column."""

    id_type: str
    id_value: str
    customer: str


@dataclass(frozen=True)
class Mirror:
    name: str
    table: str  # operational table
    cols: tuple[Col, ...]
    key: tuple[str, ...]
    stamp: str | None = None  # change-stamp column; None = copied whole each sync
    refs: tuple[Ref, ...] = field(default_factory=tuple)
    brand_scoped: bool = True  # the operational table has brand_id
    # Keys of rows deleted upstream since `:since` (brand `:brand_id`): an incremental sync drops
    # them before copying what changed, so a deletion does not wait for a full sync.
    removed: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cols) + tuple(r.customer for r in self.refs)


def _c(name: str, type_: str, source: str | None = None) -> Col:
    return Col(name, type_, source)


ID = _c("id", "BIGINT")
BRAND = _c("brand_id", "BIGINT")
REF = (_c("id_type", "VARCHAR"), _c("id_value", "VARCHAR"))
CUSTOMER = Ref("id_type", "id_value", "customer_id")
TS = "TIMESTAMPTZ"

MIRRORS: tuple[Mirror, ...] = (
    Mirror(
        "stores",
        "store",
        (
            ID,
            BRAND,
            _c("code", "VARCHAR"),
            _c("name", "VARCHAR"),
            _c("region", "VARCHAR"),
            _c("city", "VARCHAR"),
            _c("lat", "DOUBLE"),
            _c("lon", "DOUBLE"),
            _c("radius_m", "INTEGER"),
        ),
        ("id",),
    ),
    Mirror(
        "staff",
        "staff",
        (
            ID,
            BRAND,
            _c("code", "VARCHAR"),
            _c("name", "VARCHAR"),
            _c("store_id", "BIGINT"),
            _c("persona", "VARCHAR"),
        ),
        ("id",),
    ),
    Mirror(
        "groups",
        "chat_group",
        (
            ID,
            BRAND,
            _c("code", "VARCHAR"),
            _c("name", "VARCHAR"),
            _c("owner_staff_id", "BIGINT"),
            _c("store_id", "BIGINT"),
            _c("created_at", TS),
        ),
        ("id",),
    ),
    Mirror(
        "channels",
        "channel",
        (ID, BRAND, _c("code", "VARCHAR"), _c("name", "VARCHAR"), _c("type", "VARCHAR")),
        ("id",),
    ),
    Mirror(
        "products",
        "product",
        (
            ID,
            BRAND,
            _c("sku", "VARCHAR"),
            _c("name", "VARCHAR"),
            _c("category", "VARCHAR"),
            _c("price_fen", "BIGINT"),
            _c("ladder_role", "VARCHAR"),
        ),
        ("id",),
    ),
    Mirror(
        "customers",
        "customer",
        (
            ID,
            BRAND,
            _c("created_at", TS),
            _c("merged_into_id", "BIGINT"),
            _c("name_sealed", "VARCHAR"),  # siyu.pii: opened by siyu_pii_open where shown
            _c("gender", "VARCHAR"),
            _c("birthday", "DATE"),
            _c("city", "VARCHAR"),
            _c("erased_at", TS),
        ),
        ("id",),
        stamp="updated_at",
    ),
    Mirror(
        "identifiers",
        "identifier",
        (
            ID,
            BRAND,
            _c("id_type", "VARCHAR"),
            _c("value", "VARCHAR"),  # a phone's or email's lookup hash (siyu.pii)
            _c("value_sealed", "VARCHAR"),
            _c("customer_id", "BIGINT"),
            _c("status", "VARCHAR"),
        ),
        ("id",),
        stamp="changed_at",
        # An erasure deletes the person's identifier rows (siyu.privacy.erase); its feed drops
        # them here on the next sync, not only on a full one.
        removed=(
            "SELECT identifier_id FROM erased_identifier "
            "WHERE brand_id = :brand_id AND erased_at >= :since"
        ),
    ),
    Mirror(
        "orders",
        '"order"',
        (
            ID,
            BRAND,
            _c("order_key", "VARCHAR"),
            _c("platform", "VARCHAR"),
            _c("store_id", "BIGINT"),
            *REF,
            _c("created_at", TS),
            _c("amount_fen", "BIGINT"),
            _c("status", "VARCHAR"),
            _c("refund_fen", "BIGINT"),
        ),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    Mirror(
        "order_items",
        "order_item",
        (
            _c("order_id", "BIGINT"),
            _c("sku", "VARCHAR"),
            _c("qty", "INTEGER"),
            _c("amount_fen", "BIGINT"),
        ),
        ("order_id", "sku"),
        stamp="changed_at",
        brand_scoped=False,
    ),
    Mirror(
        "connections",
        "connection",
        (
            ID,
            BRAND,
            _c("kind", "VARCHAR"),
            *REF,
            _c("staff_id", "BIGINT"),
            _c("group_id", "BIGINT"),
            _c("channel_id", "BIGINT"),
            _c("created_at", TS),
            _c("ended_at", TS),
            _c("ended_by", "VARCHAR"),
        ),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    Mirror(
        "channel_costs",
        "channel_cost",
        (_c("channel_id", "BIGINT"), _c("day", "DATE"), _c("cost_fen", "BIGINT")),
        ("channel_id", "day"),
        stamp="changed_at",
        brand_scoped=False,
    ),
    Mirror(
        "channel_reach",
        "channel_reach",
        (_c("channel_id", "BIGINT"), _c("day", "DATE"), _c("count", "BIGINT")),
        ("channel_id", "day"),
        stamp="changed_at",
        brand_scoped=False,
    ),
    Mirror(
        "memberships",
        "membership",
        (
            ID,
            BRAND,
            _c("member_no", "VARCHAR"),
            _c("joined_at", TS),
            _c("level", "VARCHAR"),
            _c("points", "BIGINT"),
        ),
        ("id",),
        stamp="changed_at",
        refs=(Ref("'member_no'", "member_no", "customer_id"),),
    ),
    Mirror(
        "referrals",
        "referral",
        (
            ID,
            BRAND,
            _c("referrer_id_type", "VARCHAR"),
            _c("referrer_id_value", "VARCHAR"),
            _c("invitee_id_type", "VARCHAR"),
            _c("invitee_id_value", "VARCHAR"),
            _c("created_at", TS),
        ),
        ("id",),
        stamp="changed_at",
        refs=(
            Ref("referrer_id_type", "referrer_id_value", "referrer_customer_id"),
            Ref("invitee_id_type", "invitee_id_value", "invitee_customer_id"),
        ),
    ),
    Mirror(
        "deliveries",
        "delivery",
        (ID, BRAND, *REF, _c("channel", "VARCHAR"), _c("created_at", TS), _c("status", "VARCHAR")),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    Mirror(
        "interactions",
        "interaction",
        (ID, BRAND, *REF, _c("kind", "VARCHAR"), _c("created_at", TS)),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    Mirror(
        "surveys",
        "survey_response",
        (ID, BRAND, *REF, _c("created_at", TS), _c("score", "INTEGER")),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    Mirror(
        "opt_outs",
        "opt_out",
        (ID, BRAND, *REF, _c("channel", "VARCHAR"), _c("created_at", TS)),
        ("id",),
        stamp="changed_at",
        refs=(CUSTOMER,),
    ),
    # Tags with their group's brand and name (tag rows carry no brand of their own), so segment
    # rules can name a tag; small, copied whole.
    Mirror(
        "tags",
        "(SELECT t.id, g.brand_id, g.name AS group_name, t.name, t.kind "
        "FROM tag t JOIN tag_group g ON g.id = t.group_id) tag_with_group",
        (
            ID,
            BRAND,
            _c("group_name", "VARCHAR"),
            _c("name", "VARCHAR"),
            _c("kind", "VARCHAR"),
        ),
        ("id",),
    ),
    Mirror(
        "customer_tags",
        "customer_tag",
        (
            _c("customer_id", "BIGINT"),
            _c("tag_id", "BIGINT"),
            _c("added_at", TS),
            _c("added_by", "VARCHAR"),
        ),
        ("customer_id", "tag_id"),
        stamp="changed_at",
        brand_scoped=False,
        # Every untagging writes history (siyu.tags.service); a pair tagged again since comes
        # back with the rows copied after the drop.
        removed=(
            "SELECT DISTINCT customer_id, tag_id FROM customer_tag_history "
            "WHERE brand_id = :brand_id AND action = 'removed' AND at >= :since"
        ),
    ),
)

BY_NAME = {m.name: m for m in MIRRORS}
