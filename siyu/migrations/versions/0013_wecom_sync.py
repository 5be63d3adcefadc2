"""WeCom sync state, directory mirror, transfers, event claims

Revision ID: 0013_wecom_sync
Revises: 0008_console
Create Date: 2026-11-23 12:54:31.722290
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0013_wecom_sync"
down_revision: str | None = "0011_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wecom_department",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("department_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("order", sa.Integer(), nullable=True),
        sa.Column("deleted_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_department_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("brand_id", "department_id", name=op.f("pk_wecom_department")),
    )
    op.create_table(
        "wecom_external_contact",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("unionid", sa.String(length=64), nullable=True),
        sa.Column("gender", sa.Integer(), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_external_contact_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint(
            "brand_id", "external_userid", name=op.f("pk_wecom_external_contact")
        ),
    )
    op.create_table(
        "wecom_sync_run",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_sync_run_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_wecom_sync_run")),
    )
    op.create_table(
        "wecom_sync_seen",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_sync_seen_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint(
            "brand_id", "run_id", "kind", "owner", "subject", name=op.f("pk_wecom_sync_seen")
        ),
    )
    op.create_table(
        "wecom_transfer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=8), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("handover_userid", sa.String(length=64), nullable=False),
        sa.Column("takeover_userid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("requested_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("takeover_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_transfer_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_transfer")),
    )
    with op.batch_alter_table("wecom_transfer", schema=None) as batch_op:
        batch_op.create_index(
            "ix_wecom_transfer_pair",
            ["brand_id", "handover_userid", "takeover_userid"],
            unique=False,
        )
        batch_op.create_index("ix_wecom_transfer_subject", ["brand_id", "subject_id"], unique=False)

    op.create_table(
        "wecom_member",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("userid", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("departments", sa.JSON(), nullable=False),
        sa.Column("main_department", sa.Integer(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("left_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_member_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_wecom_member_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("brand_id", "userid", name=op.f("pk_wecom_member")),
    )
    with op.batch_alter_table("wecom_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wecom_member_staff_id"), ["staff_id"], unique=False)

    with op.batch_alter_table("wecom_callback_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_at", siyu.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("wecom_contact_way", schema=None) as batch_op:
        batch_op.add_column(sa.Column("daily_cap", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wecom_contact_way", schema=None) as batch_op:
        batch_op.drop_column("daily_cap")
    with op.batch_alter_table("wecom_callback_event", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claimed_by")

    with op.batch_alter_table("wecom_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wecom_member_staff_id"))

    op.drop_table("wecom_member")
    with op.batch_alter_table("wecom_transfer", schema=None) as batch_op:
        batch_op.drop_index("ix_wecom_transfer_subject")
        batch_op.drop_index("ix_wecom_transfer_pair")

    op.drop_table("wecom_transfer")
    op.drop_table("wecom_sync_seen")
    op.drop_table("wecom_sync_run")
    op.drop_table("wecom_external_contact")
    op.drop_table("wecom_department")
