"""Saved segments (name, rule JSON, version, refresh counter) and their membership history
(entered/exited at a refresh) — issue #5.

Revision ID: 0004_segments
Revises: 0003_wecom
Create Date: 2026-11-23 10:21:57.802291
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0004_segments"
down_revision: str | None = "0003_wecom"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refresh_no", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brand.id"], name=op.f("fk_segment_brand_id_brand")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        sa.UniqueConstraint("brand_id", "name", name=op.f("uq_segment_brand_id_name")),
    )
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segment_brand_id"), ["brand_id"], unique=False)

    op.create_table(
        "segment_member",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("entered_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entered_refresh", sa.Integer(), nullable=False),
        sa.Column("exited_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exited_refresh", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_segment_member_customer_id_customer")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segment.id"],
            name=op.f("fk_segment_member_segment_id_segment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_member")),
    )
    with op.batch_alter_table("segment_member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_segment_member_current", ["segment_id", "exited_at", "customer_id"], unique=False
        )
        batch_op.create_index("ix_segment_member_customer", ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("segment_member", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_member_customer")
        batch_op.drop_index("ix_segment_member_current")

    op.drop_table("segment_member")
    with op.batch_alter_table("segment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_brand_id"))

    op.drop_table("segment")
