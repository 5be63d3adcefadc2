"""Issuing, checking and revoking integration tokens."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import Connection, insert, select, update

from siyu.auth.models import ApiToken
from siyu.db import utcnow

PREFIX = "siyu_"


class TokenError(ValueError):
    pass


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conn: Connection, brand_id: int, name: str) -> str:
    """A new token for integration `name`; the token itself is shown once and never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("name: give 1–100 characters")
    exists = conn.execute(
        select(ApiToken.id).where(ApiToken.brand_id == brand_id, ApiToken.name == name)
    ).first()
    if exists:
        raise TokenError(f"name: a token named {name!r} exists; revoke it first")
    token = PREFIX + secrets.token_urlsafe(32)
    conn.execute(insert(ApiToken).values(brand_id=brand_id, name=name, token_hash=_hash(token)))
    return token


def check(conn: Connection, token: str) -> tuple[int, str] | None:
    """(brand id, integration name) of a live token, or None."""
    row = conn.execute(
        select(ApiToken.id, ApiToken.brand_id, ApiToken.name).where(
            ApiToken.token_hash == _hash(token), ApiToken.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=utcnow()))
    return int(row.brand_id), str(row.name)


def revoke(conn: Connection, brand_id: int, name: str) -> bool:
    done = conn.execute(
        update(ApiToken)
        .where(ApiToken.brand_id == brand_id, ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(done.rowcount)
