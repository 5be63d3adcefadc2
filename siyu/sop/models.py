"""SOP 标准作业程序 definitions, their versions, journeys and staff tasks — SPEC §3, §7."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow

SOP_STATUSES = ("draft", "active", "paused")
ENROLLMENT_STATUSES = ("active", "done", "holdout")
TASK_STATUSES = ("open", "done", "skipped")


class Sop(Base):
    """A named SOP; its definition lives in immutable versions, `version` is the current one.

    The trigger state is kept here so a restart neither loses nor repeats a fire: the last
    event id read, the last cron instant fired and the last brand-local day scanned for
    relative dates.
    """

    __tablename__ = "sop"
    __table_args__ = (UniqueConstraint("brand_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    event_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    last_fire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scanned_day: Mapped[date | None] = mapped_column(Date)


class SopVersion(Base):
    """One immutable definition of an SOP (the validated YAML as JSON)."""

    __tablename__ = "sop_version"
    __table_args__ = (UniqueConstraint("sop_id", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sop_id: Mapped[int] = mapped_column(ForeignKey("sop.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100))


_ACTIVE = text("status = 'active'")


class SopEnrollment(Base):
    """A journey: one subject (a customer `c:<id>` or a group `g:<chat_id>`) through one SOP
    version for one trigger occurrence; unique, so a trigger read twice enrolls once."""

    __tablename__ = "sop_enrollment"
    __table_args__ = (
        # The exactly-once key: every enrollment is INSERT … ON CONFLICT on it.
        UniqueConstraint("sop_id", "version", "subject", "occurrence"),
        # The due sweep (siyu.sop.engine._advance) reads active journeys only; finished and
        # holdout ones (every fan-out journey) stay out of it.
        Index("ix_sop_enrollment_due", "due_at", postgresql_where=_ACTIVE, sqlite_where=_ACTIVE),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign keys: a per-row trigger on the hottest insert, for rows never deleted
    # (migration 0017_sop_hot_tables).
    brand_id: Mapped[int] = mapped_column(BigId)
    sop_id: Mapped[int] = mapped_column(BigId)
    version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(100))
    customer_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[str | None] = mapped_column(String(64))
    occurrence: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="active")
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(200))  # why a step did not reach them


class StaffTask(Base):
    """Work an SOP hands a guide (the 1:1 consultative path 一对一): do it, mark it done."""

    __tablename__ = "staff_task"
    __table_args__ = (
        UniqueConstraint("brand_id", "dedup_key"),
        Index("ix_staff_task_open", "brand_id", "staff_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    dedup_key: Mapped[str] = mapped_column(String(200))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")
    sop_key: Mapped[str | None] = mapped_column(String(64))
    sop_version: Mapped[int | None] = mapped_column(Integer)
    step_index: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
