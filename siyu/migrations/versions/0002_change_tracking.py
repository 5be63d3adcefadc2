"""change tracking for the warehouse: changed_at on every incrementally synced table

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACKED = (
    "order",
    "order_item",
    "connection",
    "channel_cost",
    "channel_reach",
    "membership",
    "referral",
    "delivery",
    "interaction",
    "survey_response",
    "opt_out",
    "identifier",
    "customer_tag",
)


def upgrade() -> None:
    for table in TRACKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "changed_at",
                    siyu.db.UTCDateTime(timezone=True),
                    server_default=siyu.db.EPOCH,
                    nullable=False,
                )
            )


def downgrade() -> None:
    for table in TRACKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("changed_at")
