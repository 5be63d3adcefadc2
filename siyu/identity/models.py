"""Source records, their identifiers, and the resolution that makes them customers — SPEC §4."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from siyu.db import Base, BigId, RowHashed, Tracked, UTCDateTime, utcnow

# Identifier types, in the order of the `records` columns of DATA_FORMAT.md.
IDENTITY_TYPES = (
    "external_userid",
    "unionid",
    "openid_mp",
    "openid_oa",
    "member_no",
    "phone",
    "email",
    "tmall_nick",
    "jd_pin",
    "douyin_openid",
    "youzan_id",
)


class SourceRecord(RowHashed, Base):
    """One source system's view of a person (a row of `records`, or implied by a reference)."""

    __tablename__ = "source_record"
    __table_args__ = (
        UniqueConstraint("brand_id", "record_key"),
        # An incremental identity pass starts from the records changed since the last one.
        Index("ix_source_record_brand_id_updated_at", "brand_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    record_key: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(64))
    # The name sealed for display, and its keyed hash for comparing (siyu.pii).
    name_hash: Mapped[str | None] = mapped_column(String(64))
    name_sealed: Mapped[str | None] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(String(16))
    birthday: Mapped[date | None] = mapped_column(Date)
    city: Mapped[str | None] = mapped_column(String(100))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    # The customer this record first resolved to: an unmerge revives that id for its component.
    first_customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Identifier(Tracked, Base):
    """A distinct identifier value (type, normalised value) and where it resolves.

    Facts reference customers by identifier; this row maps the value to its customer, so a
    merge or an unmerge never rewrites fact rows. status: linked (merges the records that carry
    it), quarantined (K-guard, SPEC §4: merges nothing, resolves to no customer), unlinked (an
    operator's unmerge: merges nothing, resolves to the oldest customer carrying it).

    Personal values (phone, email: siyu.pii.PII_ID_TYPES) are stored as their keyed hash in
    `value`, here and in every fact; `value_sealed` holds the value for display, and a
    phone's `tail_hash` indexes its last four digits for search.
    """

    __tablename__ = "identifier"
    __table_args__ = (
        UniqueConstraint("brand_id", "id_type", "value"),
        Index("ix_identifier_brand_id_tail_hash", "brand_id", "tail_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"))
    id_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(200))
    value_sealed: Mapped[str | None] = mapped_column(Text)
    tail_hash: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="linked")


class RecordIdentity(Base):
    """An identifier a record carries; the record gives its source (SPEC §3 Identity)."""

    __tablename__ = "record_identity"

    record_id: Mapped[int] = mapped_column(
        ForeignKey("source_record.id", ondelete="CASCADE"), primary_key=True
    )
    id_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    identifier_id: Mapped[int] = mapped_column(ForeignKey("identifier.id"), index=True)


class IdentifierOverride(Base):
    """An operator's decision that a value must not merge (`siyu identity unmerge`)."""

    __tablename__ = "identifier_override"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(500))


class QuarantinedIdentifier(Base):
    """A value carried by more than K records of one source (SPEC §4), listed for review."""

    __tablename__ = "quarantined_identifier"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    id_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdentityPass(Base):
    """The brand's last identity pass: the next one re-resolves only what changed since.

    started_at is when that pass began (less an overlap, it is where the next pass reads
    from); k_guard is the K it used: a different K changes quarantines anywhere, so the next
    pass is a full one.
    """

    __tablename__ = "identity_pass"

    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    k_guard: Mapped[int] = mapped_column(Integer)


class CustomerMerge(Base):
    """The history of merges and splits, so every change of identity is explainable."""

    __tablename__ = "customer_merge"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # merge / split
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    other_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str | None] = mapped_column(String(500))
