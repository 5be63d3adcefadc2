"""SOP journeys and the outbox: no per-row foreign-key checks, no index the writes do not need

A large scheduled push writes one `sop_enrollment` row and one `outbox` row per recipient
(siyu.sop.fanout; issue #6: 1M recipients ≤ 30 s). On PostgreSQL every foreign key is a trigger
call per inserted row (a `SELECT … FOR KEY SHARE` on the referenced row); on the fan-out's
journey insert the two keys were ~40 % of the statement, the outbox's one ~20 % of its insert
(`EXPLAIN ANALYZE`, bench/RESULTS.md "SOP tick fan-out: the hot tables").

Dropped, and why that changes no behaviour:

- `sop_enrollment.brand_id → brand`, `outbox.brand_id → brand`: Siyu never deletes a brand,
  and every writer takes brand_id from the brand it was opened for (siyu.runtime.open_brand).
- `sop_enrollment.sop_id → sop ON DELETE CASCADE`: Siyu never deletes an SOP (they are
  paused, siyu.sop.service.set_status) and its versions stay for the journeys' sake; the
  writers take sop_id from the SOP row they just read. Journeys are never deleted either:
  erasure ends them in place (siyu.privacy.erase), merges leave them on the old customer id.
- `ix_sop_enrollment_brand_id`: no query reads journeys by brand alone — the due sweep uses
  `ix_sop_enrollment_due`, erasure and export `ix_sop_enrollment_customer_id`, per-SOP
  figures the unique key (sop_id first).

Changed: `ix_sop_enrollment_due` (status, due_at) becomes (due_at) WHERE status = 'active' —
the only rows the due sweep (siyu.sop.engine._advance) reads; journeys stored finished or in
the holdout, every fan-out journey, no longer enter it.

What remains on sop_enrollment: the primary key; the unique (sop_id, version, subject,
occurrence) — the exactly-once key every enrollment's ON CONFLICT names, and the per-SOP
reads (report, status counts); ix_sop_enrollment_customer_id — erasure and export; the partial
ix_sop_enrollment_due. On outbox: the primary key (claim's id = ANY, record's UPDATE); the
unique (brand_id, dedup_key) — the exactly-once key; ix_outbox_ready — claim's order.

Revision ID: 0017_sop_hot_tables
Revises: 0016_fact_changed
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_sop_hot_tables"
down_revision: str | None = "0016_fact_changed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    with op.batch_alter_table("sop_enrollment", schema=None) as batch_op:
        batch_op.drop_constraint("fk_sop_enrollment_brand_id_brand", type_="foreignkey")
        batch_op.drop_constraint("fk_sop_enrollment_sop_id_sop", type_="foreignkey")
        batch_op.drop_index("ix_sop_enrollment_brand_id")
        batch_op.drop_index("ix_sop_enrollment_due")
        batch_op.create_index(
            "ix_sop_enrollment_due", ["due_at"], unique=False,
            postgresql_where=ACTIVE, sqlite_where=ACTIVE,
        )  # fmt: skip
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_brand_id_brand", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_foreign_key("fk_outbox_brand_id_brand", "brand", ["brand_id"], ["id"])
    with op.batch_alter_table("sop_enrollment", schema=None) as batch_op:
        batch_op.drop_index("ix_sop_enrollment_due")
        batch_op.create_index("ix_sop_enrollment_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_sop_enrollment_brand_id", ["brand_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_sop_enrollment_sop_id_sop", "sop", ["sop_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            "fk_sop_enrollment_brand_id_brand", "brand", ["brand_id"], ["id"]
        )
