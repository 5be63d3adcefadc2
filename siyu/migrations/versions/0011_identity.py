"""incremental identity resolution: the last pass per brand, records by change time

Revision ID: 0011_identity
Revises: 0008_console
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0011_identity"
down_revision: str | None = "0012_tags"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_pass",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("started_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("k_guard", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_identity_pass_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_identity_pass")),
    )
    op.create_index(
        "ix_source_record_brand_id_updated_at",
        "source_record",
        ["brand_id", "updated_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_source_record_brand_id_updated_at", table_name="source_record")
    op.drop_table("identity_pass")
