"""Phones, emails and names are stored hashed and sealed (SPEC §12), and everything a user does
with them still works: matching, search, the 360, masking by role, texting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from siyu import pii
from siyu.auth import users
from siyu.automation import outbox
from siyu.automation.results import delivery_key
from siyu.cli import app
from siyu.config import Settings
from siyu.customers import service as customers
from siyu.runtime import open_brand
from siyu.serverthread import ServerThread
from siyu.sms.adapter import SmsAdapter
from siyu.sms.simulator import Gateway, create_app
from siyu.sop import lookup
from siyu.warehouse import duck
from siyu.warehouse.sync import sync
from tests.factories import run_import, write_dir
from tests.pii import world
from tests.pii.world import EMAIL, NAME, OTHER, PHONE


def imported(settings: Settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    summary = run_import(settings, write_dir(tmp_path / "in", world.FILES))
    assert summary.rejected == 0 and not summary.failed_files
    return summary


def test_no_phone_email_or_name_is_stored_in_clear(settings: Settings, tmp_path: Path) -> None:
    summary = imported(settings, tmp_path)
    assert summary.identity is not None and summary.identity.customers == 2
    engine, brand_id = open_brand(settings)
    try:
        ring = pii.keyring(engine)
        # Every text column of every table of the operational store, read raw.
        assert world.clear_values_in_store(engine) == []
        with engine.connect() as conn:
            phone = conn.execute(
                text("SELECT value, value_sealed, tail_hash FROM identifier WHERE id_type = 'phone' "
                     "AND value = :h"), {"h": ring.lookup_hash("phone", "+86" + PHONE)},
            ).one()  # fmt: skip
            stored_name = conn.execute(text("SELECT name_sealed FROM customer WHERE id = 1")).one()
            order_ref = conn.execute(
                text("""SELECT id_value FROM "order" WHERE order_key = 'O2'""")
            ).one()
        assert ring.open_(phone.value_sealed) == "+86" + PHONE
        assert phone.tail_hash == pii.tail_hash(ring, PHONE)
        assert ring.open_(stored_name[0]) == NAME
        assert order_ref[0] == ring.lookup_hash("phone", "+86" + OTHER)
        # The warehouse copies what is stored: hashed and sealed.
        con = duck.connect(settings.duckdb_path)
        try:
            sync(con, engine, brand_id)
            assert world.clear_values_in_warehouse(con) == []
            assert con.execute("SELECT siyu_pii_open(name_sealed) FROM customers WHERE id = 1"
                               ).fetchone() == (NAME,)  # fmt: skip
        finally:
            con.close()
    finally:
        engine.dispose()


def test_shared_phone_still_merges_and_reimport_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    imported(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        view = customers.get_view(conn, brand_id=brand_id, customer_id=1)
    engine.dispose()
    # Records A (POS, 13800138000) and B (mini-program, +86 138-0013-8000) are one customer,
    # and the 360 says why, with the phone in clear.
    assert sorted(r.key for r in view.records) == ["A", "B"]
    assert [link.via for link in view.links] == ["phone:+8613800138000"]
    assert view.name == NAME
    assert ("email", EMAIL, "linked") in view.records[1].identifiers  # normalised lower-case
    again = run_import(settings, write_dir(tmp_path / "in", world.FILES))
    assert (again.inserted, again.updated) == (0, 0)


def test_search_finds_by_whole_phone_tail_email_and_name(
    settings: Settings, tmp_path: Path
) -> None:
    imported(settings, tmp_path)
    world.add_users(settings)
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        me = users.principal_by_name(conn, brand_id=brand_id, username="admin")

        def found(q: str) -> list[tuple[int, str | None, str | None]]:
            return [(h.id, h.phone, h.name) for h in customers.search(conn, principal=me, query=q)]

        assert found(PHONE) == [(1, "+8613800138000", NAME)]
        assert found("+86 138 0013 8000") == [(1, "+8613800138000", NAME)]
        assert found("8000") == [(1, "+8613800138000", NAME)]  # 尾号: the last four digits
        assert found("38000") == [(1, "+8613800138000", NAME)]
        assert found("48000") == []  # same last four, not the same tail
        assert found(OTHER) == [(2, "+8613900139001", None)]  # known from an order only
        assert found(EMAIL.upper()) == [(1, "+8613800138000", NAME)]
        assert found(f"email:{EMAIL}") == [(1, "+8613800138000", NAME)]
        assert found(NAME) == [(1, "+8613800138000", NAME)]
        assert found("M1") == [(1, "+8613800138000", NAME)]  # a member number, as before
    engine.dispose()


def test_customer_show_is_clear_for_hq_admin_and_masked_for_an_analyst(
    settings: Settings, tmp_path: Path
) -> None:
    imported(settings, tmp_path)
    world.add_users(settings)
    env = {"SIYU_DATABASE_URL": settings.database_url} if settings.database_url else {}

    def show(*extra: str) -> str:
        args = ["--data-dir", str(settings.data_dir), "customer", "show", f"phone:{PHONE}"]
        result = CliRunner().invoke(app, [*args, *extra], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    for output in (show(), show("--as", "admin")):
        assert "+8613800138000" in output and NAME in output and EMAIL in output
    masked = show("--as", "analyst")
    assert "138****8000" in masked and "王**" in masked and "w***@example.com" in masked
    assert world.CLEAR.search(masked) is None
    refused = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "customer", "show",
                                       "1", "--as", "nobody"], env=env)  # fmt: skip
    assert refused.exit_code == 2 and "no enabled console user named 'nobody'" in refused.output
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        reads = (
            conn.execute(text("SELECT detail FROM audit_log WHERE action = 'pii.read' ORDER BY id"))
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(reads) == 2 and '"as": "admin"' in reads[1]  # the analyst read nothing unmasked


def test_tampered_sealed_value_is_refused_with_a_clear_error(
    settings: Settings, tmp_path: Path
) -> None:
    imported(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        sealed = conn.execute(text("SELECT name_sealed FROM customer WHERE id = 1")).scalar_one()
        forged = sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")
        conn.execute(text("UPDATE customer SET name_sealed = :s WHERE id = 1"), {"s": forged})
    engine.dispose()
    env = {"SIYU_DATABASE_URL": settings.database_url} if settings.database_url else {}
    result = CliRunner().invoke(
        app, ["--data-dir", str(settings.data_dir), "customer", "show", "1"], env=env
    )
    assert result.exit_code == 2
    assert "failed its integrity check" in result.output and "Traceback" not in result.output


def test_an_sms_carries_the_sealed_phone_and_the_gateway_gets_the_number(
    settings: Settings, tmp_path: Path
) -> None:
    imported(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        phones = lookup.phones(conn, brand_id, [1, 2])
    # What siyu.sop.send enqueues: the phone's hash keys the delivery, the number is sealed.
    items = [
        outbox.Enqueue(
            f"sop:hello:1:0:{cid}:x", "sms", cid, {"phone": h, "phone_sealed": s, "text": "您好"}
        )  # fmt: skip
        for cid, (h, s) in sorted(phones.items())
    ]
    outbox.enqueue(engine, brand_id, items)
    gateway = Gateway()
    with ServerThread(create_app(gateway)) as server:
        adapter = SmsAdapter(server.url)
        report = outbox.run_once(engine, {"sms": adapter}, "w1", lease=timedelta(minutes=5))
        adapter.close()
    assert report.sent == 2
    assert sorted(m["phone"] for m in gateway.delivered.values()) == [
        "+8613800138000", "+8613900139001",
    ]  # fmt: skip
    assert world.clear_values_in_store(engine) == []  # payloads, results and errors too
    with engine.connect() as conn:
        # The delivery rows carry the hash and resolve to the customers through it.
        got = conn.execute(
            text("SELECT i.customer_id FROM delivery d JOIN identifier i ON i.brand_id = d.brand_id "
                 "AND i.id_type = d.id_type AND i.value = d.id_value "
                 "WHERE d.row_key IN (:k1, :k2) ORDER BY 1"),
            {"k1": delivery_key(items[0].dedup_key), "k2": delivery_key(items[1].dedup_key)},
        ).scalars().all()  # fmt: skip
    engine.dispose()
    assert got == [1, 2]
