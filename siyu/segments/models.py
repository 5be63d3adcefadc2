"""Saved segments and their membership history — SPEC §6, §7 (segment entry/exit triggers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class Segment(Base):
    """A named rule (siyu.segments.rules); `version` moves when the rule changes, `refresh_no`
    with every refresh (it keys the entry/exit events of that refresh)."""

    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    refresh_no: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    member_count: Mapped[int] = mapped_column(Integer, default=0)


class SegmentMember(Base):
    """One stay of a customer in a segment: entered at a refresh, exited at a later one (null
    while still a member). A customer who leaves and comes back has two rows."""

    __tablename__ = "segment_member"
    __table_args__ = (
        Index("ix_segment_member_current", "segment_id", "exited_at", "customer_id"),
        Index("ix_segment_member_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segment.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entered_refresh: Mapped[int] = mapped_column(Integer)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exited_refresh: Mapped[int | None] = mapped_column(Integer)
