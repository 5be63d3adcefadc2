"""The event ingest path under concurrency (siyu/events/api.py GroupCommit, siyu/events/ingest.py):
requests that arrive together are written in one transaction yet answered each on its own, a
key sent twice counts once, and what is stored reads back exactly through the models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from siyu.app import create_app
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
    assert writer.pending == [] and not writer.busy  # the next request starts afresh


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
