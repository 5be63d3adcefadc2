"""The erasure list: lookup keys of an erased person's identifiers and source records.

Decision (PIPL allows re-collection with fresh consent, not silent re-creation): an import row
that carries an erased identifier or source-record key is rejected — the reject report says
why — rather than stored as a new customer. Data an integration keeps sending (a nightly full
export of a CRM) therefore never brings the person back by itself. When the person consents
again, an operator lifts the block (`siyu customer recollect phone:…`) and the next import
creates a new customer, unrelated to the erased one's tombstone.

A lookup key is the keyed lookup hash of siyu.pii (HMAC-SHA256 under the database's lookup
key) over the brand, the kind (identifier type or "record") and the value as the store holds
it (a phone's or email's own lookup hash, any other value as it is): it matches a re-sent value
without storing it, and without the key it cannot be tested against a list of phone numbers.
WeCom callbacks are not checked: a person who adds a guide again has made fresh contact
themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
from sqlalchemy import Connection, delete, select, text

from siyu import pii
from siyu.identity.normalize import InvalidIdentifier, parse_key
from siyu.privacy.models import ErasureBlock

REASON = (
    "this person's data was erased at their request (PIPL); re-collect it only with fresh "
    "consent: siyu customer recollect TYPE:VALUE"
)


def lookup(ring: pii.Keyring, brand_id: int, kind: str, stored: str) -> str:
    """The lookup key of an identifier (kind = its type) or a source record (kind "record"),
    from the value as stored (siyu.pii.stored_value)."""
    return ring.lookup_hash(f"siyu-erasure:{brand_id}:{kind}", stored)


def block(conn: Connection, *, brand_id: int, customer_id: int, keys: Iterable[tuple[str, str]],
          at: object) -> int:  # fmt: skip
    """Add (kind, value) pairs to the erasure list; the number of new entries."""
    ring = pii.keyring(conn)
    rows = {lookup(ring, brand_id, k, v): k for k, v in keys}
    if not rows:
        return 0
    held = set(
        conn.execute(
            select(ErasureBlock.lookup).where(
                ErasureBlock.brand_id == brand_id, ErasureBlock.lookup.in_(list(rows))
            )
        ).scalars()
    )
    fresh = [
        {"brand_id": brand_id, "lookup": h, "kind": k, "customer_id": customer_id, "erased_at": at}
        for h, k in rows.items()
        if h not in held
    ]
    if fresh:
        conn.execute(ErasureBlock.__table__.insert(), fresh)
    return len(fresh)


class NotBlocked(LookupError):
    pass


def recollect(conn: Connection, *, brand_id: int, key: str) -> int:
    """Lift the block on `type:value` (or `record:KEY`): the person consented again. Returns
    the erased customer it belonged to; NotBlocked when nothing was blocked."""
    kind, _, raw = key.partition(":")
    if kind == "record" and raw:
        value = raw.strip()
    else:
        try:
            kind, value = parse_key(key)
        except InvalidIdentifier as e:
            raise NotBlocked(str(e)) from None
    ring = pii.keyring(conn)
    h = lookup(ring, brand_id, kind, pii.stored_value(ring, kind, value))
    row = conn.execute(
        select(ErasureBlock.customer_id).where(
            ErasureBlock.brand_id == brand_id, ErasureBlock.lookup == h
        )
    ).first()
    if row is None:
        raise NotBlocked(f"{kind}:{value} is not on the erasure list")
    conn.execute(
        delete(ErasureBlock).where(ErasureBlock.brand_id == brand_id, ErasureBlock.lookup == h)
    )
    return int(row[0])


# --- the import's check (siyu.imports): the same key, computed in DuckDB --------------------


def load_for_import(duck: duckdb.DuckDBPyConnection, conn: Connection, brand_id: int) -> int:
    """The brand's erasure list as DuckDB table `ref_erased`, and the `siyu_erased(kind, value)`
    macro the import's checks call on clear, normalised values (true when the pair is on the
    list); the list's length. Needs the import's `siyu_lookup_hash` macro (Keyring.duckdb_macros)."""
    pii_types = ", ".join(f"'{t}'" for t in pii.PII_ID_TYPES)
    held = list(
        conn.execute(
            text("SELECT lookup FROM erasure_block WHERE brand_id = :b"), {"b": brand_id}
        ).scalars()
    )
    duck.execute(
        "CREATE OR REPLACE TABLE ref_erased AS SELECT unnest($l::VARCHAR[]) AS lookup",
        {"l": held},
    )
    duck.execute(
        "CREATE OR REPLACE TEMP MACRO siyu_erased(kind, v) AS v IS NOT NULL AND "
        f"siyu_lookup_hash('siyu-erasure:{int(brand_id)}:' || kind, CASE WHEN kind IN ({pii_types}) "
        "THEN siyu_lookup_hash(kind, v) ELSE v END) IN (SELECT lookup FROM ref_erased)"
    )
    return len(held)
