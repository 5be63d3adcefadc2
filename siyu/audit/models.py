"""The audit log (SPEC §12): reads of unmasked personal data, exports, sends, and refused
out-of-scope requests — who, what, when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow

ACTIONS = ("pii.read", "export", "send", "denied", "erase", "recollect")


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_brand_at", "brand_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # "user:name" or "token:integration"
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))  # e.g. "customer:42", "segment-count"
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
