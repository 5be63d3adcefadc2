"""The interchange format v1 (DATA_FORMAT.md) as data: files, columns, types, natural keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from siyu.identity.models import IDENTITY_TYPES
from siyu.orders.models import LADDER_ROLES, STATUSES
from siyu.staff.models import PERSONAS


@dataclass(frozen=True)
class Col:
    name: str
    kind: str  # text, int, count, money, float, timestamp, date, enum, id_type, identifier, score
    required: bool = False
    values: tuple[str, ...] = ()  # for enum / id_type
    lo: float | None = None  # for float
    hi: float | None = None


@dataclass(frozen=True)
class Ref:
    """A column that names a row of another file (store_id → stores)."""

    column: str
    table: str  # OLTP table holding the code
    code_column: str  # the code column there
    file: str  # the interchange file that defines it


@dataclass(frozen=True)
class FileSpec:
    name: str
    columns: tuple[Col, ...]
    key: tuple[str, ...]  # natural key; empty = all columns
    refs: tuple[Ref, ...] = ()
    customer_refs: tuple[str, ...] = ()  # prefixes of (id_type, id_value) pairs: "" or "referrer_"
    anonymous_allowed: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.key or self.column_names


def _ref_pair(prefix: str = "", required: bool = True) -> tuple[Col, Col]:
    return (
        Col(f"{prefix}id_type", "id_type", required, IDENTITY_TYPES),
        Col(f"{prefix}id_value", "text", required),
    )


STORE = Ref("store_id", "store", "code", "stores")
STAFF = Ref("staff_id", "staff", "code", "staff")
OWNER = Ref("owner_staff_id", "staff", "code", "staff")
CHANNEL = Ref("channel_id", "channel", "code", "channels")
GROUP = Ref("group_id", "chat_group", "code", "groups")

SPECS: tuple[FileSpec, ...] = (
    FileSpec(
        "stores",
        (
            Col("store_id", "text", True),
            Col("name", "text", True),
            Col("region", "text"),
            Col("city", "text"),
            Col("lat", "float", lo=-90, hi=90),
            Col("lon", "float", lo=-180, hi=180),
            Col("radius_m", "count"),
        ),
        ("store_id",),
    ),
    FileSpec(
        "staff",
        (
            Col("staff_id", "text", True),
            Col("name", "text", True),
            Col("store_id", "text"),
            Col("persona", "enum", values=PERSONAS),
        ),
        ("staff_id",),
        refs=(STORE,),
    ),
    FileSpec(
        "channels",
        (Col("channel_id", "text", True), Col("name", "text", True), Col("type", "text")),
        ("channel_id",),
    ),
    FileSpec(
        "groups",
        (
            Col("group_id", "text", True),
            Col("name", "text", True),
            Col("owner_staff_id", "text", True),
            Col("store_id", "text"),
            Col("created_at", "timestamp"),
        ),
        ("group_id",),
        refs=(OWNER, STORE),
    ),
    FileSpec(
        "channel_costs",
        (
            Col("channel_id", "text", True),
            Col("date", "date", True),
            Col("cost_fen", "money", True),
        ),
        ("channel_id", "date"),
        refs=(CHANNEL,),
    ),
    FileSpec(
        "channel_reach",
        (Col("channel_id", "text", True), Col("date", "date", True), Col("count", "count", True)),
        ("channel_id", "date"),
        refs=(CHANNEL,),
    ),
    FileSpec(
        "products",
        (
            Col("sku", "text", True),
            Col("name", "text", True),
            Col("category", "text"),
            Col("price_fen", "money"),
            Col("ladder_role", "enum", values=LADDER_ROLES),
        ),
        ("sku",),
    ),
    FileSpec(
        "records",
        (
            Col("record_id", "text", True),
            Col("source", "text", True),
            *(Col(t, "identifier") for t in IDENTITY_TYPES),
            Col("name", "text"),
            Col("gender", "text"),
            Col("birthday", "date"),
            Col("city", "text"),
        ),
        ("record_id",),
    ),
    FileSpec(
        "memberships",
        (
            Col("member_no", "text", True),
            Col("joined_at", "timestamp", True),
            Col("level", "text"),
            Col("points", "int"),
        ),
        ("member_no",),
    ),
    FileSpec(
        "connections",
        (
            Col("kind", "enum", True, ("wecom_friend", "group_member", "oa_follow")),
            *_ref_pair(),
            Col("staff_id", "text"),
            Col("group_id", "text"),
            Col("channel_id", "text"),
            Col("created_at", "timestamp", True),
            Col("ended_at", "timestamp"),
        ),
        ("kind", "id_type", "id_value", "staff_id", "group_id", "created_at"),
        refs=(STAFF, GROUP, CHANNEL),
        customer_refs=("",),
    ),
    FileSpec(
        "orders",
        (
            Col("order_id", "text", True),
            Col("platform", "text", True),
            Col("store_id", "text"),
            *_ref_pair(required=False),
            Col("created_at", "timestamp", True),
            Col("amount_fen", "money", True),
            Col("status", "enum", True, STATUSES),
            Col("refund_fen", "money"),
        ),
        ("order_id",),
        refs=(STORE,),
        customer_refs=("",),
        anonymous_allowed=True,
    ),
    FileSpec(
        "order_items",
        (
            Col("order_id", "text", True),
            Col("sku", "text", True),
            Col("qty", "count", True),
            Col("amount_fen", "money", True),
        ),
        ("order_id", "sku"),
    ),
    FileSpec(
        "referrals",
        (*_ref_pair("referrer_"), *_ref_pair("invitee_"), Col("created_at", "timestamp", True)),
        ("invitee_id_type", "invitee_id_value"),
        customer_refs=("referrer_", "invitee_"),
    ),
    FileSpec(
        "deliveries",
        (
            *_ref_pair(),
            Col("channel", "enum", True, ("wecom", "group", "sms", "oa")),
            Col("created_at", "timestamp", True),
            Col("status", "enum", True, ("delivered", "failed")),
        ),
        (),
        customer_refs=("",),
    ),
    FileSpec(
        "interactions",
        (*_ref_pair(), Col("kind", "text", True), Col("created_at", "timestamp", True)),
        (),
        customer_refs=("",),
    ),
    FileSpec(
        "surveys",
        (*_ref_pair(), Col("created_at", "timestamp", True), Col("score", "score", True)),
        (),
        customer_refs=("",),
    ),
    FileSpec(
        "opt_outs",
        (*_ref_pair(), Col("created_at", "timestamp", True)),
        (),
        customer_refs=("",),
    ),
)

BY_NAME = {s.name: s for s in SPECS}
