"""Acquisition channels — SPEC §3, §5.2."""

from __future__ import annotations

from sqlalchemy import Connection, select

from siyu.channels.models import Channel


def get_or_create(
    conn: Connection, *, brand_id: int, code: str, name: str | None = None, type: str | None = None
) -> int:
    """The channel with this code, created on first use."""
    found = conn.execute(
        select(Channel.id).where(Channel.brand_id == brand_id, Channel.code == code)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            Channel.__table__.insert()
            .values(brand_id=brand_id, code=code, name=name or code, type=type)
            .returning(Channel.id)
        ).scalar_one()
    )
