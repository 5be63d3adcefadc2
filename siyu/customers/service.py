"""Reading one customer: who they are, why their records are one, what they bought."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, text

from siyu.db import UTCDateTime
from siyu.identity.normalize import InvalidIdentifier, parse_key


class CustomerNotFound(LookupError):
    pass


@dataclass(frozen=True)
class RecordView:
    id: int
    key: str
    source: str
    identifiers: list[tuple[str, str, str]]  # (type, value, status)


@dataclass(frozen=True)
class Link:
    """Record `to` joined the customer through `via` (type:value), shared with record `frm`."""

    frm: int
    to: int
    via: str


@dataclass(frozen=True)
class OrderTotals:
    orders: int
    paid_orders: int
    gmv_fen: int
    net_fen: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass
class CustomerView:
    id: int
    redirected_from: int | None
    name: str | None
    gender: str | None
    city: str | None
    records: list[RecordView]
    links: list[Link]
    connections: list[dict[str, object]]
    orders: OrderTotals
    not_merging: list[tuple[str, str, str]] = field(default_factory=list)  # type, value, why


def resolve_key_or_raise(conn: Connection, *, brand_id: int, key: str) -> tuple[int, int | None]:
    """(live customer id, the merged-away id asked for or None) for an id or `type:value`."""
    if key.isdigit():
        asked = int(key)
        row = conn.execute(
            text("SELECT id, merged_into_id FROM customer WHERE brand_id = :b AND id = :i"),
            {"b": brand_id, "i": asked},
        ).first()
        if row is None:
            raise CustomerNotFound(f"no customer {asked}")
        return (row[1], asked) if row[1] else (row[0], None)
    try:
        id_type, value = parse_key(key)
    except InvalidIdentifier as e:
        raise CustomerNotFound(str(e)) from None
    row = conn.execute(
        text(
            "SELECT customer_id, status FROM identifier WHERE brand_id = :b AND id_type = :t "
            "AND value = :v"
        ),
        {"b": brand_id, "t": id_type, "v": value},
    ).first()
    if row is None:
        raise CustomerNotFound(f"no customer has {id_type}:{value}")
    if row[0] is None:
        raise CustomerNotFound(
            f"{id_type}:{value} is quarantined (shared by too many records) and names no customer; "
            "see `siyu identity quarantined`"
        )
    return int(row[0]), None


def get_view(conn: Connection, *, brand_id: int, customer_id: int) -> CustomerView:
    b = {"b": brand_id, "c": customer_id}
    prof = conn.execute(
        text("SELECT name, gender, city FROM customer WHERE id = :c AND brand_id = :b"), b
    ).one()
    rows = conn.execute(
        text(
            "SELECT r.id, r.record_key, r.source, i.id_type, i.value, i.status FROM source_record r "
            "LEFT JOIN record_identity ri ON ri.record_id = r.id "
            "LEFT JOIN identifier i ON i.id = ri.identifier_id "
            "WHERE r.brand_id = :b AND r.customer_id = :c ORDER BY r.id, i.id_type"
        ),
        b,
    ).all()
    records: dict[int, RecordView] = {}
    for rid, key, source, ty, val, status in rows:
        rec = records.setdefault(rid, RecordView(rid, key, source, []))
        if ty is not None:
            rec.identifiers.append((ty, val, status))
    view = CustomerView(
        id=customer_id,
        redirected_from=None,
        name=prof[0],
        gender=prof[1],
        city=prof[2],
        records=list(records.values()),
        links=explain(list(records.values())),
        connections=_connections(conn, b),
        orders=_order_totals(conn, b),
    )
    seen: set[tuple[str, str]] = set()
    for rec in view.records:
        for ty, val, status in rec.identifiers:
            if status != "linked" and (ty, val) not in seen:
                seen.add((ty, val))
                why = (
                    "quarantined: shared by too many records of one source"
                    if status == "quarantined"
                    else "unmerged by an operator"
                )
                view.not_merging.append((ty, val, why))
    return view


def explain(records: list[RecordView]) -> list[Link]:
    """The chain of shared identifiers: a breadth-first spanning tree from the oldest record."""
    if not records:
        return []
    carriers: dict[tuple[str, str], list[int]] = {}
    for rec in records:
        for ty, val, status in rec.identifiers:
            if status == "linked":
                carriers.setdefault((ty, val), []).append(rec.id)
    by_record: dict[int, list[tuple[str, str]]] = {r.id: [] for r in records}
    for ident, ids in carriers.items():
        for rid in ids:
            by_record[rid].append(ident)
    start = min(by_record)
    seen, queue, links = {start}, [start], []
    while queue:
        current = queue.pop(0)
        for ident in sorted(by_record[current]):
            for other in carriers[ident]:
                if other not in seen:
                    seen.add(other)
                    queue.append(other)
                    links.append(Link(current, other, f"{ident[0]}:{ident[1]}"))
    return links


def _connections(conn: Connection, b: dict[str, int]) -> list[dict[str, object]]:
    rows = (
        conn.execute(
            text(
                "SELECT c.kind, s.code AS staff, g.code AS grp, ch.name AS channel, c.created_at, c.ended_at "
                "FROM connection c JOIN identifier i ON i.brand_id = c.brand_id AND i.id_type = c.id_type "
                " AND i.value = c.id_value "
                "LEFT JOIN staff s ON s.id = c.staff_id LEFT JOIN chat_group g ON g.id = c.group_id "
                "LEFT JOIN channel ch ON ch.id = c.channel_id "
                "WHERE c.brand_id = :b AND i.customer_id = :c ORDER BY c.created_at"
            ),
            b,
        )
        .mappings()
        .all()
    )
    return [
        {**r, "created_at": _instant(r["created_at"]), "ended_at": _instant(r["ended_at"])}
        for r in rows
    ]


def _order_totals(conn: Connection, b: dict[str, int]) -> OrderTotals:
    row = conn.execute(
        text(
            "SELECT count(*), "
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' AND o.refund_fen < o.amount_fen THEN 1 END), 0),"
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' THEN o.amount_fen END), 0),"
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' THEN o.amount_fen - o.refund_fen END), 0),"
            " min(o.created_at), max(o.created_at) "
            'FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id AND i.id_type = o.id_type '
            " AND i.value = o.id_value WHERE o.brand_id = :b AND i.customer_id = :c"
        ),
        b,
    ).one()
    first, last = _instant(row[4]), _instant(row[5])
    return OrderTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), first, last)


def _instant(value: object) -> datetime | None:
    """A timestamp from a raw query as an aware UTC datetime (SQLite returns text)."""
    if value is None:
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return UTCDateTime().process_result_value(dt, None)
