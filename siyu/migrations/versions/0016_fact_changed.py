"""Index (brand_id, changed_at) on the fact tables that name customers by identifier

An incremental identity pass reads the values facts named since its last pass
(siyu.identity.scope, FACT_REFERENCES in siyu.identity.facts); without these indexes that read
scans every fact of the brand, however little changed. The event feed (siyu.events.facts) and
the warehouse sync read orders, memberships and referrals by changed_at the same way.

Revision ID: 0016_fact_changed
Revises: 0015_tokens
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_fact_changed"
down_revision: str | None = "0015_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "order",
    "connection",
    "delivery",
    "interaction",
    "survey_response",
    "opt_out",
    "referral",
    "membership",
)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f"ix_{table}_changed", ["brand_id", "changed_at"], unique=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_changed")
