"""Tag groups, tags and customer tags — SPEC §3, §6; shaped to map 1:1 onto WeCom corp tags.

A TagGroup is a WeCom corp tag group (`wecom_group_id`), a Tag one corp tag (`wecom_tag_id`):
a tag keeps its WeCom id through renames and merges. Kinds: manual (set by people, the API and
SOPs), imported, rule (members come from a segment rule, refreshed daily by
`siyu tags refresh`). Every change to a customer's tags goes through siyu.tags.service, which
writes one CustomerTagHistory row per change — also the warehouse's feed of removals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, Tracked, UTCDateTime, utcnow

KINDS = ("manual", "imported", "rule")
SOURCES = ("manual", "imported", "rule", "sop", "wecom")


class TagGroup(Base):
    __tablename__ = "tag_group"
    __table_args__ = (UniqueConstraint("brand_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    wecom_group_id: Mapped[str | None] = mapped_column(String(64))


class Tag(Base):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("tag_group.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16), default="manual")  # manual / imported / rule
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    wecom_tag_id: Mapped[str | None] = mapped_column(String(64))
    # A rule tag's segment rule (siyu.segments.rules), null for the other kinds.
    rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Moves with every batch of changes to the tag's customers; keys their events and
    # serialises concurrent batches on one tag.
    change_no: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CustomerTag(Tracked, Base):
    __tablename__ = "customer_tag"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id"), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(String(16))  # SOURCES


class CustomerTagHistory(Base):
    """One tag added to or removed from one customer: who (`by`), through what (`source`),
    when. The tag's name is kept as it was, so history outlives a deleted tag."""

    __tablename__ = "customer_tag_history"
    __table_args__ = (
        Index("ix_customer_tag_history_customer", "customer_id", "at"),
        Index("ix_customer_tag_history_feed", "brand_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    tag_id: Mapped[int] = mapped_column(BigInteger)  # no FK: the tag may since be deleted
    tag_name: Mapped[str] = mapped_column(String(201))  # group/name at the time
    action: Mapped[str] = mapped_column(String(8))  # added / removed
    by: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16))
    change_no: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
