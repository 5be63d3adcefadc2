"""Connections: writing one connection by its natural key — SPEC §3, §5.1."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import Connection, select, update

from siyu.connections.models import Connection as ConnectionRow


def row_key(
    *,
    kind: str,
    id_type: str,
    id_value: str,
    staff_id: int | None,
    group_id: int | None,
    created_at: datetime,
) -> str:
    """md5 of the natural key, in the form the import computes it (siyu.imports.loaders)."""
    stamp = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    parts = [kind, id_type, id_value, staff_id, group_id, stamp]
    return hashlib.md5("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def upsert(
    conn: Connection,
    *,
    brand_id: int,
    kind: str,
    id_type: str,
    id_value: str,
    created_at: datetime,
    staff_id: int | None = None,
    group_id: int | None = None,
    channel_id: int | None = None,
    state: str | None = None,
    ended_at: datetime | None = None,
    ended_by: str | None = None,
) -> int:
    """Create the connection, or set its channel, state and end on the existing one."""
    key = row_key(
        kind=kind,
        id_type=id_type,
        id_value=id_value,
        staff_id=staff_id,
        group_id=group_id,
        created_at=created_at,
    )
    c = ConnectionRow
    found = conn.execute(
        select(c.id).where(c.brand_id == brand_id, c.row_key == key)
    ).scalar_one_or_none()
    values = {"ended_at": ended_at, "ended_by": ended_by if ended_at else None}
    if channel_id is not None:
        values["channel_id"] = channel_id
    if state:
        values["state"] = state
    if found is not None:
        conn.execute(update(c).where(c.id == found).values(**values))
        return int(found)
    return int(
        conn.execute(
            c.__table__.insert()
            .values(
                brand_id=brand_id,
                row_key=key,
                kind=kind,
                id_type=id_type,
                id_value=id_value,
                staff_id=staff_id,
                group_id=group_id,
                created_at=created_at,
                **values,
            )
            .returning(c.id)
        ).scalar_one()
    )


def end(conn: Connection, *, connection_id: int, ended_at: datetime, ended_by: str) -> None:
    conn.execute(
        update(ConnectionRow)
        .where(ConnectionRow.id == connection_id)
        .values(ended_at=ended_at, ended_by=ended_by)
    )
