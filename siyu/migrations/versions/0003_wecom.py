"""WeCom integration: shared access tokens, stored callbacks, replay guard, contact ways,
welcome outbox, per-pair corp-tag mirror.

Revision ID: 0003_wecom
Revises: 0002
Create Date: 2026-11-23 09:43:32.151058
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import siyu.db

revision: str = "0003_wecom"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wecom_access_token",
        sa.Column("corp_id", sa.String(length=64), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.String(length=512), nullable=False),
        sa.Column("expires_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("corp_id", "secret_hash", name=op.f("pk_wecom_access_token")),
    )
    op.create_table(
        "wecom_callback_nonce",
        sa.Column("timestamp", sa.String(length=20), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("received_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("timestamp", "nonce", name=op.f("pk_wecom_callback_nonce")),
    )
    with op.batch_alter_table("wecom_callback_nonce", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wecom_callback_nonce_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "wecom_callback_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("corp_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("change_type", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("external_userid", sa.String(length=64), nullable=True),
        sa.Column("chat_id", sa.String(length=64), nullable=True),
        sa.Column("create_time", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("received_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_callback_event_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_callback_event")),
        sa.UniqueConstraint(
            "brand_id", "event_key", name=op.f("uq_wecom_callback_event_brand_id_event_key")
        ),
    )
    with op.batch_alter_table("wecom_callback_event", schema=None) as batch_op:
        batch_op.create_index("ix_wecom_callback_event_chat", ["brand_id", "chat_id"], unique=False)
        batch_op.create_index(
            "ix_wecom_callback_event_pair", ["brand_id", "user_id", "external_userid"], unique=False
        )
        batch_op.create_index(
            "ix_wecom_callback_event_todo", ["brand_id", "status", "create_time"], unique=False
        )

    op.create_table(
        "wecom_contact_tag",
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("wecom_tag_id", sa.String(length=64), nullable=False),
        sa.Column("added_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_contact_tag_brand_id_brand")
        ),
        sa.PrimaryKeyConstraint(
            "brand_id",
            "user_id",
            "external_userid",
            "wecom_tag_id",
            name=op.f("pk_wecom_contact_tag"),
        ),
    )
    op.create_table(
        "wecom_contact_way",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("config_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column(
            "channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("store_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("user_ids", sa.JSON(), nullable=False),
        sa.Column("qr_code", sa.String(length=500), nullable=True),
        sa.Column("remark", sa.String(length=100), nullable=True),
        sa.Column("welcome", sa.JSON(), nullable=True),
        sa.Column("tag_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_contact_way_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channel.id"], name=op.f("fk_wecom_contact_way_channel_id_channel")
        ),
        sa.ForeignKeyConstraint(
            ["store_id"], ["store.id"], name=op.f("fk_wecom_contact_way_store_id_store")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_contact_way")),
        sa.UniqueConstraint(
            "brand_id", "config_id", name=op.f("uq_wecom_contact_way_brand_id_config_id")
        ),
        sa.UniqueConstraint("brand_id", "state", name=op.f("uq_wecom_contact_way_brand_id_state")),
    )
    with op.batch_alter_table("wecom_contact_way", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_wecom_contact_way_channel_id"), ["channel_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_wecom_contact_way_store_id"), ["store_id"], unique=False
        )

    op.create_table(
        "wecom_welcome",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("brand_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("welcome_code", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column(
            "contact_way_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errcode", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", siyu.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["brand_id"], ["brand.id"], name=op.f("fk_wecom_welcome_brand_id_brand")
        ),
        sa.ForeignKeyConstraint(
            ["contact_way_id"],
            ["wecom_contact_way.id"],
            name=op.f("fk_wecom_welcome_contact_way_id_wecom_contact_way"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wecom_welcome")),
        sa.UniqueConstraint(
            "brand_id", "welcome_code", name=op.f("uq_wecom_welcome_brand_id_welcome_code")
        ),
    )


def downgrade() -> None:
    op.drop_table("wecom_welcome")
    with op.batch_alter_table("wecom_contact_way", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wecom_contact_way_store_id"))
        batch_op.drop_index(batch_op.f("ix_wecom_contact_way_channel_id"))

    op.drop_table("wecom_contact_way")
    op.drop_table("wecom_contact_tag")
    with op.batch_alter_table("wecom_callback_event", schema=None) as batch_op:
        batch_op.drop_index("ix_wecom_callback_event_todo")
        batch_op.drop_index("ix_wecom_callback_event_pair")
        batch_op.drop_index("ix_wecom_callback_event_chat")

    op.drop_table("wecom_callback_event")
    with op.batch_alter_table("wecom_callback_nonce", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wecom_callback_nonce_received_at"))

    op.drop_table("wecom_callback_nonce")
    op.drop_table("wecom_access_token")
