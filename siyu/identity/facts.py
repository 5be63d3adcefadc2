"""Facts that name a customer no record describes (DATA_FORMAT.md): such a value gets a
`reference` record of its own, so it resolves to a customer like any other."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

# Every table whose rows reference a customer by (type, value) — DATA_FORMAT.md.
FACT_REFERENCES = (
    ('"order"', "id_type", "id_value"),
    ("connection", "id_type", "id_value"),
    ("delivery", "id_type", "id_value"),
    ("interaction", "id_type", "id_value"),
    ("survey_response", "id_type", "id_value"),
    ("opt_out", "id_type", "id_value"),
    ("referral", "referrer_id_type", "referrer_id_value"),
    ("referral", "invitee_id_type", "invitee_id_value"),
    ("membership", "'member_no'", "member_no"),
)


def add_all_fact_identifiers(conn: Connection, brand_id: int, now: datetime) -> None:
    """Every value any fact of the brand names becomes an identifier (a full pass)."""
    refs = " UNION ".join(
        f"SELECT {ty} AS id_type, {va} AS value FROM {table} "
        f"WHERE brand_id = :b AND {va} IS NOT NULL"
        for table, ty, va in FACT_REFERENCES
    )
    conn.execute(
        text(
            "INSERT INTO identifier (brand_id, id_type, value, status, changed_at) "
            f"SELECT :b, r.id_type, r.value, 'linked', :now FROM ({refs}) r WHERE NOT EXISTS ("
            "SELECT 1 FROM identifier i "
            "WHERE i.brand_id = :b AND i.id_type = r.id_type AND i.value = r.value) "
            "ORDER BY r.id_type, r.value"
        ),
        {"b": brand_id, "now": now},
    )


def add_reference_records(
    conn: Connection, brand_id: int, now: datetime, *, candidates: str | None = None
) -> None:
    """Give every identifier no record carries a `reference` record carrying it.

    Records are created in identifier order, and identifiers in (type, value) order, so a full
    and an incremental pass number them alike (ids order customers' creation).

    candidates: a table of identifier ids (`id`) to look at; None looks at all the brand's.
    """
    # Candidates first (CROSS JOIN keeps that order on SQLite), each identifier by its key.
    among = f"{candidates} c CROSS JOIN " if candidates else ""
    match = "i.id = c.id AND +i.brand_id = :b" if candidates else "i.brand_id = :b"
    b = {"b": brand_id, "now": now}
    conn.execute(
        text(
            "INSERT INTO source_record (brand_id, record_key, source, created_at, updated_at) "
            "SELECT :b, 'ref:' || i.id_type || ':' || i.value, 'reference', :now, :now "
            f"FROM {among}identifier i WHERE {match} AND NOT EXISTS ("
            " SELECT 1 FROM record_identity ri WHERE ri.identifier_id = i.id) AND NOT EXISTS ("
            " SELECT 1 FROM source_record r WHERE r.brand_id = :b "
            "  AND r.record_key = 'ref:' || i.id_type || ':' || i.value) ORDER BY i.id"
        ),
        b,
    )
    conn.execute(
        text(
            "INSERT INTO record_identity (record_id, id_type, identifier_id) "
            f"SELECT r.id, i.id_type, i.id FROM {among}identifier i "
            "CROSS JOIN source_record r WHERE r.brand_id = :b "
            " AND r.record_key = 'ref:' || i.id_type || ':' || i.value "
            f"AND {match} AND NOT EXISTS (SELECT 1 FROM record_identity ri "
            " WHERE ri.record_id = r.id AND ri.id_type = i.id_type)"
        ),
        b,
    )
