"""Console users: create, authenticate, sessions, and the Principal a session stands for."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from siyu.auth import passwords
from siyu.auth.models import User, UserSession
from siyu.auth.principal import ROLE_UNIT, ROLES, Principal
from siyu.db import utcnow
from siyu.orgs import service as org_service
from siyu.orgs.models import OrgUnit, Store
from siyu.staff.models import Staff

SESSION_HOURS = 12


class UserError(ValueError):
    """A user request that cannot be done; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def unit_for(conn: Connection, brand_id: int, role: str, org: str | None) -> Row[Any]:
    """The org unit `org` names for `role`: "HQ", a region name, or a store code."""
    org_service.sync_org_tree(conn, brand_id=brand_id)
    kind = ROLE_UNIT[role]
    if kind == "hq":
        if org not in (None, "", "HQ", "hq"):
            raise UserError("org", f"role {role} belongs to HQ; leave --org out or give HQ")
        return conn.execute(
            select(OrgUnit.__table__).where(OrgUnit.brand_id == brand_id, OrgUnit.kind == "hq")
        ).one()
    if not org:
        what = "a region name" if kind == "region" else "a store code"
        raise UserError("org", f"role {role} needs --org with {what}")
    unit = conn.execute(
        select(OrgUnit.__table__).where(
            OrgUnit.brand_id == brand_id, OrgUnit.kind == kind, OrgUnit.name == org
        )
    ).one_or_none()
    if unit is None:
        known = conn.execute(
            select(OrgUnit.name)
            .where(OrgUnit.brand_id == brand_id, OrgUnit.kind == kind)
            .order_by(OrgUnit.name)
        ).scalars()
        listed = ", ".join(list(known)[:20]) or "none yet — import stores first"
        raise UserError("org", f"no {kind} {org!r}; known: {listed}")
    return unit


def placement(
    conn: Connection, brand_id: int, role: str, org: str | None, staff_code: str | None
) -> tuple[Row[Any], int | None]:
    """The org unit (and a guide's staff id) that `role`, `org` and `staff_code` name — for a
    user or an API token alike; UserError names the field at fault."""
    if role not in ROLES:
        raise UserError("role", f"unknown role {role!r}; one of {', '.join(ROLES)}")
    staff_id = None
    if role == "guide":
        if not staff_code:
            raise UserError("staff", "a guide needs --staff with their staff code")
        staff = conn.execute(
            select(Staff.id, Store.code)
            .outerjoin(Store, Store.id == Staff.store_id)
            .where(Staff.brand_id == brand_id, Staff.code == staff_code)
        ).first()
        if staff is None:
            raise UserError("staff", f"no staff member with code {staff_code!r}")
        if staff.code is None:
            raise UserError("staff", f"staff {staff_code!r} belongs to no store")
        if org and org != staff.code:
            raise UserError("org", f"staff {staff_code!r} works at {staff.code}, not {org}")
        staff_id, org = int(staff.id), staff.code
    elif staff_code:
        raise UserError("staff", "only a guide is tied to a staff member")
    return unit_for(conn, brand_id, role, org), staff_id


def create(
    conn: Connection,
    *,
    brand_id: int,
    username: str,
    role: str,
    password: str,
    org: str | None = None,
    staff_code: str | None = None,
    display_name: str | None = None,
) -> int:
    """A new console user; a guide is tied to a staff member (and so to that staff's store)."""
    username = username.strip()
    if not username or len(username) > 100:
        raise UserError("name", "give 1–100 characters")
    if role not in ROLES:
        raise UserError("role", f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if len(password) < passwords.MIN_LENGTH:
        raise UserError("password", f"give at least {passwords.MIN_LENGTH} characters")
    unit, staff_id = placement(conn, brand_id, role, org, staff_code)
    taken = conn.execute(
        select(User.id).where(User.brand_id == brand_id, User.username == username)
    ).first()
    if taken:
        raise UserError("name", f"a user named {username!r} exists")
    return int(
        conn.execute(
            insert(User)
            .values(
                brand_id=brand_id,
                username=username,
                display_name=display_name or username,
                role=role,
                org_unit_id=unit.id,
                staff_id=staff_id,
                password_hash=passwords.hash_password(password),
            )
            .returning(User.id)
        ).scalar_one()
    )


def list_all(conn: Connection, *, brand_id: int) -> list[dict[str, object]]:
    rows = conn.execute(
        select(User.username, User.role, OrgUnit.name, User.disabled_at)
        .join(OrgUnit, OrgUnit.id == User.org_unit_id)
        .where(User.brand_id == brand_id)
        .order_by(User.username)
    ).all()
    return [{"name": r[0], "role": r[1], "org": r[2], "disabled": r[3] is not None} for r in rows]


def authenticate(conn: Connection, *, brand_id: int, username: str, password: str) -> int | None:
    """The user's id when the password is right and the user is enabled; else None."""
    row = conn.execute(
        select(User.id, User.password_hash).where(
            User.brand_id == brand_id, User.username == username, User.disabled_at.is_(None)
        )
    ).first()
    if row is None:
        passwords.verify(password, passwords.hash_password("x" * 8))  # same time either way
        return None
    return int(row.id) if passwords.verify(password, row.password_hash) else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(conn: Connection, *, user_id: int) -> str:
    """A new session token for the cookie; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        insert(UserSession).values(
            user_id=user_id,
            token_hash=_hash(token),
            expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
        )
    )
    return token


def close_session(conn: Connection, *, token: str) -> None:
    conn.execute(delete(UserSession).where(UserSession.token_hash == _hash(token)))


def session_user(conn: Connection, *, brand_id: int, token: str) -> int | None:
    """The enabled user behind a live session token, or None."""
    row = conn.execute(
        select(User.id)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == _hash(token),
            UserSession.expires_at > utcnow(),
            User.brand_id == brand_id,
            User.disabled_at.is_(None),
        )
    ).first()
    return None if row is None else int(row.id)


def principal(conn: Connection, *, user_id: int) -> Principal:
    """What the user may read, worked out from the org tree as it is now (a store added to a
    region later is in its manager's scope at once)."""
    user = conn.execute(select(User.__table__).where(User.id == user_id)).one()
    unit = conn.execute(select(OrgUnit.__table__).where(OrgUnit.id == user.org_unit_id)).one()
    return Principal(
        user_id=user.id,
        brand_id=user.brand_id,
        username=user.username,
        display_name=user.display_name or user.username,
        role=user.role,
        org_unit=unit.name,
        store_ids=stores_under(conn, brand_id=user.brand_id, unit_id=unit.id, kind=unit.kind),
        staff_id=user.staff_id,
    )


def principal_by_name(conn: Connection, *, brand_id: int, username: str) -> Principal:
    """The principal of the enabled user `username` (`siyu customer show --as NAME`)."""
    user_id = conn.execute(
        select(User.id).where(
            User.brand_id == brand_id, User.username == username, User.disabled_at.is_(None)
        )
    ).scalar_one_or_none()
    if user_id is None:
        raise UserError("as", f"no enabled console user named {username!r} (see `siyu user list`)")
    return principal(conn, user_id=int(user_id))


def stores_under(
    conn: Connection, *, brand_id: int, unit_id: int, kind: str
) -> tuple[int, ...] | None:
    """The ids of the stores in the org subtree of `unit_id`; None for HQ (every store)."""
    if kind == "hq":
        return None
    units = conn.execute(
        select(OrgUnit.id, OrgUnit.parent_id).where(OrgUnit.brand_id == brand_id)
    ).all()
    children: dict[int | None, list[int]] = {}
    for uid, parent in units:
        children.setdefault(parent, []).append(uid)
    subtree, todo = set(), [unit_id]
    while todo:
        u = todo.pop()
        subtree.add(u)
        todo.extend(children.get(u, []))
    ids = conn.execute(
        select(Store.id).where(Store.brand_id == brand_id, Store.org_unit_id.in_(subtree))
    ).scalars()
    return tuple(sorted(int(i) for i in ids))


def set_password(conn: Connection, *, brand_id: int, username: str, password: str) -> bool:
    """Replace a user's password and end their sessions; False when there is no such user."""
    if len(password) < passwords.MIN_LENGTH:
        raise UserError("password", f"give at least {passwords.MIN_LENGTH} characters")
    user_id = conn.execute(
        select(User.id).where(User.brand_id == brand_id, User.username == username)
    ).scalar_one_or_none()
    if user_id is None:
        return False
    conn.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=passwords.hash_password(password))
    )
    conn.execute(delete(UserSession).where(UserSession.user_id == user_id))
    return True


def ensure(
    conn: Connection, *, brand_id: int, username: str, role: str, password: str,
    org: str | None = None,
) -> None:  # fmt: skip
    """Create the user, or give an existing one this password (used by `siyu demo`)."""
    if not set_password(conn, brand_id=brand_id, username=username, password=password):
        create(conn, brand_id=brand_id, username=username, role=role, password=password, org=org)
