"""Message deliveries — SPEC §3, §5.13 (reach rate), §7."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime, utcnow

DELIVERY_CHANNELS = ("wecom", "group", "sms", "oa")


class Delivery(RowHashed, CustomerRef, Tracked, Base):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_delivery_ref", "brand_id", "id_type", "id_value"),
        Index("ix_delivery_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    row_key: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # delivered / failed


# cancelled: never to be sent (its customer was erased, siyu.privacy.erase)
OUTBOX_STATUSES = ("pending", "claimed", "sent", "failed", "cancelled")


class OutboxItem(Base):
    """One outbound action, written before it is sent (ARCHITECTURE.md "Delivery guarantees").

    `dedup_key` is unique per brand — (sop, version, step, customer, occurrence) for SOP sends —
    so the same action can be enqueued any number of times and exists once. It doubles as the
    adapter's idempotency key: a row whose worker died between sending and recording is resolved
    by asking the adapter about that key, never by sending again.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("brand_id", "dedup_key"),
        # Matches claim's WHERE status = 'pending' … ORDER BY not_before, id: no sort of a
        # fan-out's rows (which share one not_before) to find the first few.
        Index("ix_outbox_ready", "status", "not_before", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign key: a per-row trigger on a fan-out's insert, for a brand never deleted
    # (migration 0017_sop_hot_tables).
    brand_id: Mapped[int] = mapped_column(BigId)
    dedup_key: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str] = mapped_column(String(32))  # wecom / group / sms / webhook …
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)  # quiet hours hold, retry backoff
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(500))
