"""Tags: history of every change, rule tags, the source of a customer's tag

Revision ID: 0012_tags
Revises: 0008_console
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0012_tags"
down_revision: str | None = "0009_sop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customer_tag_history",
        sa.Column("id", ID, nullable=False),
        sa.Column("brand_id", ID, nullable=False),
        sa.Column("customer_id", ID, nullable=False),
        sa.Column("tag_id", sa.BigInteger(), nullable=False),
        sa.Column("tag_name", sa.String(length=201), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("by", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("change_no", sa.Integer(), nullable=False),
        sa.Column("at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_customer_tag_history_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
            name=op.f("fk_customer_tag_history_customer_id_customer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_tag_history")),
    )
    with op.batch_alter_table("customer_tag_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_tag_history_customer", ["customer_id", "at"], unique=False
        )
        batch_op.create_index("ix_customer_tag_history_feed", ["brand_id", "at"], unique=False)
    with op.batch_alter_table("tag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("change_no", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_tag", schema=None) as batch_op:
        batch_op.drop_column("source")
    with op.batch_alter_table("tag", schema=None) as batch_op:
        batch_op.drop_column("change_no")
        batch_op.drop_column("rule")
    with op.batch_alter_table("customer_tag_history", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_tag_history_feed")
        batch_op.drop_index("ix_customer_tag_history_customer")
    op.drop_table("customer_tag_history")
