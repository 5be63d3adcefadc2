"""Membership — SPEC §3, §8."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, RowHashed, Tracked, UTCDateTime


class Membership(RowHashed, Tracked, Base):
    """A member card; its member_no is also an identifier that resolves to the customer."""

    __tablename__ = "membership"
    __table_args__ = (
        UniqueConstraint("brand_id", "member_no"),
        Index("ix_membership_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    member_no: Mapped[str] = mapped_column(String(64))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    level: Mapped[str | None] = mapped_column(String(64))
    points: Mapped[int | None] = mapped_column(BigInteger)
