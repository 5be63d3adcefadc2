"""Connections: free, repeatable ways to reach a customer — SPEC §3, §5.1."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime

KINDS = ("wecom_friend", "group_member", "oa_follow")


class Connection(RowHashed, CustomerRef, Tracked, Base):
    """A WeCom friendship with a staff member, a brand-group membership or an OA follow.

    Active at instant t when created_at ≤ t and (ended_at is null or ended_at > t).
    """

    __tablename__ = "connection"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_connection_ref", "brand_id", "id_type", "id_value"),
        Index("ix_connection_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    # md5 of the natural key (kind, id_type, id_value, staff, group, created_at): nullable parts
    # would defeat a composite unique constraint on both engines.
    row_key: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("chat_group.id"), index=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(16))  # customer / staff / system
    state: Mapped[str | None] = mapped_column(String(64))  # WeCom contact-way state
