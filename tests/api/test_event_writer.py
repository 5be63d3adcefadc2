"""The event ingest path under concurrency (siyu/events/api.py GroupCommit, siyu/events/ingest.py):
requests that arrive together are written in one transaction yet answered each on its own, a
key sent twice counts once, and what is stored reads back exactly through the models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from siyu.app import AppContext, create_app
from siyu.auth import users
from siyu.auth.principal import Principal
from siyu.config import Settings
from siyu.events.api import GroupCommit
from siyu.events.models import Event
from siyu.runtime import open_brand
from tests.web import console_brand as cb


def ev(key: str, customer: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "coupon.claimed", "idempotency_key": key, "customer": customer,
            "occurred_at": "2025-07-20T09:00:00+08:00", **extra}  # fmt: skip


def test_concurrent_requests_are_written_together_and_answered_apart(
    settings: Settings, tmp_path: Path
) -> None:
    cb.build(settings, tmp_path)
    app = create_app(settings)
    ctx = app.state.siyu
    hq = Principal(0, ctx.brand_id, "crm", "crm", "hq_operator", "HQ", None, kind="token",
                   scopes=frozenset({"ingest"}))  # fmt: skip
    with ctx.engine.begin() as conn:
        ids = dict(conn.execute(select(users.User.username, users.User.id)).all())
        mgr2 = users.principal(conn, user_id=ids["mgr2"])  # S002: customers 1, 3 and 5
    batches = [
        (hq, [ev("a", "1", payload={"coupon": "券42", "n": 2**40}), ev("b", "phone:13800000005")]),
        (hq, [ev("a", "2"), ev("c", "member_no:M4"), ev("d", "phone:13999999999")]),
        (mgr2, [ev("e", "3"), ev("f", "2"), ev("g", None, occurred_at="2025-07-20 09:00")]),
        (hq, [ev("h", "5"), ev("h", "5"), {"type": "Bad Type", "idempotency_key": "i"}]),
    ]
    writer = GroupCommit()

    async def all_at_once() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(writer.submit(ctx, who, items)
                                           for who, items in batches)))  # fmt: skip

    results = asyncio.run(all_at_once())
    statuses = [[x["status"] for x in r["results"]] for r in results]
    assert statuses == [
        ["created", "created"],
        ["duplicate", "created", "rejected"],  # "a" went to the first request
        ["created", "rejected", "created"],  # customer 2 is not S002's: as if unknown
        ["created", "duplicate", "rejected"],
    ]
    assert results[1]["results"][2] == {"status": "rejected", "field": "events[2].customer",
                                        "message": "no customer has phone:+8613999999999"}  # fmt: skip
    assert results[2]["results"][1]["message"] == "no customer 2"
    assert results[3]["results"][2]["field"] == "events[2].type"
    assert [r["created"] for r in results] == [2, 1, 2, 1]

    with ctx.engine.connect() as conn:
        e = Event.__table__.c
        rows = {r.idempotency_key: r for r in conn.execute(
            select(e.idempotency_key, e.customer_id, e.occurred_at, e.payload)
            .where(e.type == "coupon.claimed"))}  # fmt: skip
    ctx.engine.dispose()
    assert sorted(rows) == ["a", "b", "c", "e", "g", "h"]
    assert {k: rows[k].customer_id for k in rows} == {
        "a": 1, "b": 5, "c": 4, "e": 3, "g": None, "h": 5}  # fmt: skip
    assert rows["a"].payload == {"coupon": "券42", "n": 2**40}
    assert rows["b"].payload == {}
    # +08:00 and brand-local time without an offset are the same instant, stored in UTC
    assert rows["a"].occurred_at == rows["g"].occurred_at == datetime(2025, 7, 20, 1, 0, tzinfo=UTC)


def test_an_integration_error_reaches_every_request_of_the_group(
    settings: Settings, tmp_path: Path
) -> None:
    open_brand(settings)[0].dispose()
    app = create_app(settings)
    ctx = app.state.siyu
    who = Principal(0, ctx.brand_id, "x", "x", "hq_operator", "HQ", None, kind="token",
                    scopes=frozenset({"ingest"}))  # fmt: skip
    ctx.engine.dispose()
    broken = type(ctx)(ctx.settings, _Broken(), ctx.brand_id)
    writer = GroupCommit()

    async def two() -> list[Any]:
        return await asyncio.gather(writer.submit(broken, who, [ev("x", None)]),
                                    writer.submit(broken, who, [ev("y", None)]),
                                    return_exceptions=True)  # fmt: skip

    got = asyncio.run(two())
    assert [type(g).__name__ for g in got] == ["RuntimeError", "RuntimeError"]
    assert writer.pending == [] and writer.active == 0  # the next request starts afresh


def test_writers_running_at_once_store_each_key_once_in_any_order(
    settings: Settings, monkeypatch: Any
) -> None:
    """The app's writer (several at once on PostgreSQL): groups written at the same time that share
    idempotency keys, each sending them in its own order, neither fail nor wait on each other
    for ever, and every key is created exactly once — in the answers and in the table."""
    import random

    from siyu.events import api

    engine, brand_id = open_brand(settings)
    ctx = AppContext(settings, engine, brand_id)
    who = Principal(0, brand_id, "crm", "crm", "hq_operator", "HQ", None, kind="token",
                    scopes=frozenset({"ingest"}))  # fmt: skip
    running = [0, 0]  # now, most at once
    real = api.record_many

    def counted(*args: Any) -> set[str]:
        running[0] += 1
        running[1] = max(running)
        try:
            return real(*args)
        finally:
            running[0] -= 1

    monkeypatch.setattr(api, "record_many", counted)
    rnd = random.Random(11)
    keys = [f"k{i}" for i in range(3_000)]
    requests = [rnd.sample(keys, 1_000) for _ in range(20)]  # 5 a group: GROUP_EVENTS
    writer = api.event_writer(engine)

    async def all_at_once() -> list[dict[str, Any]]:
        async def one(n: int, sample: list[str]) -> dict[str, Any]:
            await asyncio.sleep(n * 0.01)  # arriving while earlier groups are written
            return await writer.submit(ctx, who, [ev(k, None) for k in sample])

        return list(await asyncio.gather(*(one(n, r) for n, r in enumerate(requests))))

    results = asyncio.run(all_at_once())
    created = [x["idempotency_key"] for r in results for x in r["results"]
               if x["status"] == "created"]  # fmt: skip
    assert sorted(created) == sorted(set().union(*requests))  # each once
    with engine.connect() as conn:
        stored = conn.execute(select(Event.idempotency_key)).scalars().all()
    engine.dispose()
    assert sorted(stored) == sorted(created)
    assert running[1] >= 2 if engine.dialect.name == "postgresql" else running[1] == 1


class _Broken:
    """An engine whose database is gone."""

    def connect(self) -> Any:
        raise RuntimeError("database unreachable")


def test_the_stored_text_of_an_instant_is_the_one_sqlalchemy_stores() -> None:
    """siyu.events.ingest writes occurred_at / recorded_at as text on SQLite, cut from orjson's
    ISO form: it must be SQLAlchemy's form (siyu.db.sqlite_ts), fraction or not, so that stored
    instants compare as text with those the ORM wrote."""
    import random
    from datetime import timedelta

    from siyu.db import sqlite_ts
    from siyu.events.ingest import _utc_text

    rnd = random.Random(7)
    start = datetime(1000, 1, 1, tzinfo=UTC)
    span = int((datetime(9999, 12, 31, tzinfo=UTC) - start).total_seconds() * 1e6)
    instants = [
        datetime(2025, 7, 20, 1, 0, tzinfo=UTC),
        datetime(2025, 7, 20, 1, 0, 0, 1, tzinfo=UTC),
    ]
    instants += [start + timedelta(microseconds=rnd.randrange(span)) for _ in range(5_000)]
    instants += [t.replace(microsecond=0) for t in instants[-1_000:]]
    for at in instants:
        assert _utc_text(at) == sqlite_ts(at), at


def test_a_time_out_of_range_in_utc_is_rejected_alone() -> None:
    """0001-01-01 at +08:00 is before year 1 in UTC: rejected with its field like any bad time
    (it was an OverflowError — a 500 for every request written in the same transaction)."""
    from siyu.events.ingest import Rejected, check

    out = check([ev("a", None, occurred_at="0001-01-01T00:00:00+08:00"),
                 ev("b", None, occurred_at="0001-01-01T00:00:00"),  # brand-local: +08:00
                 ev("c", None)], "Asia/Shanghai")  # fmt: skip
    assert [type(x) for x in out] == [Rejected, Rejected, tuple]
    assert [(x.field, str(x)) for x in out[:2]] == [
        ("occurred_at", "0001-01-01T00:00:00+08:00 is out of range"),
        ("occurred_at", "0001-01-01T00:00:00 is out of range"),
    ]


def test_a_timestamp_read_by_its_minute_is_stored_as_parsing_it_whole_would() -> None:
    """Most timestamps are converted a minute at a time (siyu.events.ingest._fast_instant); every
    one must be stored — or rejected, with the same message — exactly as parsing it whole
    would, including local mean time before 1901, a daylight-saving gap and fold, fractions of
    any width and shapes the minute path does not take."""
    import itertools
    import random

    from siyu.events.ingest import Rejected, _instant, check

    def stored(value: str, tz: str) -> str | tuple[str, str]:
        (got,) = check([ev("k", None, occurred_at=value)], tz)
        return (got.field, str(got)) if isinstance(got, Rejected) else got[3]

    # instants worked out by hand, so that both paths sharing a mistake would still fail
    assert stored("2025-07-20T09:00:00.5+05:30", "UTC") == "2025-07-20 03:30:00.500000"
    assert stored("2025-07-20T09:00:07Z", "Asia/Shanghai") == "2025-07-20 09:00:07.000000"
    assert stored("2025-07-20 09:00:07.123", "Asia/Shanghai") == "2025-07-20 01:00:07.123000"
    # Shanghai kept local mean time, +08:05:43, until 1901: the seconds move too
    assert stored("1900-12-31T23:59:30", "Asia/Shanghai") == "1900-12-31 15:53:47.000000"
    # New York: 02:30 on 2025-03-09 does not exist, 01:30 on 2025-11-02 happens twice
    assert stored("2025-03-09T02:30:15", "America/New_York") == "2025-03-09 07:30:15.000000"
    assert stored("2025-11-02T01:30:15", "America/New_York") == "2025-11-02 05:30:15.000000"
    assert stored("2025-07-20T09:00:60+08:00", "UTC")[0] == "occurred_at"  # no leap second
    assert stored("9999-12-31T23:59:59+08:00", "UTC")[0] == "occurred_at"  # in the future

    days = ["2025-11-01", "2025-03-09", "2025-11-02", "1900-12-31", "1901-01-01", "0001-01-01",
            "9999-12-31", "2024-02-29", "2025-02-29", "2025-13-01"]  # fmt: skip
    clocks = ["T09:00", " 23:59", "T00:00", "T02:30", "T01:30", "T24:00", "T12:61", "t09:00"]
    seconds = [":00", ":59", ":60", ":17", ":5", ":a1", ""]
    fractions = ["", ".5", ".12", ".123", ".1234", ".12345", ".123456", ".1234567", ",123", "."]
    zones = ["", "Z", "z", "+08:00", "-05:00", "+05:30", "+0800", "+08", "+08:00:30", "+24:00",
             "-00:00", "+08:0a"]  # fmt: skip
    tzs = ["Asia/Shanghai", "America/New_York", "Asia/Kolkata", "UTC"]
    combos = list(itertools.product(days, clocks, seconds, fractions, zones, tzs))
    for day, clock, sec, frac, zone, tz in random.Random(3).sample(combos, 20_000):
        value = f"{day}{clock}{sec}{frac}{zone}"
        try:
            whole: str | tuple[str, str] = _instant(value, tz, datetime.now(UTC))
        except Rejected as e:
            whole = (e.field, str(e))
        assert stored(value, tz) == whole, (value, tz)


def test_on_sqlite_a_group_holds_the_write_lock_from_its_first_read(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The SQLite insert reports which keys it created from a read made before it: no other
    writer may commit between the two, or a retry racing its original could be miscounted."""
    import sqlite3

    from siyu.events import ingest
    from siyu.events.ingest import check, record_many

    settings = Settings(data_dir=tmp_path / "data")
    engine, brand_id = open_brand(settings)
    hq = Principal(0, brand_id, "crm", "crm", "hq_operator", "HQ", None, kind="token",
                   scopes=frozenset({"ingest"}))  # fmt: skip
    real_insert = ingest.sqlite_insert_count
    seen: list[str] = []

    def insert_after_a_rival(*args: Any) -> int:
        rival = sqlite3.connect(str(engine.url.database), timeout=0)
        try:
            rival.execute("INSERT INTO event (brand_id, type, idempotency_key, occurred_at, "
                          "recorded_at, payload) VALUES (?, 'x.y', 'a', '2025-01-01 00:00:00', "
                          "'2025-01-01 00:00:00', '{}')", (brand_id,))  # fmt: skip
            rival.commit()
            seen.append("rival committed")
        except sqlite3.OperationalError as e:
            seen.append(str(e))
        finally:
            rival.close()
        return real_insert(*args)

    monkeypatch.setattr(ingest, "sqlite_insert_count", insert_after_a_rival)
    assert record_many(engine, brand_id, [(hq, check([ev("a", None)], "Asia/Shanghai"))]) == {"a"}
    assert seen == ["database is locked"]
