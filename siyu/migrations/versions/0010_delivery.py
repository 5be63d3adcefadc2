"""delivery: WeCom mass-message task intents; the outbox claim index ends with id

Revision ID: 0010_delivery
Revises: 0008_console
Create Date: 2026-11-23 13:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0010_delivery"
down_revision: str | None = "0013_wecom_sync"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_ready")
        batch_op.create_index("ix_outbox_ready", ["status", "not_before", "id"], unique=False)
    op.create_table(
        "wecom_mass_task",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chat_type", sa.String(length=8), nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("outbox_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("msgid", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("checked_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_mass_task")),
    )
    with op.batch_alter_table("wecom_mass_task", schema=None) as batch_op:
        batch_op.create_index("ix_wecom_mass_task_state", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wecom_mass_task", schema=None) as batch_op:
        batch_op.drop_index("ix_wecom_mass_task_state")
    op.drop_table("wecom_mass_task")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_ready")
        batch_op.create_index("ix_outbox_ready", ["status", "not_before"], unique=False)
