"""The fingerprint of each data key a database was sealed with (siyu.pii.keys)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, UTCDateTime, utcnow


class PiiKey(Base):
    """A key's one-way fingerprint: opening the database with another key is an error."""

    __tablename__ = "pii_key"

    key_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
