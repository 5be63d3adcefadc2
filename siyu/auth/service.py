"""Issuing, checking, listing and revoking integration tokens.

A token is bound like a console user — a role and an org unit (siyu.auth.users.placement) —
and carries scopes (siyu.auth.principal.SCOPES) that say which endpoints it may call. The
default is the least that covers ingest: brand-wide (ingested rows name any store), without
the right to personal data, scope `ingest` only — it can post events and rows, and read
nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from siyu.auth import users
from siyu.auth.models import ApiToken
from siyu.auth.principal import SCOPES, Principal
from siyu.db import utcnow
from siyu.orgs.models import OrgUnit
from siyu.staff.models import Staff

PREFIX = "siyu_"
DEFAULT_ROLE = "hq_operator"
DEFAULT_SCOPES = ("ingest",)
# last_used_at is written at most this often per token: a busy integration's every request
# would otherwise be a write (and, on SQLite, a turn of the single writer).
TOUCH_EVERY = timedelta(minutes=1)
# A server remembers a checked token this long: a busy integration's requests do not each
# cost a database read. A revocation reaches every server process within this time (at once
# in the process that revokes).
REMEMBER_SECONDS = 1.0
_remembered: dict[tuple[str, str], tuple[float, Principal]] = {}
_remembered_lock = threading.Lock()


class TokenError(ValueError):
    """A token request that cannot be done; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Scopes as given (`read,pii` or several values), checked and in SCOPES order."""
    given = {s.strip().lower() for part in scopes for s in part.split(",") if s.strip()}
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise TokenError("scope", f"unknown scope {unknown[0]!r}; one of {', '.join(SCOPES)}")
    if not given:
        raise TokenError("scope", f"give at least one of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def create(
    conn: Connection,
    brand_id: int,
    name: str,
    *,
    role: str = DEFAULT_ROLE,
    org: str | None = None,
    staff_code: str | None = None,
    scopes: Iterable[str] = DEFAULT_SCOPES,
) -> str:
    """A new token for integration `name`; the token itself is shown once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("name", "give 1–100 characters")
    chosen = parse_scopes(scopes)
    try:
        unit, staff_id = users.placement(conn, brand_id, role, org, staff_code)
    except users.UserError as e:
        raise TokenError(e.field, str(e).partition(": ")[2]) from None
    exists = conn.execute(
        select(ApiToken.revoked_at).where(ApiToken.brand_id == brand_id, ApiToken.name == name)
    ).first()
    if exists:
        # A revoked token keeps its name: the audit log names integrations by it.
        why = "was revoked; choose another name" if exists[0] else "exists; revoke it first"
        raise TokenError("name", f"a token named {name!r} {why}")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        insert(ApiToken).values(
            brand_id=brand_id,
            name=name,
            token_hash=_hash(token),
            role=role,
            org_unit_id=unit.id,
            staff_id=staff_id,
            scopes=" ".join(chosen),
        )  # fmt: skip
    )
    return token


def peek(store: str, token: str) -> Principal | None:
    """The remembered principal of `token`, if it was checked less than REMEMBER_SECONDS ago."""
    hit = _remembered.get((store, _hash(token)))
    return hit[1] if hit is not None and hit[0] > time.monotonic() else None


def remembered(store: str, token: str, load: Callable[[str], Principal | None]) -> Principal | None:
    """`check` through a short in-process memory (REMEMBER_SECONDS): `load(token)` runs the
    real check on a miss. `store` names the database, so two brands' stores never mix."""
    key = (store, _hash(token))
    now = time.monotonic()
    hit = _remembered.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    found = load(token)
    with _remembered_lock:
        if found is None:
            _remembered.pop(key, None)
        else:
            if len(_remembered) > 10_000:  # many tokens: forget the expired ones
                for k in [k for k, (until, _) in _remembered.items() if until <= now]:
                    del _remembered[k]
            _remembered[key] = (now + REMEMBER_SECONDS, found)
    return found


def forget_all() -> None:
    """Drop every remembered token (a revocation in this process takes effect at once)."""
    with _remembered_lock:
        _remembered.clear()


def check(conn: Connection, token: str) -> Principal | None:
    """What a live token may do, or None for an unknown or revoked one."""
    t, u = ApiToken.__table__.c, OrgUnit.__table__.c
    row = conn.execute(
        select(
            t.id,
            t.brand_id,
            t.name,
            t.role,
            t.org_unit_id,
            t.staff_id,
            t.scopes,
            t.last_used_at,
            u.name.label("unit"),
            u.kind,
        )  # fmt: skip
        .select_from(ApiToken.__table__.outerjoin(OrgUnit.__table__, u.id == t.org_unit_id))
        .where(t.token_hash == _hash(token), t.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    store_ids = None
    if row.org_unit_id is not None:
        store_ids = users.stores_under(
            conn, brand_id=row.brand_id, unit_id=row.org_unit_id, kind=row.kind
        )
    return Principal(
        user_id=0, brand_id=int(row.brand_id), username=row.name, display_name=row.name,
        role=row.role, org_unit=row.unit or "HQ", store_ids=store_ids, staff_id=row.staff_id,
        kind="token", scopes=frozenset(row.scopes.split()),
    )  # fmt: skip


def list_all(conn: Connection, *, brand_id: int) -> list[dict[str, Any]]:
    """Every token of the brand (live and revoked), with its role, org unit and scopes."""
    t, u, s = ApiToken.__table__.c, OrgUnit.__table__.c, Staff.__table__.c
    rows = conn.execute(
        select(
            t.name,
            t.role,
            u.name.label("org"),
            s.code.label("staff"),
            t.scopes,
            t.created_at,
            t.last_used_at,
            t.revoked_at,
        )  # fmt: skip
        .select_from(
            ApiToken.__table__.outerjoin(OrgUnit.__table__, u.id == t.org_unit_id).outerjoin(
                Staff.__table__, s.id == t.staff_id
            )
        )
        .where(t.brand_id == brand_id)
        .order_by(t.name)
    ).mappings()
    return [{**r, "org": r["org"] or "HQ", "scopes": r["scopes"].split()} for r in rows]


def revoke(conn: Connection, brand_id: int, name: str) -> bool:
    done = conn.execute(
        update(ApiToken)
        .where(ApiToken.brand_id == brand_id, ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    forget_all()
    return bool(done.rowcount)
