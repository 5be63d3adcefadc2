"""API tokens per integration and console users: only SHA-256s of tokens are stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class ApiToken(Base):
    """An integration's bearer token. Like a user it has a role and an org unit (what it may
    read of the org tree; a guide token is tied to a staff member), and on top a set of
    scopes (siyu.auth.principal.SCOPES, space-separated) saying which endpoints it may call."""

    __tablename__ = "api_token"
    __table_args__ = (UniqueConstraint("token_hash"), UniqueConstraint("brand_id", "name"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    # null: the brand's HQ (tokens issued before org units existed)
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    scopes: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A person using the console. Their role and org unit decide what they may read (SPEC §1):
    HQ roles the whole brand, a region manager the region's stores, a store manager the store,
    a guide (tied to a staff member) the customers they are connected with."""

    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("brand_id", "username"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    username: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A console login: the cookie holds a random token, the table only its SHA-256, so a
    session can be ended (logout, disabled user) and a stolen table opens nothing."""

    __tablename__ = "user_session"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
