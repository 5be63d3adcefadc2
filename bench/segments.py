"""Benchmark: a three-level segment count and the daily attribute pass on a large warehouse.

    .venv/bin/python bench/segments.py --customers 1000000 --orders 10000000
    .venv/bin/python bench/segments.py --customers 10000000 --orders 100000000

Builds the warehouse as bench/metrics.py does (inside DuckDB, no Python loop over rows), adds a
city per customer and the tag 咖啡爱好者 on one customer in five, lays the orders out in time order
as `siyu warehouse sync` writes them, then times, as the CLI runs them (DuckDB memory_limit 5 GB):
- `siyu lifecycle --as-of` (the set-based pass writing every customer's attributes);
- `siyu segments count` of the issue's rule as of the start of that day
  (city in {上海, 北京} AND orders in 90 d ≥ 2) OR (tag 咖啡爱好者 AND NOT lifecycle = churned),
  which reads lifecycle from the fresh snapshot; and once more with lifecycle computed live;
- rules on figures over all paid orders (count, days since the last, lifecycle and RFM live),
  which the per-customer order summary a sync keeps serves (siyu.warehouse.order_summary);
as of 2025-10-01 (three months of orders after it) and 2026-01-01 (after the last order, as for
a pass run today), each rule first from the orders, then with the summary (its whole build and a
1 % refresh are timed first); and checks that both ways count the same members.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from siyu.lifecycle.service import write_snapshot
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.segments import evaluate
from siyu.segments.rules import parse
from siyu.warehouse import duck, order_summary
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


# Leaves the order summary serves (figures over all paid orders before the instant), counted
# live (no snapshot) both ways.
LIFETIME_RULES = {
    "orders.count >= 5": {"field": "orders.count", "op": "gte", "value": 5},
    "days since last order <= 30": {"field": "orders.days_since_last", "op": "lte", "value": 30},
    "lifecycle = growth (live)": {"field": "lifecycle", "op": "eq", "value": "growth"},
    "rfm.class (live)": {"field": "rfm.class", "op": "eq", "value": "important_value"},
}


def passes(con, scope, constants, *, quick: bool = False) -> bool:  # type: ignore[no-untyped-def]
    """As of the bench day and of the day after the last order (a pass run for today): the
    daily pass, then the issue's rule and the lifetime leaves, each first from the orders and
    then with the order summary, on a checkpointed file; whether both ways counted the same."""
    same = True
    for day in (date(2026, 1, 1),) if quick else (date(2025, 10, 1), date(2026, 1, 1)):
        as_of = datetime.combine(day, datetime.min.time(), ZoneInfo("Asia/Shanghai"))
        con.execute("CHECKPOINT")
        started = time.perf_counter()
        written = write_snapshot(con, scope=scope, as_of=day, constants=constants)
        print(
            f"daily attribute pass {day}    {time.perf_counter() - started:7.2f} s"
            f"  ({written:,} customers)"
        )
        got = []
        for use_summary in (True,) if quick else (False, True):
            print(f"  {day}, order figures from the {'summary' if use_summary else 'orders'}:")
            con.execute("CHECKPOINT")
            counted = []
            runs = [
                ("three-level rule (cold)", RULE, True),
                ("three-level rule (warm)", RULE, True),
            ]
            if not quick:
                runs += [("three-level rule (live)", RULE, False)]
                runs += [(name, r, False) for name, r in LIFETIME_RULES.items()]
            for name, r, fast in runs:
                started = time.perf_counter()
                ev = evaluate.prepare(
                    con, parse(r), scope=scope, as_of=as_of, constants=constants,
                    use_snapshot=fast, use_summary=use_summary,
                )  # fmt: skip
                members = evaluate.count(con, ev)
                print(
                    f"    {name:30} {time.perf_counter() - started:7.2f} s"
                    f"  ({members:,} customers, snapshot {ev.snapshot})"
                )
                counted.append(members)
            got.append(counted)
        same = same and got[0] == got[-1]
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=10_000_000)
    ap.add_argument("--memory-limit", default="5GB")
    ap.add_argument(
        "--warehouse",
        type=Path,
        help="keep the generated warehouse in this file and reuse it when it exists "
        "(the sizes must match those it was built with)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="only as of 2026-01-01, only the daily pass and the issue's rule (cold, warm)",
    )
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.warehouse or Path(tmp.name) / "warehouse.duckdb"
    n = args.customers
    print(f"{n:,} customers, {args.orders:,} orders, {os.cpu_count()} cores")
    if path.exists():
        print(f"reusing {path}")
    else:  # built under another name, so an interrupted build is never reused
        building = path.with_name(path.name + ".building")
        building.unlink(missing_ok=True)
        con = duck.connect(building)
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        generate(con, n, args.orders)
        con.close()
        building.rename(path)
    con = duck.connect(path)
    con.execute(f"SET memory_limit = '{args.memory_limit}'")
    scope, constants = Scope(1, "Asia/Shanghai"), Constants()
    print("same members both ways:", passes(con, scope, constants, quick=args.quick))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak resident memory        {peak:8.2f} GB")


def generate(con, n: int, orders: int) -> None:  # type: ignore[no-untyped-def]
    """The warehouse of `n` customers and `orders` orders, and its order summary (timed)."""
    started = time.perf_counter()
    ensure_schema(con)
    bench_metrics.generate(con, n, orders)
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
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    order_summary.rebuild(con, 1)
    con.execute("COMMIT")
    print(f"order summary, whole build  {time.perf_counter() - started:8.2f} s  (a full sync)")
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    order_summary.start_marking(con)
    order_summary.mark(con, f"SELECT id FROM customers WHERE {h('id', 33)} % 100 = 0")
    marked = order_summary.refresh(con, 1)
    con.execute("COMMIT")
    print(
        f"order summary, 1 % refresh  {time.perf_counter() - started:8.2f} s  "
        f"({marked:,} customers; an incremental sync)"
    )


if __name__ == "__main__":
    main()
