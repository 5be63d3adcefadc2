"""import fast path: row_hash on the tables `siyu import` writes

A re-import drops rows whose hash is stored before they leave DuckDB (siyu/imports/upsert.py).
Existing rows start without a hash; the next import of them stores it without counting an update.

Revision ID: 0006_perf
Revises: 0005_api
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_perf"
down_revision: str | None = "0005_api"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASHED = (
    "source_record",
    "order",
    "order_item",
    "connection",
    "membership",
    "delivery",
    "interaction",
    "survey_response",
    "opt_out",
)


def upgrade() -> None:
    for table in HASHED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("row_hash", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table in HASHED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("row_hash")
