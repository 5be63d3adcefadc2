"""Products, orders and their items — SPEC §3, §5."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, CustomerRef, RowHashed, Tracked, UTCDateTime

STATUSES = ("paid", "cancelled", "refunded")
LADDER_ROLES = ("traffic", "trust", "profit", "extension")


class Product(Base):
    __tablename__ = "product"
    __table_args__ = (UniqueConstraint("brand_id", "sku"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))
    price_fen: Mapped[int | None] = mapped_column(BigInteger)
    ladder_role: Mapped[str | None] = mapped_column(String(16))


class Order(RowHashed, CustomerRef, Tracked, Base):
    """An order in fen. Paid = not cancelled and refund_fen < amount_fen (DATA_FORMAT.md)."""

    __tablename__ = "order"
    __table_args__ = (
        UniqueConstraint("brand_id", "order_key"),
        Index("ix_order_ref", "brand_id", "id_type", "id_value"),
        Index("ix_order_created", "brand_id", "created_at"),
        Index("ix_order_changed", "brand_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    order_key: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("store.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    refund_fen: Mapped[int] = mapped_column(BigInteger, default=0)


class OrderItem(RowHashed, Tracked, Base):
    __tablename__ = "order_item"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("order.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    qty: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
