"""Erasures (PIPL): the log, the lookup keys a re-import is checked against, and the feed that
tells the warehouse which identifier rows are gone — none of it holds personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, UTCDateTime, utcnow


class CustomerErasure(Base):
    """One erasure: whose, when, by whom, why, and how many rows of each kind it touched."""

    __tablename__ = "customer_erasure"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ErasureBlock(Base):
    """A lookup key (siyu.privacy.lookup: a SHA-256 of kind and value, never the value) of an
    identifier or source record of an erased person. An import row carrying one is rejected,
    so a re-sent file cannot bring the person back silently; `siyu customer recollect` lifts
    the block once the person has given fresh consent."""

    __tablename__ = "erasure_block"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    lookup: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # an identifier type, or "record"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ErasedIdentifier(Base):
    """Identifier rows an erasure deleted: the warehouse drops them on its next sync
    (siyu.warehouse.mirrors `identifiers`.removed), as a change stamp cannot show a deletion."""

    __tablename__ = "erased_identifier"

    identifier_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
