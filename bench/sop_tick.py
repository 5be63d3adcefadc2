"""Benchmark: one SOP tick fanning a scheduled WeCom push out to N customers (issue #6).

    createdb -h 127.0.0.1 -U postgres bench_sop
    .venv/bin/python bench/sop_tick.py --customers 100000                  # PostgreSQL
    .venv/bin/python bench/sop_tick.py --customers 100000 --per-journey    # without siyu.sop.fanout
    .venv/bin/python bench/sop_tick.py --customers 100000 --sqlite

Builds N customers, each a WeCom friend of one of 100 guides (generate_series / recursive CTE,
no import), a schedule SOP with no audience (everyone), 5 % holdout and marketing guards, then
times the tick that fires it: enroll N journeys, run the send step (opt-out, reachability, caps,
render, outbox rows). A second tick must add nothing. Prints wall and CPU seconds (this
process; the database server's CPU is not in it) and the machine's load (`uptime`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text

from siyu import pii
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.sop import engine as sop_engine
from siyu.sop import fanout, service

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_sop"
NAMES = "王李张刘陈杨黄赵吴周"
TZ = ZoneInfo("Asia/Shanghai")

SOP = {
    "key": "bench-push",
    "name": "bench",
    "trigger": {"schedule": "0 10 * * *"},
    "steps": [
        {"send": {"channel": "wecom", "variants": [
            {"text": "{{ customer.name }}，{{ store.name }}的{{ staff.name }}为您推荐本周新品"}]}}
    ],
}  # fmt: skip


def build(engine, brand_id: int, n: int) -> None:  # type: ignore[no-untyped-def]
    pg = engine.dialect.name == "postgresql"
    series = (
        "SELECT generate_series(1, :n) AS i"
        if pg
        else "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < :n) "
        "SELECT i FROM s"
    )
    ts = "'2025-01-01 00:00:00+00'" if pg else "'2025-01-01 00:00:00.000000'"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO store (brand_id, code, name) VALUES (:b, 'S1', '静安店')"),
                     {"b": brand_id})  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO staff (brand_id, code, name, store_id) "
                f"SELECT :b, 'G' || i, '导购' || i, (SELECT id FROM store) FROM ({series}) s"
            ),
            {"b": brand_id, "n": 100},
        )
    _customers(engine, brand_id, n)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO identifier (brand_id, id_type, value, customer_id, status) "
                f"SELECT :b, 'external_userid', 'wm' || i, i, 'linked' FROM ({series}) s"
            ),
            {"b": brand_id, "n": n},
        )
        conn.execute(
            text(
                "INSERT INTO connection (brand_id, row_key, kind, staff_id, id_type, id_value, "
                "created_at) SELECT :b, 'k' || i, 'wecom_friend', "
                "(SELECT min(id) FROM staff) + i % 100, 'external_userid', 'wm' || i, "
                f"{ts} FROM ({series}) s"
            ),
            {"b": brand_id, "n": n},
        )
        if pg:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('customer', 'id'), :n)"), {"n": n}
            )
            for t in ("customer", "identifier", "connection", "staff"):
                conn.execute(text(f"ANALYZE {t}"))


def _customers(engine, brand_id: int, n: int) -> None:  # type: ignore[no-untyped-def]
    """N customers with a sealed name each (siyu.pii: names are stored sealed, with a hash)."""
    ring = pii.keyring(engine)
    at = (
        "2025-01-01 00:00:00+00"
        if engine.dialect.name == "postgresql"
        else "2025-01-01 00:00:00.000000"
    )
    cols = "id, brand_id, created_at, updated_at, name_hash, name_sealed"
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        for lo in range(1, n + 1, 100_000):
            rows = []
            for i in range(lo, min(lo + 100_000, n + 1)):
                name = f"{NAMES[i % 10]}顾客{i}"
                rows.append((i, brand_id, at, at, pii.name_hash(ring, name), ring.seal(name)))
            if engine.dialect.name == "postgresql":
                with raw.cursor() as cur, cur.copy(f"COPY customer ({cols}) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
            else:
                raw.executemany(f"INSERT INTO customer ({cols}) VALUES (?, ?, ?, ?, ?, ?)", rows)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--per-journey", action="store_true", help="tick without the set-based fan-out")
    ap.add_argument("--pg-url", default=PG_URL, help="a PostgreSQL database of your own")
    ap.add_argument("--lanes", type=int, default=fanout.PARALLEL, help="fan-out parts in flight")
    args = ap.parse_args()
    fanout.PARALLEL = args.lanes
    tmp = Path(tempfile.mkdtemp(prefix="bench-sop-"))
    schema = None
    if args.sqlite:
        s = Settings(data_dir=tmp)
    else:
        schema = f"b_{uuid.uuid4().hex[:10]}"
        admin = create_engine(args.pg_url)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        s = Settings(data_dir=tmp, database_url=f"{args.pg_url}?options=-csearch_path%3D{schema}")
    engine, brand_id = open_brand(s)
    try:
        t0 = time.perf_counter()
        build(engine, brand_id, args.customers)
        print(f"built {args.customers:,} customers in {time.perf_counter() - t0:.1f} s")
        with engine.begin() as conn:
            service.import_definition(conn, brand_id=brand_id, raw=SOP)
            service.set_status(conn, brand_id=brand_id, key="bench-push", status="active",
                               now=datetime(2025, 8, 1, 9, tzinfo=TZ))  # fmt: skip
        at = datetime(2025, 8, 1, 10, 1, tzinfo=TZ)
        fan = not args.per_journey
        print(f"before: {load()}")
        t0, c0 = time.perf_counter(), cpu()
        r = sop_engine.tick(s, engine, brand_id, at, fanout=fan)
        dt, dc = time.perf_counter() - t0, cpu() - c0
        path = f"fan-out, {args.lanes} lane(s)" if fan else "per-journey"
        print(f"tick ({path}): {r.fired['bench-push']:,} journeys (holdout {r.holdout:,}), "
              f"{r.enqueued:,} outbox rows in {dt:.1f} s = {r.enqueued / dt:,.0f} rows/s, "
              f"{dc:.1f} CPU s in this process")  # fmt: skip
        print(f"after:  {load()}")
        t0 = time.perf_counter()
        r2 = sop_engine.tick(
            s, engine, brand_id, datetime(2025, 8, 1, 10, 2, tzinfo=TZ), fanout=fan
        )
        print(f"second tick: {sum(r2.fired.values())} journeys, {r2.enqueued} rows in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    finally:
        engine.dispose()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


if __name__ == "__main__":
    main()
