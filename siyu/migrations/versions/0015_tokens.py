"""Role-bound API tokens (role, org unit, scopes)

Existing tokens become hq_admin tokens of the brand's HQ with every scope, so an integration
that worked before keeps working.

Revision ID: 0015_tokens
Revises: 0010_delivery
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_tokens"
down_revision: str | None = "0010_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("org_unit_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("staff_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.String(length=100), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_api_token_org_unit_id_org_unit"), "org_unit", ["org_unit_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_api_token_staff_id_staff"), "staff", ["staff_id"], ["id"]
        )
    op.execute(
        "UPDATE api_token SET role = 'hq_admin', scopes = 'ingest read write pii', "
        "org_unit_id = (SELECT min(u.id) FROM org_unit u "
        " WHERE u.brand_id = api_token.brand_id AND u.kind = 'hq')"
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.alter_column("role", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("scopes", existing_type=sa.String(length=100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_token_staff_id_staff"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_api_token_org_unit_id_org_unit"), type_="foreignkey"
        )
        batch_op.drop_column("scopes")
        batch_op.drop_column("staff_id")
        batch_op.drop_column("org_unit_id")
        batch_op.drop_column("role")
