"""Personal data leaves DuckDB hashed, and sealed where it will be shown (siyu.pii).

Right after validation, every phone and email of a file — the `records` columns and every
customer reference (`id_type`, `id_value`) of a personal type — is replaced by its lookup hash
in one SQL pass (`siyu_lookup_hash`, HMAC-SHA256 in DuckDB), and a record's name gets its
`name_hash`. From then on the loaders, the row hashes and the natural keys only see hashes:
what reaches the operational store is what identity resolution joins on. The clear values stay
in DuckDB's memory beside them (`<column>__clear`) until the rows that really go to the store
are known; only those are sealed (AES-GCM, in Python, once per distinct value).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
from sqlalchemy import Connection, text

from siyu import pii
from siyu.bulk import bulk_load
from siyu.identity.models import Identifier
from siyu.imports import upsert as up
from siyu.imports.specs import FileSpec

CLEAR = "__clear"
_PII = ", ".join(f"'{t}'" for t in pii.PII_ID_TYPES)


def hash_columns(duck: duckdb.DuckDBPyConnection, table: str, spec: FileSpec) -> None:
    """Replace the file's personal values by their lookup hashes, keeping the clear ones aside."""
    replace: list[str] = []
    extra: list[str] = []
    if spec.name == "records":
        for t in pii.PII_ID_TYPES:
            replace.append(f'siyu_lookup_hash(\'{t}\', "{t}") AS "{t}"')
            extra.append(f'"{t}" AS "{t}{CLEAR}"')
        extra.append(f"siyu_lookup_hash('{pii.NAME_TYPE}', name) AS name_hash")
    for prefix in spec.customer_refs:
        ty, va = f'"{prefix}id_type"', f'"{prefix}ref_value"'
        replace.append(
            f"CASE WHEN {ty} IN ({_PII}) THEN siyu_lookup_hash({ty}, {va}) ELSE {va} END AS {va}"
        )
        extra.append(f'CASE WHEN {ty} IN ({_PII}) THEN {va} END AS "{prefix}ref_value{CLEAR}"')
    if not replace:
        return
    duck.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * REPLACE ({', '.join(replace)}), "
        f"{', '.join(extra)} FROM {table}"
    )


def seal_column(
    duck: duckdb.DuckDBPyConnection, ring: pii.Keyring, table: str, clear: str, sealed: str
) -> None:
    """Add column `sealed` to `table`: each distinct clear value sealed once, in Python."""
    values = [
        r[0]
        for r in duck.execute(
            f'SELECT DISTINCT "{clear}" FROM {table} WHERE "{clear}" IS NOT NULL'
        ).fetchall()
    ]
    if not values:
        duck.execute(f'ALTER TABLE {table} ADD COLUMN "{sealed}" VARCHAR')
        return
    mapping = {  # scanned by DuckDB in place  # noqa: F841
        "c": np.array(values, dtype=object),
        "s": np.array([ring.seal(v) for v in values], dtype=object),
    }
    duck.register("siyu_sealed_map", mapping)
    try:
        duck.execute(
            f'CREATE OR REPLACE TABLE {table} AS SELECT t.*, CAST(m.s AS VARCHAR) AS "{sealed}" '
            f'FROM {table} t LEFT JOIN siyu_sealed_map m ON m.c = t."{clear}"'
        )
    finally:
        duck.unregister("siyu_sealed_map")


def tail_expr(id_type: str, clear: str) -> str:
    """DuckDB: the blind index of a phone's last four digits (pii.tail_hash), else NULL."""
    return (
        f"CASE WHEN {id_type} = 'phone' THEN siyu_lookup_hash('{pii.TAIL_TYPE}', "
        f"right({clear}, 4)) END"
    )


def add_identifiers(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    ring: pii.Keyring,
    *,
    spec: FileSpec,
    source: str,
    brand_id: int,
    now: datetime,
) -> None:
    """Facts that name a customer by phone or email (an order by phone, a referral) create
    the identifier — hash and sealed value — so that the value can be shown and texted even
    when no record carries it. `source`: the file's rows going to the store."""
    if not spec.customer_refs:
        return
    parts = " UNION ".join(
        f'SELECT "{p}id_type" AS id_type, "{p}ref_value" AS value, "{p}ref_value{CLEAR}" AS clear '
        f'FROM {source} WHERE "{p}ref_value{CLEAR}" IS NOT NULL'
        for p in spec.customer_refs
    )
    duck.execute(f"CREATE OR REPLACE TABLE siyu_pii_refs AS SELECT DISTINCT * FROM ({parts})")
    n = up.count(duck, "siyu_pii_refs")
    if n == 0:
        return
    seal_column(duck, ring, "siyu_pii_refs", "clear", "sealed")
    duck.execute(
        "CREATE OR REPLACE TABLE siyu_pii_refs AS SELECT id_type, value, sealed, "
        f"{tail_expr('id_type', 'clear')} AS tail FROM siyu_pii_refs"
    )
    cols = [up.text("id_type"), up.text("value"), up.text("sealed"), up.text("tail")]
    up.stage(duck, conn, "stage_pii_refs", cols, "siyu_pii_refs", order_by=["id_type", "value"])
    with bulk_load(conn, Identifier.__table__, n):
        conn.execute(
            text(
                "INSERT INTO identifier (brand_id, id_type, value, value_sealed, tail_hash, "
                "status, changed_at) SELECT :b, s.id_type, s.value, s.sealed, s.tail, 'linked', "
                ":now FROM stage_pii_refs s WHERE NOT EXISTS (SELECT 1 FROM identifier i "
                "WHERE i.brand_id = :b AND i.id_type = s.id_type AND i.value = s.value)"
            ),
            {"b": brand_id, "now": now},
        )
