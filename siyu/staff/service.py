"""Staff: lookups by WeCom userid, and creating staff that first appear in WeCom — SPEC §11."""

from __future__ import annotations

from sqlalchemy import Connection, or_, select, update

from siyu.staff.models import Staff


def get_or_create_by_wecom_userid(
    conn: Connection, *, brand_id: int, userid: str, name: str | None = None
) -> int:
    """The staff member with this WeCom userid (or code); created when WeCom names someone new.

    A name given updates the stored one (WeCom's directory is the source of staff names).
    """
    found = conn.execute(
        select(Staff.id, Staff.name, Staff.wecom_userid)
        .where(Staff.brand_id == brand_id, or_(Staff.wecom_userid == userid, Staff.code == userid))
        .order_by(Staff.wecom_userid.is_(None))
    ).first()
    if found is not None:
        changes: dict[str, str] = {}
        if name and found.name != name:
            changes["name"] = name
        if found.wecom_userid is None:
            changes["wecom_userid"] = userid
        if changes:
            conn.execute(update(Staff).where(Staff.id == found.id).values(**changes))
        return int(found.id)
    return int(
        conn.execute(
            Staff.__table__.insert()
            .values(brand_id=brand_id, code=userid, name=name or userid, wecom_userid=userid)
            .returning(Staff.id)
        ).scalar_one()
    )
