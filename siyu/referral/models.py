"""Referrals (裂变) — SPEC §3, §9."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, Tracked, UTCDateTime


class Referral(Tracked, Base):
    """An invitee attributed to one referrer: first touch, the earliest row per invitee."""

    __tablename__ = "referral"
    __table_args__ = (
        UniqueConstraint("brand_id", "invitee_id_type", "invitee_id_value"),
        Index("ix_referral_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    referrer_id_type: Mapped[str] = mapped_column(String(32))
    referrer_id_value: Mapped[str] = mapped_column(String(200))
    invitee_id_type: Mapped[str] = mapped_column(String(32))
    invitee_id_value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
