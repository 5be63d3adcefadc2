"""Message deliveries — SPEC §3, §5.13 (reach rate), §7."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime

DELIVERY_CHANNELS = ("wecom", "group", "sms", "oa")


class Delivery(RowHashed, CustomerRef, Tracked, Base):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_delivery_ref", "brand_id", "id_type", "id_value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    row_key: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # delivered / failed
