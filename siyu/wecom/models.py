"""WeCom integration state: shared access tokens, stored callbacks, contact ways, welcome outbox.

Nothing here is a customer fact: connections, identities and tags live in their own domains;
these tables are what the integration needs to speak WeCom's protocol exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class WeComAccessToken(Base):
    """One access_token per (corp, secret), shared by every process (WeCom allows few gettokens).

    The secret itself is never stored: `secret_hash` is its SHA-256.
    """

    __tablename__ = "wecom_access_token"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WeComCallbackEvent(Base):
    """A decrypted callback as received; processed from here, so a failure can be retried.

    `event_key` is the SHA-256 of the event's content (not of the delivery): WeCom's retries and
    duplicate deliveries carry a new nonce and ciphertext but the same content, and collapse here.
    status: pending → processed | failed (retried while attempts remain) | ignored (unknown type).
    """

    __tablename__ = "wecom_callback_event"
    __table_args__ = (
        UniqueConstraint("brand_id", "event_key"),
        Index("ix_wecom_callback_event_todo", "brand_id", "status", "create_time"),
        Index("ix_wecom_callback_event_pair", "brand_id", "user_id", "external_userid"),
        Index("ix_wecom_callback_event_chat", "brand_id", "chat_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    event_key: Mapped[str] = mapped_column(String(64))
    corp_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    change_type: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    external_userid: Mapped[str | None] = mapped_column(String(64))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    xml: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComCallbackNonce(Base):
    """(timestamp, nonce) of every accepted delivery inside the skew window: a replay is refused."""

    __tablename__ = "wecom_callback_nonce"

    timestamp: Mapped[str] = mapped_column(String(20), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class WeComContactWay(Base):
    """A channel live code (渠道活码, WeCom 「联系我」): its `state` attributes adds to a channel.

    welcome: {"text": "...{name}...", "attachments": [WeCom attachment objects]} or null;
    tag_ids: Siyu tag ids applied (in WeCom and in Siyu) to every customer added through it.
    """

    __tablename__ = "wecom_contact_way"
    __table_args__ = (
        UniqueConstraint("brand_id", "config_id"),
        UniqueConstraint("brand_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    config_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("store.id"), index=True)
    user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    qr_code: Mapped[str | None] = mapped_column(String(500))
    remark: Mapped[str | None] = mapped_column(String(100))
    welcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tag_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComWelcome(Base):
    """Outbox of welcome messages: a WelcomeCode is claimed here before it is ever sent.

    status: sending (claimed; a crash here is resolved by asking WeCom: 41051 means delivered)
    → sent | failed (errcode says why). A code is never sent twice.
    """

    __tablename__ = "wecom_welcome"
    __table_args__ = (UniqueConstraint("brand_id", "welcome_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    welcome_code: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(64))
    external_userid: Mapped[str] = mapped_column(String(64))
    contact_way_id: Mapped[int | None] = mapped_column(ForeignKey("wecom_contact_way.id"))
    status: Mapped[str] = mapped_column(String(16), default="sending")
    errcode: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WeComContactTag(Base):
    """WeCom's corp tags as they sit on one (staff, external contact) pair — a mirror of WeCom.

    Customer tags in Siyu are derived from it after identity resolution, so a tag reaches the
    customer whoever of the staff carries it.
    """

    __tablename__ = "wecom_contact_tag"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_userid: Mapped[str] = mapped_column(String(64), primary_key=True)
    wecom_tag_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
