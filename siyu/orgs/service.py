"""Brands and the org tree (brand HQ → region → store) — SPEC §1."""

from __future__ import annotations

from sqlalchemy import Connection, select, text

from siyu.orgs.models import Brand


def get_or_create_brand(conn: Connection, *, code: str, name: str, timezone: str) -> int:
    """The brand's id, creating it on first use."""
    found = conn.execute(select(Brand.id).where(Brand.code == code)).scalar_one_or_none()
    if found is not None:
        return int(found)
    conn.execute(Brand.__table__.insert().values(code=code, name=name, timezone=timezone))
    return int(conn.execute(select(Brand.id).where(Brand.code == code)).scalar_one())


def get_brand_or_raise(conn: Connection, *, code: str) -> Brand:
    row = conn.execute(select(Brand).where(Brand.code == code)).first()
    if row is None:
        raise LookupError(f"no brand {code!r} in this database; run `siyu import` or `siyu demo`")
    return row[0]


def sync_org_tree(conn: Connection, *, brand_id: int) -> None:
    """Derive HQ, region and store units from the stores, and point each store at its unit."""
    b = {"b": brand_id}
    conn.execute(
        text(
            "INSERT INTO org_unit (brand_id, kind, name, parent_id) SELECT :b, 'hq', 'HQ', NULL "
            "WHERE NOT EXISTS (SELECT 1 FROM org_unit WHERE brand_id = :b AND kind = 'hq')"
        ),
        b,
    )
    conn.execute(
        text(
            "INSERT INTO org_unit (brand_id, kind, name, parent_id) "
            "SELECT DISTINCT :b, 'region', s.region, h.id FROM store s "
            "JOIN org_unit h ON h.brand_id = :b AND h.kind = 'hq' "
            "WHERE s.brand_id = :b AND s.region IS NOT NULL AND NOT EXISTS (SELECT 1 FROM org_unit u "
            " WHERE u.brand_id = :b AND u.kind = 'region' AND u.name = s.region)"
        ),
        b,
    )
    conn.execute(
        text(
            "INSERT INTO org_unit (brand_id, kind, name, parent_id) SELECT :b, 'store', s.code, "
            "coalesce((SELECT r.id FROM org_unit r WHERE r.brand_id = :b AND r.kind = 'region' "
            "  AND r.name = s.region), (SELECT h.id FROM org_unit h WHERE h.brand_id = :b AND h.kind = 'hq')) "
            "FROM store s WHERE s.brand_id = :b AND NOT EXISTS (SELECT 1 FROM org_unit u "
            " WHERE u.brand_id = :b AND u.kind = 'store' AND u.name = s.code)"
        ),
        b,
    )
    conn.execute(
        text(
            "UPDATE org_unit SET parent_id = coalesce((SELECT r.id FROM org_unit r JOIN store s "
            " ON s.brand_id = :b AND s.code = org_unit.name WHERE r.brand_id = :b AND r.kind = 'region' "
            " AND r.name = s.region), parent_id) WHERE brand_id = :b AND kind = 'store'"
        ),
        b,
    )
    conn.execute(
        text(
            "UPDATE store SET org_unit_id = (SELECT u.id FROM org_unit u WHERE u.brand_id = :b "
            " AND u.kind = 'store' AND u.name = store.code) WHERE brand_id = :b"
        ),
        b,
    )


def list_stores(
    conn: Connection, *, brand_id: int, store_ids: tuple[int, ...] | None = None
) -> list[dict[str, object]]:
    """The brand's stores (code, name, region), or only `store_ids`, by region then code."""
    params: dict[str, object] = {"b": brand_id}
    where = ""
    if store_ids is not None:
        where = " AND id IN (" + (", ".join(str(int(i)) for i in store_ids) or "NULL") + ")"
    rows = conn.execute(
        text(
            f"SELECT code, name, region FROM store WHERE brand_id = :b{where} ORDER BY region, code"
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows]
