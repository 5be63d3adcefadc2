"""Migration 0014_pii converts a database written in clear, in place, on both engines."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, text

from siyu import migrate, pii
from siyu.config import Settings
from siyu.customers import service as customers
from siyu.db import bind_ts, make_engine
from siyu.identity import service as identity_service
from tests.factories import run_import, write_dir
from tests.pii import world

PHONE, EMAIL = "+8613800138000", "wang.xm@example.com"
AT = datetime(2025, 7, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def md5(*parts: object) -> str:
    return hashlib.md5("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


# The connection's natural key as the import wrote it before 0014: over the clear phone.
OLD_CONNECTION_KEY = md5("wecom_friend", "phone", PHONE, "G1", None, "2025-07-01T02:00:00.000000")
OLD_DELIVERY_KEY = md5("phone", PHONE, "sms", "2025-07-01 02:00:00", "delivered")


def write_clear_brand(conn: Connection) -> None:
    """What a 0010-schema database held after importing one customer (rows as the old code
    wrote them)."""
    at = bind_ts(conn, AT)

    def run(sql: str, **params: object) -> None:
        conn.execute(text(sql), {"at": at, **params})

    run("INSERT INTO brand (id, code, name, timezone, created_at) "
        "VALUES (1, 'default', 'Default brand', 'Asia/Shanghai', :at)")  # fmt: skip
    run("INSERT INTO staff (id, brand_id, code, name) VALUES (1, 1, 'G1', '李导购')")
    run("INSERT INTO customer (id, brand_id, created_at, updated_at, name) "
        "VALUES (1, 1, :at, :at, '王小明')")  # fmt: skip
    for rid, key, source, name in ((1, "A", "pos", "王小明"), (2, "B", "mp", None),
                                   (3, "ref:phone:+8613900139001", "reference", None)):  # fmt: skip
        run("INSERT INTO source_record (id, brand_id, record_key, source, name, customer_id, "
            "first_customer_id, created_at, updated_at, row_hash) "
            "VALUES (:i, 1, :k, :s, :n, 1, 1, :at, :at, 12345)", i=rid, k=key, s=source, n=name)  # fmt: skip
    for iid, ty, val in ((1, "phone", PHONE), (2, "email", EMAIL), (3, "member_no", "M1"),
                         (4, "phone", "+8613900139001")):  # fmt: skip
        run("INSERT INTO identifier (id, brand_id, id_type, value, customer_id, status, "
            "changed_at) VALUES (:i, 1, :t, :v, 1, 'linked', :at)", i=iid, t=ty, v=val)  # fmt: skip
    for rid, ty, iid in ((1, "phone", 1), (1, "member_no", 3), (2, "phone", 1), (2, "email", 2),
                         (3, "phone", 4)):  # fmt: skip
        run("INSERT INTO record_identity (record_id, id_type, identifier_id) "
            "VALUES (:r, :t, :i)", r=rid, t=ty, i=iid)  # fmt: skip
    run("INSERT INTO identifier_override (brand_id, id_type, value, created_at) "
        "VALUES (1, 'phone', '+8613900139001', :at)")  # fmt: skip
    run("INSERT INTO quarantined_identifier (brand_id, id_type, value, source, record_count, "
        "updated_at) VALUES (1, 'phone', '+8613900139001', 'pos', 6, :at)")  # fmt: skip
    run(
        'INSERT INTO "order" (brand_id, order_key, platform, id_type, id_value, created_at, '
        "amount_fen, status, refund_fen, row_hash) "
        f"VALUES (1, 'O1', 'pos', 'phone', '{PHONE}', :at, 1000, 'paid', 0, 777)"
    )
    run("INSERT INTO connection (brand_id, row_key, kind, id_type, id_value, staff_id, "
        f"created_at, row_hash) VALUES (1, :k, 'wecom_friend', 'phone', '{PHONE}', 1, :at, 9)",
        k=OLD_CONNECTION_KEY)  # fmt: skip
    run("INSERT INTO delivery (brand_id, row_key, channel, created_at, status, id_type, "
        f"id_value) VALUES (1, :k, 'sms', :at, 'delivered', 'phone', '{PHONE}')",
        k=OLD_DELIVERY_KEY)  # fmt: skip
    run("INSERT INTO opt_out (brand_id, row_key, channel, created_at, id_type, id_value) "
        f"VALUES (1, :k, 'sms', :at, 'phone', '{PHONE}')",
        k=hashlib.md5(f"reply|sms|phone|{PHONE}".encode()).hexdigest())  # fmt: skip
    run(
        "INSERT INTO referral (brand_id, referrer_id_type, referrer_id_value, invitee_id_type, "
        f"invitee_id_value, created_at) VALUES (1, 'phone', '{PHONE}', 'email', '{EMAIL}', :at)"
    )
    run(
        "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
        "recorded_at, payload) VALUES (1, 'referral.completed', "
        f"'referral.completed:email:{EMAIL}', 1, :at, :at, '{{}}')"
    )
    payload = json.dumps({"kind": "marketing", "phone": PHONE, "text": "您好"})
    as_json = "CAST(:p AS JSON)" if conn.dialect.name == "postgresql" else ":p"
    run("INSERT INTO outbox (brand_id, dedup_key, adapter, customer_id, payload, status, "
        f"attempts, not_before, created_at, error) VALUES (1, 'sop:x:1:0:1:a', 'sms', 1, {as_json}, "
        f"'failed', 1, :at, :at, 'SMS gateway refused: cannot deliver to {PHONE}')",
        p=payload)  # fmt: skip
    run("INSERT INTO audit_log (brand_id, actor, action, target, detail, created_at) VALUES "
        "(1, 'user:admin', 'pii.read', 'customer-search', :d, :at)",
        d=json.dumps({"query": "13800138000", "customers": [1]}))  # fmt: skip
    run("INSERT INTO wecom_external_contact (brand_id, external_userid, name, updated_at) "
        "VALUES (1, 'wm1', '王小明', :at)")  # fmt: skip


def test_migration_converts_a_database_written_in_clear(settings: Settings, tmp_path: Path) -> None:
    engine = make_engine(settings)
    migrate.upgrade(engine, "0010_delivery")
    with engine.begin() as conn:
        write_clear_brand(conn)
    assert not (settings.data_dir / "pii.key").exists()
    migrate.upgrade(engine)  # 0014: the key is written, every clear value converted
    assert (settings.data_dir / "pii.key").exists()
    assert world.clear_values_in_store(engine) == []
    ring = pii.keyring(engine)
    with engine.connect() as conn:
        view = customers.get_view(conn, brand_id=1, customer_id=1)
        sms = conn.execute(text("SELECT payload, error FROM outbox")).one()
        key = conn.execute(text("SELECT idempotency_key FROM event")).scalar_one()
        quarantined = identity_service.quarantined(conn, brand_id=1)
        refs = conn.execute(
            text(
                "SELECT id_value, row_key FROM connection UNION ALL "
                "SELECT id_value, row_key FROM opt_out ORDER BY 2"
            )  # fmt: skip
        ).all()
    assert view.name == "王小明"
    assert {(r.key, *sorted(i[:2] for i in r.identifiers)) for r in view.records} == {
        ("A", ("member_no", "M1"), ("phone", PHONE)),
        ("B", ("email", EMAIL), ("phone", PHONE)),
        ("ref:phone:+8613900139001", ("phone", "+8613900139001")),
    }
    payload = sms[0] if isinstance(sms[0], dict) else json.loads(sms[0])
    assert payload["phone"] == ring.lookup_hash("phone", PHONE)
    assert pii.unsealed(ring, payload)["phone"] == PHONE  # what the worker sends
    assert sms[1] == "SMS gateway refused: cannot deliver to 138****8000"
    assert key == f"referral.completed:email:{ring.lookup_hash('email', EMAIL)}"
    assert [(q.value, q.record_count) for q in quarantined] == [("+8613900139001", 6)]
    hashed = ring.lookup_hash("phone", PHONE)
    assert sorted(refs) == sorted([
        (hashed, md5("wecom_friend", "phone", hashed, "G1", None, "2025-07-01T02:00:00.000000")),
        (hashed, hashlib.md5(f"reply|sms|phone|{hashed}".encode()).hexdigest()),
    ])  # fmt: skip
    engine.dispose()

    # The converted keys are the ones an import computes now: re-importing the same
    # connection and delivery adds nothing, and the phone still finds the customer.
    again = run_import(settings, write_dir(tmp_path / "in", {
        "connections.csv": "kind,id_type,id_value,staff_id,created_at\n"
        "wecom_friend,phone,13800138000,G1,2025-07-01 10:00\n",
        "deliveries.csv": "id_type,id_value,channel,created_at,status\n"
        "phone,13800138000,sms,2025-07-01 10:00,delivered\n",
    }))  # fmt: skip
    assert [(f.file, f.inserted) for f in again.files] == [
        ("connections.csv", 0), ("deliveries.csv", 0),
    ]  # fmt: skip
    engine = make_engine(settings)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        cid, _ = customers.resolve_key_or_raise(conn, brand_id=1, key="phone:13800138000")
    engine.dispose()
    assert cid == 1
