"""Events: no per-row foreign-key checks, and the type index in the order the SOP trigger reads

Every event the ingest API, a WeCom callback or a segment refresh records is one `event` row
(issue #7: ≥ 5,000 events/s single, ≥ 50,000/s batched). On PostgreSQL each foreign key is a
trigger call per inserted row (a `SELECT … FOR KEY SHARE` on the referenced row), on SQLite a
lookup per row: on PostgreSQL the two keys were about half of a 1,000-event insert (32 → 15 ms,
`EXPLAIN ANALYZE`, bench/RESULTS.md "Event ingest: the hot table").

Dropped, and why that changes no behaviour (the reasoning of 0017_sop_hot_tables):

- `event.brand_id → brand`: Siyu never deletes a brand, and every writer takes brand_id from the
  brand it was opened for (siyu.runtime.open_brand).
- `event.customer_id → customer`: Siyu never deletes a customer — a merged-away customer stays
  as a redirect, an erased one stays with its personal data cleared (siyu.privacy.erase) — and
  every writer names a customer it has just looked up: the ingest API rejects an event whose
  customer does not exist or is outside the token's scope (siyu.events.ingest), the other
  writers take the id from the row they read.

Changed: `ix_event_type_time` (brand_id, type, occurred_at) becomes `ix_event_type_id`
(brand_id, type, id). No query reads events by occurred_at; the SOP event trigger
(siyu.sop.triggers._events) reads one type's events in id order after its cursor, and new
events append at the end of this index instead of landing wherever their occurred_at falls.

Kept: the primary key; the unique (brand_id, idempotency_key) — the exactly-once key;
ix_event_customer_id — PIPL export and erasure (siyu.privacy).

Revision ID: 0018_event_hot_table
Revises: 0017_sop_hot_tables
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_event_hot_table"
down_revision: str | None = "0017_sop_hot_tables"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_event_brand_id_brand", type_="foreignkey")
        batch_op.drop_constraint("fk_event_customer_id_customer", type_="foreignkey")
        batch_op.drop_index("ix_event_type_time")
        batch_op.create_index("ix_event_type_id", ["brand_id", "type", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index("ix_event_type_id")
        batch_op.create_index(
            "ix_event_type_time", ["brand_id", "type", "occurred_at"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_event_customer_id_customer", "customer", ["customer_id"], ["id"]
        )
        batch_op.create_foreign_key("fk_event_brand_id_brand", "brand", ["brand_id"], ["id"])
