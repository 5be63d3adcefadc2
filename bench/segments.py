"""Benchmark: a three-level segment count and the daily attribute pass on a large warehouse.

    .venv/bin/python bench/segments.py --customers 1000000 --orders 10000000
    .venv/bin/python bench/segments.py --customers 10000000 --orders 100000000

Builds the warehouse as bench/metrics.py does (inside DuckDB, no Python loop over rows), adds a
city per customer and the tag 咖啡爱好者 on one customer in five, lays the orders out in time order
as `siyu warehouse sync` writes them, then times, as the CLI runs them (DuckDB memory_limit 5 GB):
- `siyu lifecycle --as-of` (the set-based pass writing every customer's attributes);
- `siyu segments count` of the issue's rule as of the start of that day
  (city in {上海, 北京} AND orders in 90 d ≥ 2) OR (tag 咖啡爱好者 AND NOT lifecycle = churned),
  which reads lifecycle from the fresh snapshot; and once more with lifecycle computed live.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from siyu.lifecycle.service import write_snapshot
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.segments import evaluate
from siyu.segments.rules import parse
from siyu.warehouse import duck
from siyu.warehouse.sync import ensure_schema

_spec = importlib.util.spec_from_file_location(
    "bench_metrics", Path(__file__).with_name("metrics.py")
)
assert _spec and _spec.loader
bench_metrics = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_metrics)

RULE = {
    "any": [
        {
            "all": [
                {"field": "city", "op": "in", "value": ["上海", "北京"]},
                {"field": "orders.count", "op": "gte", "value": 2, "within_days": 90},
            ]
        },
        {
            "all": [
                {"field": "tag", "op": "any_of", "value": ["咖啡爱好者"]},
                {"not": {"field": "lifecycle", "op": "eq", "value": "churned"}},
            ]
        },
    ]
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--memory-limit", default="5GB")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "warehouse.duckdb"
    con = duck.connect(path)
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    n = args.customers
    print(f"{n:,} customers, {args.orders:,} orders, {os.cpu_count()} cores")
    started = time.perf_counter()
    ensure_schema(con)
    bench_metrics.generate(con, n, args.orders)
    h = bench_metrics.h
    con.execute(
        f"UPDATE customers SET city = ['上海', '北京', '广州', '杭州', '成都'][(1 + {h('id', 30)} % 5)::BIGINT]"
    )
    con.execute(
        "INSERT INTO tags VALUES (1, 1, '兴趣', '咖啡爱好者', 'manual'), (2, 1, '兴趣', '茶爱好者', 'manual')"
    )
    con.execute(
        f"INSERT INTO customer_tags SELECT id, 1 + {h('id', 31)} % 2, TIMESTAMPTZ '2025-01-01', "
        f"'bench' FROM customers WHERE {h('id', 32)} % 5 < 2"
    )
    con.execute("CHECKPOINT")
    print(f"generate in DuckDB          {time.perf_counter() - started:8.1f} s")
    started = time.perf_counter()
    con.execute("CREATE TABLE orders_by_time AS SELECT * FROM orders ORDER BY created_at")
    con.execute("DROP TABLE orders")
    con.execute("ALTER TABLE orders_by_time RENAME TO orders")
    con.execute("CHECKPOINT")
    print(f"orders in time order        {time.perf_counter() - started:8.1f} s")
    scope, constants = Scope(1, "Asia/Shanghai"), Constants()
    as_of = datetime(2025, 9, 30, 16, tzinfo=UTC)  # 2025-10-01 00:00 in Shanghai
    started = time.perf_counter()
    written = write_snapshot(con, scope=scope, as_of=date(2025, 10, 1), constants=constants)
    print(
        f"daily attribute pass        {time.perf_counter() - started:8.2f} s  ({written:,} customers)"
    )
    rule = parse(RULE)
    for attempt, fast in (("cold", True), ("warm", True), ("live", False)):
        started = time.perf_counter()
        ev = evaluate.prepare(
            con, rule, scope=scope, as_of=as_of, constants=constants, use_snapshot=fast
        )
        members = evaluate.count(con, ev)
        print(
            f"three-level rule count ({attempt}) {time.perf_counter() - started:7.2f} s  "
            f"({members:,} customers, snapshot {ev.snapshot})"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak resident memory        {peak:8.2f} GB")


if __name__ == "__main__":
    main()
