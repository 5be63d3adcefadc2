"""Benchmark: the whole `siyu metrics` report and `siyu clv fit` on a large generated warehouse.

    .venv/bin/python bench/metrics.py --customers 1000000 --orders 10000000
    .venv/bin/python bench/metrics.py --customers 10000000 --orders 100000000 --path /tmp/w.duckdb

The data is generated inside DuckDB with `range()` and hashes (no Python loop over rows) directly
in the warehouse schema that `siyu warehouse sync` fills, then the report runs exactly as the CLI
runs it (siyu.metrics.report.build) over a 3-month period, and the pLTV models are fitted on
every buyer's summary (SQL) as `siyu clv fit` does. Prints each step's seconds and the process's
peak resident memory (DuckDB runs in-process, so it is included).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from siyu.metrics import clv
from siyu.metrics.period import Period
from siyu.metrics.report import Runner, build
from siyu.metrics.scope import Scope
from siyu.warehouse import duck
from siyu.warehouse.sync import ensure_schema

DAYS = 730  # two years of history ending 2025-12-31
T0 = "TIMESTAMPTZ '2024-01-01 00:00:00+08'"


def h(expr: str, salt: int) -> str:
    """A deterministic pseudo-random non-negative integer from a row number."""
    return f"hash({expr}, {salt}) % 1000000007"


def generate(con, customers: int, orders: int) -> None:  # type: ignore[no-untyped-def]
    n, m = customers, orders
    con.execute(
        "INSERT INTO stores SELECT i, 1, 'S' || lpad(i::VARCHAR, 3, '0'), 'store ' || i, "
        "['华东', '华北', '华南'][1 + i % 3], ['上海', '北京', '广州'][1 + i % 3], 31.2, 121.4, 800 "
        "FROM range(1, 25) t(i)"
    )
    con.execute(
        "INSERT INTO staff SELECT i, 1, 'G' || lpad(i::VARCHAR, 3, '0'), 'guide ' || i, "
        "1 + i % 24, 'sales' FROM range(1, 73) t(i)"
    )
    con.execute(
        f"INSERT INTO groups SELECT i, 1, 'GR' || i, 'group ' || i, 1 + i % 72, 1 + i % 24, {T0} "
        "FROM range(1, 41) t(i)"
    )
    con.execute(
        "INSERT INTO channels SELECT i, 1, 'C' || i, 'channel ' || i, 'ads' FROM range(1, 9) t(i)"
    )
    con.execute(
        f"INSERT INTO customers SELECT i, 1, {T0}, NULL, NULL, NULL, NULL, NULL, NULL "
        f"FROM range(1, {n + 1}) t(i)"
    )
    # One WeCom friendship per customer, a group membership for one in five; 15 % ended.
    con.execute(
        "INSERT INTO connections SELECT i, 1, 'wecom_friend', NULL, NULL, 1 + i % 72, NULL, "
        f"1 + {h('i', 1)} % 8, {T0} + to_seconds(({h('i', 2)} % ({DAYS} * 86400))::BIGINT), "
        f"CASE WHEN {h('i', 3)} % 100 < 15 THEN {T0} + to_days({DAYS}) - to_days(({h('i', 4)} % 200)::INTEGER) END, "
        f"NULL, i FROM range(1, {n + 1}) t(i)"
    )
    con.execute(
        f"INSERT INTO connections SELECT {n} + i, 1, 'group_member', NULL, NULL, NULL, "
        f"1 + i % 40, NULL, {T0} + to_seconds(({h('i', 5)} % ({DAYS} * 86400))::BIGINT), NULL, "
        f"NULL, i FROM range(1, {n + 1}) t(i) WHERE {h('i', 6)} % 5 = 0"
    )
    # Orders: skewed towards low customer ids (a few heavy buyers), 5 % anonymous.
    con.execute(
        f"INSERT INTO orders SELECT i, 1, 'O' || i, CASE WHEN {h('i', 7)} % 10 < 6 THEN 'pos' "
        "ELSE 'mp' END, 1 + i % 24, NULL, NULL, "
        f"{T0} + to_seconds(({h('i', 8)} % ({DAYS} * 86400))::BIGINT), "
        f"1000 + {h('i', 9)} % 9000, CASE WHEN {h('i', 10)} % 100 < 3 THEN 'cancelled' "
        f"WHEN {h('i', 10)} % 100 < 5 THEN 'refunded' ELSE 'paid' END, "
        f"CASE WHEN {h('i', 10)} % 100 BETWEEN 3 AND 4 THEN 1000 ELSE 0 END, "
        f"CASE WHEN {h('i', 11)} % 100 < 5 THEN NULL "
        f"ELSE 1 + (({h('i', 12)} % {n}) * ({h('i', 13)} % 1000) / 1000)::BIGINT END "
        f"FROM range(1, {m + 1}) t(i)"
    )
    con.execute(
        "INSERT INTO channel_costs SELECT c, DATE '2024-01-01' + d::INTEGER, 10000 + (c * d) % 5000 "
        f"FROM range(1, 9) a(c), range(0, {DAYS}) b(d)"
    )
    con.execute(
        "INSERT INTO channel_reach SELECT c, DATE '2024-01-01' + d::INTEGER, 500 + (c * d) % 300 "
        f"FROM range(1, 9) a(c), range(0, {DAYS}) b(d)"
    )
    con.execute(
        f"INSERT INTO memberships SELECT i, 1, 'M' || i, {T0} + to_seconds(({h('i', 14)} % "
        f"({DAYS} * 86400))::BIGINT), 'silver', 0, i FROM range(1, {n + 1}) t(i) "
        f"WHERE {h('i', 15)} % 10 < 3"
    )
    con.execute(
        f"INSERT INTO referrals SELECT i, 1, NULL, NULL, NULL, NULL, {T0} + to_days((i % 700)::INTEGER), "
        f"1 + {h('i', 16)} % 1000, i FROM range(1001, {n + 1}, 100) t(i)"
    )
    con.execute(
        f"INSERT INTO deliveries SELECT i, 1, NULL, NULL, 'wecom', {T0} + to_seconds(({h('i', 17)} "
        f"% ({DAYS} * 86400))::BIGINT), CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'delivered' END, "
        f"1 + {h('i', 18)} % {n} FROM range(1, {2 * n + 1}) t(i)"
    )
    con.execute(
        f"INSERT INTO surveys SELECT i, 1, NULL, NULL, {T0} + to_seconds(({h('i', 19)} % "
        f"({DAYS} * 86400))::BIGINT), 1 + {h('i', 20)} % 5, 1 + {h('i', 21)} % {n} "
        f"FROM range(1, {n // 20 + 1}) t(i)"
    )
    con.execute(
        f"INSERT INTO opt_outs SELECT i, 1, NULL, NULL, NULL, {T0} + to_days((i % 700)::INTEGER), "
        f"1 + {h('i', 22)} % {n} FROM range(1, {n // 200 + 1}) t(i)"
    )
    con.execute(
        "INSERT INTO identifiers VALUES (1, 1, 'phone', '+8613800000000', NULL, NULL, 'quarantined')"
    )


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--path", type=Path, default=None, help="DuckDB file (default: a temp file)")
    ap.add_argument("--keep", action="store_true", help="reuse an existing --path file")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.path or Path(tmp.name) / "warehouse.duckdb"
    fresh = not (args.keep and path.exists())
    if fresh and path.exists():
        os.remove(path)
    con = duck.connect(path)
    print(f"{args.customers:,} customers, {args.orders:,} orders, {os.cpu_count()} cores, {path}")
    if fresh:
        started = time.perf_counter()
        ensure_schema(con)
        generate(con, args.customers, args.orders)
        con.execute("CHECKPOINT")
        print(f"generate in DuckDB          {time.perf_counter() - started:8.1f} s")
    period = Period.parse("2025-07-01", "2025-10-01", "Asia/Shanghai")
    scope = Scope(1, "Asia/Shanghai")
    for attempt in ("cold", "warm"):
        started = time.perf_counter()
        report = build(con, scope, period)
        print(f"full report ({attempt})         {time.perf_counter() - started:8.2f} s")
    print(
        f"  gmv {report['sales']['gmv']:,} fen, {report['sales']['orders']:,} orders, "
        f"pool {report['pool']['end']:,}, lifecycle {report['lifecycle']}"
    )
    started = time.perf_counter()
    cols = Runner(con, scope, Period.parse("1970-01-01", "2025-10-01", "Asia/Shanghai")).columns(
        "clv_summary"
    )
    summary = time.perf_counter() - started
    x, t_x, big_t = (np.asarray(cols[k], dtype=float) for k in ("frequency", "recency", "t"))
    started = time.perf_counter()
    fit = clv.fit_bgnbd(frequency=x, recency=t_x, T=big_t)
    print(f"clv summary (SQL)           {summary:8.2f} s  ({len(x):,} buyers)")
    print(f"BG/NBD fit                  {time.perf_counter() - started:8.2f} s  {fit.params}")
    print(f"peak resident memory        {peak_gb():8.2f} GB")


if __name__ == "__main__":
    main()
