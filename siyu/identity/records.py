"""Writing one source record and its identifiers, as a live integration sees a person.

Bulk imports write records set-wise (`siyu.imports`); an integration such as WeCom sees one
person at a time. Either way the record only states what the source knows; `service.resolve`
then decides which customer it is (SPEC §4).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select, update

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
    """
    now = datetime.now(UTC)
    rec = conn.execute(
        select(SourceRecord.id, SourceRecord.name, SourceRecord.gender).where(
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
                    name=name,
                    gender=gender,
                    created_at=now,
                    updated_at=now,
                )
                .returning(SourceRecord.id)
            ).scalar_one()
        )
    else:
        record_id = int(rec.id)
        changes = {
            k: v for k, v in (("name", name), ("gender", gender)) if v and getattr(rec, k) != v
        }
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
        ident = _identifier_id(conn, brand_id, id_type, value)
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


def _identifier_id(conn: Connection, brand_id: int, id_type: str, value: str) -> int:
    found = conn.execute(
        select(Identifier.id).where(
            Identifier.brand_id == brand_id,
            Identifier.id_type == id_type,
            Identifier.value == value,
        )
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            Identifier.__table__.insert()
            .values(brand_id=brand_id, id_type=id_type, value=value, status="linked")
            .returning(Identifier.id)
        ).scalar_one()
    )
