"""WeCom's directory (通讯录): departments and members, mirrored, each member a Siyu staff row.

SPEC §11: the staff directory is synced from WeCom. `siyu wecom sync` pulls it whole; the
change_contact callbacks (create_user / update_user / delete_user, create_party / update_party /
delete_party) keep it current in between. A member deleted from the directory has left the
company (离职): `left_at` is set, and their customers await a resigned transfer (离职继承).
Every write returns whether it changed anything, so a sync can say "nothing changed".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from siyu.staff import service as staff_service
from siyu.staff.models import Staff
from siyu.wecom.models import WeComDepartment, WeComMember

LEFT = 5  # WeCom member status 退出企业


def upsert_department(conn: Connection, *, brand_id: int, dept: dict[str, Any]) -> bool:
    """Store one department {id, name, parentid, order}; True when it changed."""
    d = WeComDepartment
    dept_id = int(dept["id"])
    values = {
        "name": str(dept.get("name") or dept_id),
        "parent_id": int(dept["parentid"]) if dept.get("parentid") not in (None, "") else None,
        "order": int(dept["order"]) if dept.get("order") not in (None, "") else None,
        "deleted_at": None,
    }
    row = conn.execute(
        select(d.name, d.parent_id, d.order, d.deleted_at).where(
            d.brand_id == brand_id, d.department_id == dept_id
        )
    ).first()
    if row is None:
        conn.execute(
            d.__table__.insert().values(brand_id=brand_id, department_id=dept_id, **values)
        )
        return True
    if tuple(row) == (values["name"], values["parent_id"], values["order"], None):
        return False
    conn.execute(
        update(d).where(d.brand_id == brand_id, d.department_id == dept_id).values(**values)
    )
    return True


def delete_department(conn: Connection, *, brand_id: int, department_id: int, at: datetime) -> bool:
    d = WeComDepartment
    return bool(
        conn.execute(
            update(d)
            .where(d.brand_id == brand_id, d.department_id == department_id, d.deleted_at.is_(None))
            .values(deleted_at=at)
        ).rowcount
    )


def _departments(value: Any) -> list[int]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    return sorted(int(v) for v in value)


def upsert_member(
    conn: Connection, *, brand_id: int, user: dict[str, Any], now: datetime | None = None
) -> bool:
    """Store one member as user/get or user/list gives it; True when anything changed.

    The member's staff row is found by WeCom userid (or created), and takes WeCom's name.
    """
    now = now or datetime.now(UTC)
    userid = str(user["userid"])
    name = str(user.get("name") or userid)
    status = int(user.get("status") or 1)
    departments = _departments(user.get("department"))
    main = user.get("main_department")
    main_department = int(main) if main not in (None, "") else (departments[:1] or [None])[0]
    m = WeComMember
    row = conn.execute(
        select(m.staff_id, m.name, m.departments, m.main_department, m.status, m.left_at).where(
            m.brand_id == brand_id, m.userid == userid
        )
    ).first()
    staff_id = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=brand_id, userid=userid, name=name
    )
    left_at = (row.left_at if row is not None else None) or (now if status == LEFT else None)
    if status != LEFT:
        left_at = None
    values = {
        "staff_id": staff_id,
        "name": name,
        "departments": departments,
        "main_department": main_department,
        "status": status,
        "left_at": left_at,
    }
    if row is None:
        conn.execute(
            m.__table__.insert().values(brand_id=brand_id, userid=userid, updated_at=now, **values)
        )
        return True
    current = {
        "staff_id": row.staff_id,
        "name": row.name,
        "departments": sorted(row.departments or []),
        "main_department": row.main_department,
        "status": row.status,
        "left_at": row.left_at,
    }
    if current == values:
        return False
    conn.execute(
        update(m).where(m.brand_id == brand_id, m.userid == userid).values(updated_at=now, **values)
    )
    return True


def member_from_event(conn: Connection, *, brand_id: int, fields: dict[str, str]) -> dict[str, Any]:
    """A user/get-shaped member from a change_contact event, over what is stored: update_user
    carries only the fields that changed."""
    m = WeComMember
    userid = fields.get("NewUserID") or fields["UserID"]
    row = conn.execute(
        select(m.name, m.departments, m.main_department, m.status).where(
            m.brand_id == brand_id, m.userid == userid
        )
    ).first()
    user: dict[str, Any] = {"userid": userid}
    if row is not None:
        user.update(
            name=row.name,
            department=row.departments,
            main_department=row.main_department,
            status=row.status,
        )
    for key, field in (
        ("name", "Name"),
        ("department", "Department"),
        ("main_department", "MainDepartment"),
        ("status", "Status"),
    ):
        if fields.get(field) not in (None, ""):
            user[key] = fields[field]
    return user


def department_from_event(
    conn: Connection, *, brand_id: int, fields: dict[str, str]
) -> dict[str, Any]:
    """A department/list-shaped department from create_party / update_party."""
    d = WeComDepartment
    dept_id = int(fields["Id"])
    row = conn.execute(
        select(d.name, d.parent_id, d.order).where(
            d.brand_id == brand_id, d.department_id == dept_id
        )
    ).first()
    dept: dict[str, Any] = {"id": dept_id}
    if row is not None:
        dept.update(name=row.name, parentid=row.parent_id, order=row.order)
    for key, field in (("name", "Name"), ("parentid", "ParentId"), ("order", "Order")):
        if fields.get(field) not in (None, ""):
            dept[key] = fields[field]
    return dept


def member_left(conn: Connection, *, brand_id: int, userid: str, at: datetime) -> bool:
    """The member was deleted from the directory (离职); True when that is news."""
    m = WeComMember
    exists = conn.execute(
        select(m.left_at).where(m.brand_id == brand_id, m.userid == userid)
    ).first()
    if exists is None:
        upsert_member(conn, brand_id=brand_id, user={"userid": userid, "status": LEFT}, now=at)
        return True
    if exists.left_at is not None:
        return False
    conn.execute(
        update(m)
        .where(m.brand_id == brand_id, m.userid == userid)
        .values(status=LEFT, left_at=at, updated_at=at)
    )
    return True


def rename_member(conn: Connection, *, brand_id: int, old: str, new: str) -> None:
    """update_user with NewUserID: WeCom changed the member's userid (allowed once)."""
    m = WeComMember
    conn.execute(update(m).where(m.brand_id == brand_id, m.userid == old).values(userid=new))
    conn.execute(
        update(Staff)
        .where(Staff.brand_id == brand_id, Staff.wecom_userid == old)
        .values(wecom_userid=new)
    )


def active_userids(conn: Connection, *, brand_id: int) -> list[str]:
    """Members who have not left, sorted: the staff whose customers a sync pulls."""
    m = WeComMember
    return list(
        conn.execute(
            select(m.userid).where(m.brand_id == brand_id, m.left_at.is_(None)).order_by(m.userid)
        ).scalars()
    )


def left_userids(conn: Connection, *, brand_id: int) -> set[str]:
    m = WeComMember
    return set(
        conn.execute(
            select(m.userid).where(m.brand_id == brand_id, m.left_at.is_not(None))
        ).scalars()
    )
