"""The unified customer — SPEC §3, §4."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class Customer(Base):
    """One person across every source. A merged-away id keeps its row and redirects."""

    __tablename__ = "customer"
    __table_args__ = (Index("ix_customer_brand_id_name_hash", "brand_id", "name_hash"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    # Profile, merged from records by source priority then most recent non-null (SPEC §4).
    # The name sealed for display (siyu.pii) and its keyed hash, for exact-name search.
    name_hash: Mapped[str | None] = mapped_column(String(64))
    name_sealed: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(16))
    birthday: Mapped[date | None] = mapped_column(Date)
    city: Mapped[str | None] = mapped_column(String(100))
    # Set when the person's data was erased (PIPL, siyu.privacy.erase): the row stays as the
    # anonymous holder of their orders and connections, so every figure stays as it was.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
