"""Role-bound API tokens (role, org unit, scopes); PIPL erasure (tombstones, erasure list)

Existing tokens become hq_admin tokens of the brand's HQ with every scope, so an integration
that worked before keeps working. Customers get erased_at; erasures are logged, their lookup
keys block re-imports, and the identifier ids they deleted feed the warehouse.

Revision ID: 0015_tokens
Revises: 0014_pii
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0015_tokens"
down_revision: str | None = "0014_pii"
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

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erased_at", siyu.db.UTCDateTime(timezone=True)))
    op.create_table(
        "customer_erasure",
        sa.Column("id", BigId, nullable=False),
        sa.Column("brand_id", BigId, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("erased_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_customer_erasure_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_customer_erasure_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_erasure")),
    )
    with op.batch_alter_table("customer_erasure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_erasure_brand_id"), ["brand_id"])
        batch_op.create_index(batch_op.f("ix_customer_erasure_customer_id"), ["customer_id"])
    op.create_table(
        "erasure_block",
        sa.Column("brand_id", BigId, nullable=False),
        sa.Column("lookup", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("erased_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_erasure_block_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_erasure_block_customer_id_customer")
        ),
        sa.PrimaryKeyConstraint("brand_id", "lookup", name=op.f("pk_erasure_block")),
    )
    op.create_table(
        "erased_identifier",
        sa.Column("identifier_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("brand_id", BigId, nullable=False),
        sa.Column("erased_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_erased_identifier_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("identifier_id", name=op.f("pk_erased_identifier")),
    )
    with op.batch_alter_table("erased_identifier", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erased_identifier_brand_id"), ["brand_id"])


def downgrade() -> None:
    with op.batch_alter_table("erased_identifier", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erased_identifier_brand_id"))
    op.drop_table("erased_identifier")
    op.drop_table("erasure_block")
    with op.batch_alter_table("customer_erasure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_erasure_customer_id"))
        batch_op.drop_index(batch_op.f("ix_customer_erasure_brand_id"))
    op.drop_table("customer_erasure")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_api_token_staff_id_staff"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_api_token_org_unit_id_org_unit"), type_="foreignkey"
        )
        batch_op.drop_column("scopes")
        batch_op.drop_column("staff_id")
        batch_op.drop_column("org_unit_id")
        batch_op.drop_column("role")
