"""Tag groups and tags — SPEC §3, §6."""

from __future__ import annotations

from sqlalchemy import Connection, select

from siyu.tags.models import Tag, TagGroup


def get_or_create_group(conn: Connection, *, brand_id: int, name: str) -> int:
    found = conn.execute(
        select(TagGroup.id).where(TagGroup.brand_id == brand_id, TagGroup.name == name)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            TagGroup.__table__.insert().values(brand_id=brand_id, name=name).returning(TagGroup.id)
        ).scalar_one()
    )


def get_or_create_tag(conn: Connection, *, brand_id: int, group: str, name: str) -> int:
    """The tag `name` in group `group`, both created on first use."""
    group_id = get_or_create_group(conn, brand_id=brand_id, name=group)
    found = conn.execute(
        select(Tag.id).where(Tag.group_id == group_id, Tag.name == name)
    ).scalar_one_or_none()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            Tag.__table__.insert().values(group_id=group_id, name=name).returning(Tag.id)
        ).scalar_one()
    )
