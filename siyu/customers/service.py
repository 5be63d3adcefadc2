"""Reading one customer: who they are, why their records are one, what they bought."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from siyu import pii
from siyu.auth.principal import OutOfScope, Principal
from siyu.bulk import temp_table
from siyu.db import UTCDateTime
from siyu.identity.normalize import InvalidIdentifier, normalize, normalize_phone, parse_key


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
    erased_at: datetime | None = None  # personal data erased (siyu.privacy.erase)


def resolve_key_or_raise(conn: Connection, *, brand_id: int, key: str) -> tuple[int, int | None]:
    """(live customer id, the merged-away id asked for or None) for an id or `type:value`."""
    if key.isascii() and key.isdigit():
        if len(key) > 18:  # beyond any BIGINT id
            raise CustomerNotFound(f"no customer {key}")
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
        {"b": brand_id, "t": id_type, "v": pii.stored_value(pii.keyring(conn), id_type, value)},
    ).first()
    if row is None:
        raise CustomerNotFound(f"no customer has {id_type}:{value}")
    if row[0] is None:
        raise CustomerNotFound(
            f"{id_type}:{value} is quarantined (shared by too many records) and names no customer; "
            "see `siyu identity quarantined`"
        )
    return int(row[0]), None


def resolve_keys(
    conn: Connection, *, brand_id: int, keys: list[tuple[str, str]]
) -> tuple[list[int], list[tuple[str, str, str]]]:
    """Many keys (as `resolve_key_or_raise` takes them) at once, set-based.

    keys: (where, key) — `where` says where the key came from (a file line, an argument).
    Returns (live customer ids, in key order; [(where, key, why)] for keys naming no customer).
    """
    bad: list[tuple[str, str, str]] = []
    rows: list[tuple[int, int | None, str | None, str | None]] = []
    ring = pii.keyring(conn)
    for n, (_where, key) in enumerate(keys):
        key = key.strip()
        if key.isascii() and key.isdigit():
            rows.append((n, int(key), None, None))
            continue
        try:
            id_type, value = parse_key(key)
        except InvalidIdentifier as e:
            bad.append((_where, key, str(e)))
            continue
        rows.append((n, None, id_type, pii.stored_value(ring, id_type, value)))
    temp_table(
        conn,
        "_customer_keys",
        [("n", "BIGINT"), ("cid", "BIGINT"), ("id_type", "VARCHAR(32)"), ("value", "VARCHAR(255)")],
        rows,
    )
    found = conn.execute(
        text(
            "SELECT k.n, coalesce(c.merged_into_id, c.id), i.id IS NOT NULL, i.customer_id "
            "FROM _customer_keys k "
            "LEFT JOIN customer c ON c.brand_id = :b AND c.id = k.cid "
            "LEFT JOIN identifier i ON i.brand_id = :b AND i.id_type = k.id_type "
            "AND i.value = k.value ORDER BY k.n"
        ),
        {"b": brand_id},
    ).all()
    conn.execute(text("DROP TABLE IF EXISTS _customer_keys"))
    ids: list[int] = []
    for n, by_id, known, by_identifier in found:
        where, key = keys[n]
        if by_id is not None or by_identifier is not None:
            ids.append(int(by_id if by_id is not None else by_identifier))
        elif known:
            bad.append((where, key.strip(), "quarantined: names no customer"))
        else:
            bad.append((where, key.strip(), "no such customer"))
    order = {w: i for i, (w, _) in enumerate(keys)}
    bad.sort(key=lambda x: order[x[0]])
    return ids, bad


def get_view(
    conn: Connection, *, brand_id: int, customer_id: int, store_ids: tuple[int, ...] | None = None
) -> CustomerView:
    """The customer's 360; with `store_ids`, connections and orders of other stores are left
    out (connections without a store, e.g. an official-account follow, and online orders stay)."""
    b = {"b": brand_id, "c": customer_id}
    ring = pii.keyring(conn)
    prof = conn.execute(
        text(
            "SELECT name_sealed, gender, city, erased_at FROM customer WHERE id = :c AND brand_id = :b"
        ),
        b,
    ).one()
    rows = conn.execute(
        text(
            "SELECT r.id, r.record_key, r.source, i.id_type, i.value, i.value_sealed, i.status "
            "FROM source_record r LEFT JOIN record_identity ri ON ri.record_id = r.id "
            "LEFT JOIN identifier i ON i.id = ri.identifier_id "
            "WHERE r.brand_id = :b AND r.customer_id = :c ORDER BY r.id, i.id_type"
        ),
        b,
    ).all()
    records: dict[int, RecordView] = {}
    for rid, key, source, ty, val, sealed, status in rows:
        rec = records.setdefault(rid, RecordView(rid, _record_key(ring, key, sealed), source, []))
        if ty is not None:
            rec.identifiers.append((ty, pii.shown(ring, val, sealed) or val, status))
    view = CustomerView(
        id=customer_id,
        redirected_from=None,
        name=ring.open_or_none(prof[0]),
        gender=prof[1],
        city=prof[2],
        records=list(records.values()),
        links=explain(list(records.values())),
        connections=_connections(conn, b, store_ids),
        orders=_order_totals(conn, b, store_ids),
        erased_at=_instant(prof[3]),
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


def masked(view: CustomerView) -> CustomerView:
    """The 360 as a role without the right to personal data sees it (SPEC §12): phones
    138****8000, emails w***@example.com, names 王** — everywhere they appear."""

    def ident(ty: str, val: str) -> str:
        return pii.mask(ty, val) or val

    def key(k: str) -> str:
        kind, _, value = k[4:].partition(":") if k.startswith("ref:") else ("", "", "")
        return f"ref:{kind}:{ident(kind, value)}" if pii.is_pii(kind) else k

    def via(v: str) -> str:
        ty, _, value = v.partition(":")
        return f"{ty}:{ident(ty, value)}"

    records = [
        RecordView(r.id, key(r.key), r.source, [(t, ident(t, v), s) for t, v, s in r.identifiers])
        for r in view.records
    ]
    return CustomerView(
        id=view.id,
        redirected_from=view.redirected_from,
        name=pii.mask_name(view.name),
        gender=view.gender,
        city=view.city,
        records=records,
        links=[Link(x.frm, x.to, via(x.via)) for x in view.links],
        connections=view.connections,
        orders=view.orders,
        not_merging=[(t, ident(t, v), why) for t, v, why in view.not_merging],
    )


def _record_key(ring: pii.Keyring, key: str, sealed: str | None) -> str:
    """A reference record is named after its one identifier (`ref:phone:<hash>`): show the
    value instead of the hash."""
    kind, _, _ = key[4:].partition(":") if key.startswith("ref:") else ("", "", "")
    if pii.is_pii(kind) and sealed is not None:
        return f"ref:{kind}:{ring.open_(sealed)}"
    return key


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


def _stores_clause(store_ids: tuple[int, ...] | None, column: str) -> str:
    if store_ids is None:
        return ""
    ids = ", ".join(str(int(i)) for i in store_ids) or "NULL"
    return f" AND ({column} IS NULL OR {column} IN ({ids}))"


def _connections(
    conn: Connection, b: dict[str, int], store_ids: tuple[int, ...] | None = None
) -> list[dict[str, object]]:
    where = ""
    if store_ids is not None:
        ids = ", ".join(str(int(i)) for i in store_ids) or "NULL"
        where = (
            f" AND (c.staff_id IS NULL OR s.store_id IN ({ids}))"
            f" AND (c.group_id IS NULL OR g.store_id IN ({ids}))"
        )
    rows = (
        conn.execute(
            text(
                "SELECT c.kind, s.code AS staff, g.code AS grp, ch.name AS channel, c.created_at, c.ended_at "
                "FROM connection c JOIN identifier i ON i.brand_id = c.brand_id AND i.id_type = c.id_type "
                " AND i.value = c.id_value "
                "LEFT JOIN staff s ON s.id = c.staff_id LEFT JOIN chat_group g ON g.id = c.group_id "
                "LEFT JOIN channel ch ON ch.id = c.channel_id "
                f"WHERE c.brand_id = :b AND i.customer_id = :c{where} ORDER BY c.created_at"
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


def _order_totals(
    conn: Connection, b: dict[str, int], store_ids: tuple[int, ...] | None = None
) -> OrderTotals:
    row = conn.execute(
        text(
            "SELECT count(*), "
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' AND o.refund_fen < o.amount_fen THEN 1 END), 0),"
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' THEN o.amount_fen END), 0),"
            " coalesce(sum(CASE WHEN o.status <> 'cancelled' THEN o.amount_fen - o.refund_fen END), 0),"
            " min(o.created_at), max(o.created_at) "
            'FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id AND i.id_type = o.id_type '
            " AND i.value = o.id_value WHERE o.brand_id = :b AND i.customer_id = :c"
            + _stores_clause(store_ids, "o.store_id")
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


# --- What a console user may read (SPEC §1, §12) -------------------------------------------


def readable_customer_ids(principal: Principal) -> tuple[str, dict[str, Any]] | None:
    """THE customer scope: a subquery of the live customer ids `principal` may read, with its
    parameters; None for the whole brand (HQ roles).

    - a store (or region) scope: customers with a connection, ever, to a staff member of those
      stores or in a group of those stores, or with an order placed at them — the same rule
      as the metric views of siyu.metrics.scope narrowed to stores;
    - a guide: customers with an active friendship with the guide, or active in a group the
      guide owns — their own customers, not the whole store's.
    """
    if principal.role == "guide":
        sql = (
            "SELECT i.customer_id FROM connection c JOIN identifier i ON i.brand_id = c.brand_id "
            " AND i.id_type = c.id_type AND i.value = c.id_value "
            "WHERE c.brand_id = :scope_brand AND i.customer_id IS NOT NULL AND c.ended_at IS NULL "
            " AND (c.staff_id = :scope_staff OR c.group_id IN (SELECT g.id FROM chat_group g "
            "  WHERE g.brand_id = :scope_brand AND g.owner_staff_id = :scope_staff))"
        )
        return sql, {"scope_brand": principal.brand_id, "scope_staff": principal.staff_id or -1}
    if principal.store_ids is None:
        return None
    stores = ", ".join(str(int(i)) for i in principal.store_ids) or "NULL"
    sql = (
        "SELECT i.customer_id FROM connection c JOIN identifier i ON i.brand_id = c.brand_id "
        " AND i.id_type = c.id_type AND i.value = c.id_value "
        "WHERE c.brand_id = :scope_brand AND i.customer_id IS NOT NULL "
        f" AND (c.staff_id IN (SELECT s.id FROM staff s WHERE s.store_id IN ({stores})) "
        f"  OR c.group_id IN (SELECT g.id FROM chat_group g WHERE g.store_id IN ({stores}))) "
        'UNION SELECT i.customer_id FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id '
        " AND i.id_type = o.id_type AND i.value = o.id_value "
        f"WHERE o.brand_id = :scope_brand AND i.customer_id IS NOT NULL AND o.store_id IN ({stores})"
    )
    return sql, {"scope_brand": principal.brand_id}


def readable_ids(conn: Connection, principal: Principal) -> list[int] | None:
    """The readable customer ids as a list (None: the whole brand)."""
    scope = readable_customer_ids(principal)
    if scope is None:
        return None
    sql, params = scope
    return sorted(int(r[0]) for r in conn.execute(text(sql), params))


def can_read(conn: Connection, principal: Principal, customer_id: int) -> bool:
    scope = readable_customer_ids(principal)
    if scope is None:
        return True
    sql, params = scope
    found = conn.execute(
        text(f"SELECT 1 FROM ({sql}) r WHERE r.customer_id = :cid"), {**params, "cid": customer_id}
    ).first()
    return found is not None


def get_readable_view_or_raise(conn: Connection, *, principal: Principal, key: str) -> CustomerView:
    """The 360 view of the customer `key` names, if `principal` may read them.

    A customer outside the scope raises OutOfScope, which callers answer exactly like a
    customer that does not exist (404) — and audit.
    """
    customer_id, asked = resolve_key_or_raise(conn, brand_id=principal.brand_id, key=key)
    if not can_read(conn, principal, customer_id):
        raise OutOfScope(f"customer:{customer_id}", f"no customer {key}")
    view = get_view(
        conn, brand_id=principal.brand_id, customer_id=customer_id, store_ids=principal.store_ids
    )
    view.redirected_from = asked
    return view


@dataclass(frozen=True)
class SearchHit:
    id: int
    name: str | None
    phone: str | None
    city: str | None
    matched: str  # what matched: id, phone, name, identifier


def search(
    conn: Connection, *, principal: Principal, query: str, limit: int = 50
) -> list[SearchHit]:
    """Customers by id, phone (whole, or the last 4+ digits), name (whole) or any identifier
    value (`type:value` or the bare value), within `principal`'s scope.

    Phones, emails and names are stored hashed (siyu.pii), so they are found by the hash of
    what is typed: a whole phone or email by its lookup hash, a name by its hash (the whole
    name, as stored), trailing digits through the blind index of a phone's last four digits,
    whose few candidates are opened and checked against every digit typed."""
    q = query.strip()
    if not q:
        return []
    ring = pii.keyring(conn)
    b = principal.brand_id
    clauses: list[tuple[str, str]] = []
    params: dict[str, Any] = {"b": b}
    digits = q.replace(" ", "").replace("-", "").lstrip("+")
    if ":" in q:
        try:
            id_type, value = parse_key(q)
        except InvalidIdentifier:
            return []
        params.update(t=id_type, v=pii.stored_value(ring, id_type, value))
        clauses.append(("identifier", "SELECT customer_id AS cid FROM identifier WHERE brand_id = :b "
                        "AND id_type = :t AND value = :v"))  # fmt: skip
    else:
        if digits.isascii() and digits.isdigit():
            if len(digits) <= 10:
                params["cid"] = int(digits)
                clauses.append(
                    ("id", "SELECT id AS cid FROM customer WHERE brand_id = :b AND id = :cid")
                )
            phone = normalize_phone(digits) if len(digits) >= 11 else None
            if phone:
                params["phone"] = ring.lookup_hash("phone", phone)
                clauses.append(("phone", "SELECT customer_id AS cid FROM identifier WHERE "
                                "brand_id = :b AND id_type = 'phone' AND value = :phone"))  # fmt: skip
            elif len(digits) >= 4:
                ids = _phones_ending(conn, ring, b, digits)
                clauses.append(("phone", "SELECT id AS cid FROM customer WHERE brand_id = :b AND "
                                f"id IN ({', '.join(map(str, ids)) or 'NULL'})"))  # fmt: skip
        params["name"] = pii.name_hash(ring, q)
        clauses.append(("name", "SELECT id AS cid FROM customer WHERE brand_id = :b AND "
                        "merged_into_id IS NULL AND name_hash = :name"))  # fmt: skip
        bare = {q}  # a bare value: as typed, or the hash of the phone or email it spells
        for id_type in pii.PII_ID_TYPES:
            if id_type == "phone" and "phone" in params:
                continue  # matched as a phone above
            try:
                bare.add(ring.lookup_hash(id_type, normalize(id_type, q)))
            except InvalidIdentifier:
                pass
        names = [f"v{n}" for n in range(len(bare))]
        params.update(zip(names, sorted(bare), strict=True))
        clauses.append(("identifier", "SELECT customer_id AS cid FROM identifier WHERE "
                        f"brand_id = :b AND value IN ({', '.join(':' + n for n in names)})"))  # fmt: skip
    matches = " UNION ALL ".join(
        f"SELECT cid, '{label}' AS matched FROM ({sql}) m{n}"
        for n, (label, sql) in enumerate(clauses)
    )
    scope = readable_customer_ids(principal)
    where = ""
    if scope is not None:
        where = f" AND c.id IN ({scope[0]})"
        params.update(scope[1])
    rows = conn.execute(
        text(
            f"SELECT c.id, min(h.matched), c.name_sealed, c.city, "
            " (SELECT p.value_sealed FROM identifier p WHERE p.brand_id = :b AND p.id_type = 'phone' "
            "  AND p.customer_id = c.id ORDER BY p.id LIMIT 1) "
            f"FROM ({matches}) h JOIN customer c ON c.id = h.cid "
            f"WHERE c.brand_id = :b AND c.merged_into_id IS NULL{where} "
            "GROUP BY c.id, c.name_sealed, c.city ORDER BY c.id LIMIT :limit"
        ),
        {**params, "limit": limit},
    ).all()
    return [
        SearchHit(int(r[0]), ring.open_or_none(r[2]), ring.open_or_none(r[4]), r[3], r[1])
        for r in rows
    ]


def _phones_ending(conn: Connection, ring: pii.Keyring, brand_id: int, digits: str) -> list[int]:
    """Customers with a phone ending in `digits` (4 or more): the blind index of the last four
    gives the candidates, their sealed numbers say which really end so."""
    rows = conn.execute(
        text(
            "SELECT customer_id, value_sealed FROM identifier WHERE brand_id = :b "
            "AND tail_hash = :t AND id_type = 'phone' AND customer_id IS NOT NULL"
        ),
        {"b": brand_id, "t": pii.tail_hash(ring, digits)},
    ).all()
    return sorted({int(c) for c, sealed in rows if sealed and ring.open_(sealed).endswith(digits)})


def orders(
    conn: Connection, *, brand_id: int, customer_id: int, store_ids: tuple[int, ...] | None,
    limit: int = 100,
) -> list[dict[str, Any]]:  # fmt: skip
    """The customer's latest orders; with `store_ids`, only those placed at these stores or at
    no store (online), so a store sees nothing another store sold."""
    where = _stores_clause(store_ids, "o.store_id")
    rows = (
        conn.execute(
            text(
                "SELECT o.order_key, o.platform, s.code AS store, o.created_at, o.amount_fen, "
                'o.refund_fen, o.status FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id '
                "AND i.id_type = o.id_type AND i.value = o.id_value "
                "LEFT JOIN store s ON s.id = o.store_id "
                f"WHERE o.brand_id = :b AND i.customer_id = :c{where} "
                "ORDER BY o.created_at DESC LIMIT :limit"
            ),
            {"b": brand_id, "c": customer_id, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [{**r, "created_at": _instant(r["created_at"])} for r in rows]
