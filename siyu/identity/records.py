"""Writing one source record and its identifiers, as a live integration sees a person.

Bulk imports write records set-wise (`siyu.imports`); an integration such as WeCom sees one
person at a time. Either way the record only states what the source knows; `service.resolve`
then decides which customer it is (SPEC §4).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select, update

from siyu import pii
from siyu.identity.models import IDENTITY_TYPES, Identifier, RecordIdentity, SourceRecord
from siyu.identity.normalize import InvalidIdentifier, normalize


def upsert_record(
    conn: Connection,
    *,
    brand_id: int,
    record_key: str,
    source: str,
    identifiers: dict[str, str | None],
    name: str | None = None,
    gender: str | None = None,
) -> int:
    """Create or update the record `record_key`; identifiers given replace that type's value.

    A None identifier value leaves that type as it is (a source that did not send it has not
    said it changed), an invalid one is skipped; profile fields are updated only when given.
    A name is stored sealed with its hash; a phone or email as its hash, sealed beside it in
    the identifier (siyu.pii).
    """
    now = datetime.now(UTC)
    ring = pii.keyring(conn)
    name_hash = pii.name_hash(ring, name or None)
    rec = conn.execute(
        select(SourceRecord.id, SourceRecord.name_hash, SourceRecord.gender).where(
            SourceRecord.brand_id == brand_id, SourceRecord.record_key == record_key
        )
    ).first()
    if rec is None:
        record_id = int(
            conn.execute(
                SourceRecord.__table__.insert()
                .values(
                    brand_id=brand_id,
                    record_key=record_key,
                    source=source,
                    name_hash=name_hash,
                    name_sealed=ring.seal(name) if name else None,
                    gender=gender,
                    created_at=now,
                    updated_at=now,
                )
                .returning(SourceRecord.id)
            ).scalar_one()
        )
    else:
        record_id = int(rec.id)
        changes: dict[str, str | None] = {}
        if name and rec.name_hash != name_hash:
            changes.update(name_hash=name_hash, name_sealed=ring.seal(name))
        if gender and rec.gender != gender:
            changes["gender"] = gender
        if changes:
            conn.execute(
                update(SourceRecord)
                .where(SourceRecord.id == record_id)
                .values(**changes, updated_at=now)
            )
    for id_type, raw in identifiers.items():
        if id_type not in IDENTITY_TYPES:
            raise ValueError(f"unknown identifier type {id_type!r}")
        if not raw:
            continue
        try:
            value = normalize(id_type, raw)
        except InvalidIdentifier:
            continue  # an unusable value (a malformed phone) identifies no one
        ident = identifier_id(conn, ring, brand_id=brand_id, id_type=id_type, value=value)
        current = conn.execute(
            select(RecordIdentity.identifier_id).where(
                RecordIdentity.record_id == record_id, RecordIdentity.id_type == id_type
            )
        ).scalar_one_or_none()
        if current == ident:
            continue
        if current is not None:
            conn.execute(
                delete(RecordIdentity).where(
                    RecordIdentity.record_id == record_id, RecordIdentity.id_type == id_type
                )
            )
        conn.execute(
            RecordIdentity.__table__.insert().values(
                record_id=record_id, id_type=id_type, identifier_id=ident
            )
        )
        conn.execute(
            update(SourceRecord).where(SourceRecord.id == record_id).values(updated_at=now)
        )
    return record_id


def identifier_id(
    conn: Connection, ring: pii.Keyring, *, brand_id: int, id_type: str, value: str
) -> int:
    """The identifier row of a normalised value, created when new: a phone or email stored as
    its hash with the value sealed beside it (siyu.pii)."""
    stored = pii.stored_value(ring, id_type, value)
    found = conn.execute(
        select(Identifier.id).where(
            Identifier.brand_id == brand_id,
            Identifier.id_type == id_type,
            Identifier.value == stored,
        )
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    sealed = ring.seal(value) if pii.is_pii(id_type) else None
    tail = pii.tail_hash(ring, value) if id_type == "phone" else None
    return int(
        conn.execute(
            Identifier.__table__.insert()
            .values(
                brand_id=brand_id,
                id_type=id_type,
                value=stored,
                value_sealed=sealed,
                tail_hash=tail,
                status="linked",
            )  # fmt: skip
            .returning(Identifier.id)
        ).scalar_one()
    )
