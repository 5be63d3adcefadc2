"""Marketing consent and opt-outs (退订) — SPEC §12."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime


class OptOut(RowHashed, CustomerRef, Tracked, Base):
    """A customer's opt-out; channel null means every marketing channel."""

    __tablename__ = "opt_out"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_opt_out_ref", "brand_id", "id_type", "id_value"),
        Index("ix_opt_out_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    row_key: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
