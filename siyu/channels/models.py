"""Acquisition channels with daily cost and reach — SPEC §3, §5.2, §5.7."""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, Tracked


class Channel(Base):
    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("brand_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str | None] = mapped_column(String(64))


class ChannelCost(Tracked, Base):
    __tablename__ = "channel_cost"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    cost_fen: Mapped[int] = mapped_column(BigInteger)


class ChannelReach(Tracked, Base):
    """Reach events of a day: QR scans, invites sent, landing-page views (SPEC §5.2)."""

    __tablename__ = "channel_reach"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
