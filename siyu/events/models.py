"""Events, interactions and survey responses — SPEC §3."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime, utcnow


class Event(Base):
    """A typed, timestamped domain fact; the idempotency key makes every delivery count once."""

    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("brand_id", "idempotency_key"),
        Index("ix_event_type_id", "brand_id", "type", "id"),
    )

    # No foreign keys: the hot insert of every ingest (migration 0018_event_hot_table says why
    # no behaviour depends on them).
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(BigId)
    type: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Interaction(RowHashed, CustomerRef, Tracked, Base):
    __tablename__ = "interaction"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_interaction_ref", "brand_id", "id_type", "id_value"),
        Index("ix_interaction_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    row_key: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SurveyResponse(RowHashed, CustomerRef, Tracked, Base):
    __tablename__ = "survey_response"
    __table_args__ = (
        UniqueConstraint("brand_id", "row_key"),
        Index("ix_survey_response_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    row_key: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[int] = mapped_column(SmallInteger)
