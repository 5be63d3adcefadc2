"""Staff: guides, store managers and HQ persona accounts — SPEC §3, §11."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId

PERSONAS = ("brand", "expert", "founder", "sales", "assistant")


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("brand_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))  # staff_id in imports; WeCom userid by default
    name: Mapped[str] = mapped_column(String(200))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("store.id"), index=True)
    persona: Mapped[str | None] = mapped_column(String(16))
    wecom_userid: Mapped[str | None] = mapped_column(String(64))
