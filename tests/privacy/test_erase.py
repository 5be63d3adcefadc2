"""Erasing a customer (PIPL): the person's data is gone from the operational store and from the
warehouse file, every figure of the metrics report and the cohort tables stays exactly as it
was, queued messages are cancelled, and a re-import cannot bring the person back silently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy import String, Text, select, text
from sqlalchemy.types import JSON

from siyu import pii
from siyu.automation.models import OutboxItem
from siyu.config import Settings
from siyu.events.models import Event
from siyu.metrics import cohorts
from siyu.metrics.period import Period
from siyu.metrics.report import Runner, build
from siyu.metrics.scope import Scope
from siyu.models import Base
from siyu.privacy import service
from siyu.privacy.blocks import REASON, NotBlocked
from siyu.runtime import open_brand
from siyu.warehouse import duck
from siyu.warehouse.sync import sync
from tests.factories import rejects, run_import, write_dir
from tests.metrics import brand as hand
from tests.privacy import brand


def figures(settings: Settings, *, full: bool = False) -> dict[str, Any]:
    """The metrics report and every cohort table of the period, after a warehouse sync."""
    engine, brand_id = open_brand(settings)
    con = duck.connect(settings.duckdb_path)
    try:
        sync(con, engine, brand_id, full=full)
        scope = Scope(brand_id, settings.timezone)
        period = Period.parse(hand.FROM, hand.TO, settings.timezone)
        out: dict[str, Any] = {"report": build(con, scope, period, settings.metric_constants)}
        as_of = cohorts.data_end(con, brand_id)
        for unit in ("week", "month"):
            for metric in ("retention", "conversion", "repurchase"):
                table = cohorts.build(Runner(con, scope, period), period, unit=unit,
                                      metric=metric, periods=6, as_of=as_of)  # fmt: skip
                out[f"{unit}/{metric}"] = table.as_json()
        return json.loads(json.dumps(out, default=str))
    finally:
        con.close()
        engine.dispose()


def found_in_store(settings: Settings, marks: list[str]) -> list[str]:
    """`table.column: mark` for every text column of every table holding one of the marks."""
    engine, _ = open_brand(settings)
    ring = pii.keyring(engine)
    marks = brand.stored(settings, marks)
    hits = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for col in table.c:
                if not isinstance(col.type, String | Text | JSON):
                    continue
                if col.name.endswith("_sealed"):  # sealed values are opened and searched
                    sealed = conn.execute(
                        text(f'SELECT "{col.name}" FROM "{table.name}" '
                             f'WHERE "{col.name}" IS NOT NULL')
                    ).scalars()  # fmt: skip
                    opened = [ring.open_(v) for v in sealed]
                    hits += [f"{table.name}.{col.name}: {m}" for m in marks
                             if any(m in v for v in opened)]  # fmt: skip
                    continue
                for mark in marks:
                    n = conn.execute(
                        text(f'SELECT count(*) FROM "{table.name}" '
                             f'WHERE CAST("{col.name}" AS TEXT) LIKE :m'),
                        {"m": f"%{mark}%"},
                    ).scalar_one()  # fmt: skip
                    if n:
                        hits.append(f"{table.name}.{col.name}: {mark}")
    engine.dispose()
    return hits


def found_in_warehouse(path: Path, marks: list[str]) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    hits = []
    try:
        cols = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for table, col in cols:
            for mark in marks:
                n = con.execute(
                    f'SELECT count(*) FROM "{table}" WHERE "{col}" LIKE ?', [f"%{mark}%"]
                ).fetchone()
                if n and n[0]:
                    hits.append(f"{table}.{col}: {mark}")
        # dates are not text: the birthdays too
        births = con.execute("SELECT count(*) FROM customers WHERE birthday IS NOT NULL").fetchone()
        hits += [f"customers.birthday: {births[0]}"] if births and births[0] != 0 else []
    finally:
        con.close()
    return hits


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    engine, _ = open_brand(settings)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


def test_erase_keeps_every_figure_and_leaves_no_trace(settings: Settings, tmp_path: Path) -> None:
    brand.build(settings, tmp_path)
    before = figures(settings)
    assert found_in_warehouse(settings.duckdb_path, brand.P1)  # the marks are really there
    held = found_in_store(settings, brand.P1)  # and the search finds them sealed and hashed
    assert {"customer.name_sealed: 王小明", "identifier.value_sealed: 13800000001"} <= set(held)
    assert [h for h in held if h.startswith("identifier.value: ")]  # the phone's lookup hash
    engine, brand_id = open_brand(settings)
    for key in ("phone:13800000001", "member_no:M5X"):  # P1, and P5 (two records, a member)
        done = service.erase(engine, brand_id=brand_id, key=key, reason="本人来电要求删除",
                             actor="user:admin")  # fmt: skip
        assert done.counts["identifiers"] >= 2 and done.counts["order"] >= 1
    engine.dispose()

    after = figures(settings)
    assert after == before
    assert figures(settings, full=True) == before  # a full rebuild agrees
    assert found_in_store(settings, brand.P1 + brand.P5) == []
    assert found_in_warehouse(settings.duckdb_path, brand.P1 + brand.P5) == []

    # the tombstones keep their facts: orders stay attached to the same customer ids
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        owners = dict(con.execute("SELECT order_key, customer_id FROM orders").fetchall())
        erased = con.execute(
            "SELECT id, name_sealed, city, erased_at IS NOT NULL FROM customers WHERE id IN (1, 5) "
            "ORDER BY id"
        ).fetchall()
    finally:
        con.close()
    assert {k: owners[k] for k in ("O1", "O3", "O7", "O9", "O4", "O5")} == {
        "O1": 1, "O3": 1, "O7": 1, "O9": 1, "O4": 5, "O5": 5}  # fmt: skip
    assert erased == [(1, None, None, True), (5, None, None, True)]
    # queued messages cancelled, contents gone; other people's rows untouched
    engine, _ = open_brand(settings)
    with engine.connect() as conn:
        o = OutboxItem.__table__.c
        outbox = conn.execute(select(o.customer_id, o.status, o.payload).order_by(o.customer_id))
        assert [tuple(r) for r in outbox] == [
            (1, "cancelled", {}), (3, "pending", {"phone": None, "text": "hi"})]  # fmt: skip
        e = Event.__table__.c
        events = conn.execute(
            select(e.idempotency_key, e.payload)
            .where(e.idempotency_key.like("k-%"))
            .order_by(e.idempotency_key)
        )
        assert [tuple(r) for r in events] == [
            ("k-anon", {}), ("k-other", {"form": "other"}), ("k-p1", {})]  # fmt: skip
    engine.dispose()
    assert query(settings, "SELECT status FROM staff_task") == [("skipped",)]
    # who tagged them: a person's name goes, a rule stays
    history = query(settings, 'SELECT customer_id, "by" FROM customer_tag_history')
    assert sorted(history, key=repr) == [(1, "rule"), (1, None), (3, "user:admin")]
    # the erasure is logged with its reason; a second one is refused
    log = query(settings, "SELECT customer_id, actor, reason FROM customer_erasure ORDER BY id")
    assert log == [(1, "user:admin", "本人来电要求删除"), (5, "user:admin", "本人来电要求删除")]
    engine, brand_id = open_brand(settings)
    with pytest.raises(service.ErasureError, match="customer 1 was erased on"):
        service.erase(engine, brand_id=brand_id, key="1", reason="again", actor="user:admin")
    with pytest.raises(service.ErasureError) as e:
        service.erase(engine, brand_id=brand_id, key="2", reason="  ", actor="user:admin")
    assert e.value.field == "reason"
    engine.dispose()


def test_a_reimport_is_refused_until_the_person_consents_again(
    settings: Settings, tmp_path: Path
) -> None:
    brand.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    service.erase(engine, brand_id=brand_id, key="1", reason="request", actor="cli:ops")
    engine.dispose()
    before = figures(settings)
    customers = query(settings, "SELECT count(*) FROM customer")[0][0]

    again = run_import(settings, write_dir(tmp_path / "again", brand.FILES))
    refused = [(r["file"], r["line"], r["column"]) for r in rejects(again)
               if r["reason"] == REASON]  # fmt: skip
    assert ("records.csv", "2", "record_id") in refused  # r1-p1, also by its phone and wecom id
    assert ("records.csv", "2", "phone") in refused
    assert {("orders.csv", str(n), "id_value") for n in (2, 3, 4, 8, 10)} <= set(refused)
    assert ("connections.csv", "2", "id_value") in refused
    assert not [r for r in refused if r[0] == "records.csv" and r[1] != "2"]
    # the reject report locates the rows but does not write the erased person's data again
    assert again.reject_report is not None
    report = again.reject_report.read_text(encoding="utf-8-sig")
    assert not [v for v in brand.P1 if v in report]
    assert {r["value"] for r in rejects(again) if r["reason"] == REASON} == {""}
    assert query(settings, "SELECT count(*) FROM customer")[0][0] == customers
    assert found_in_store(settings, brand.P1) == []
    assert figures(settings) == before

    # fresh consent: the blocks are lifted, the next import makes a new customer of them
    engine, brand_id = open_brand(settings)
    for key in ("phone:13800000001", "external_userid:wmP1xq", "record:r1-p1"):
        assert service.recollect(engine, brand_id=brand_id, key=key, actor="cli:ops") == 1
    with pytest.raises(NotBlocked, match="is not on the erasure list"):
        service.recollect(engine, brand_id=brand_id, key="phone:13800000001", actor="cli:ops")
    engine.dispose()
    run_import(settings, write_dir(tmp_path / "third", brand.FILES))
    engine, _ = open_brand(settings)
    ring = pii.keyring(engine)
    engine.dispose()
    phone = pii.stored_value(ring, "phone", "+8613800000001")
    (new_id,) = query(settings, f"SELECT customer_id FROM identifier WHERE value = '{phone}'")
    assert new_id[0] not in (None, 1)
    name = query(settings, f"SELECT name_sealed, erased_at FROM customer WHERE id = {new_id[0]}")
    assert [(ring.open_(n), at) for n, at in name] == [("王小明", None)]
    assert query(settings, "SELECT name_sealed, name_hash, erased_at IS NOT NULL FROM customer "
                 "WHERE id = 1") == [(None, None, True)]  # fmt: skip
