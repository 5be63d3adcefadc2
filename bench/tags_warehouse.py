"""How removed customer tags reach the warehouse: the history feed vs copying the mirror whole.

Builds N customers with TAGS tags each (plain SQL, no identity pass), syncs the warehouse once,
untags 1 % of one tag's customers through siyu.tags.service, then times (a) the incremental sync,
which drops the removals read from customer_tag_history, and (b) copying the customer_tags mirror
whole, the alternative. Usage: .venv/bin/python bench/tags_warehouse.py --customers 1000000
[--pg postgresql+psycopg://postgres@127.0.0.1:5432/bench_tags]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.tags import service
from siyu.warehouse import duck
from siyu.warehouse.mirrors import BY_NAME
from siyu.warehouse.sync import _apply, _copy, sync


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--tags", type=int, default=3)
    ap.add_argument("--pg", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_tags_"))
    s = Settings(data_dir=tmp, database_url=args.pg) if args.pg else Settings(data_dir=tmp)
    engine, b = open_brand(s)
    n = args.customers
    now = datetime.now(UTC)
    with engine.begin() as conn:
        started = time.perf_counter()
        conn.execute(
            text(
                "INSERT INTO customer (id, brand_id, created_at, updated_at) "
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < :n) "
                "SELECT i, :b, :now, :now FROM k"
            ),
            {"n": n, "b": b, "now": now},
        )
        tag_ids = [
            service.get_or_create_tag(conn, brand_id=b, group="兴趣", name=f"t{i}")
            for i in range(args.tags)
        ]
        for t in tag_ids:
            conn.execute(
                text(
                    "INSERT INTO customer_tag (customer_id, tag_id, added_at, added_by, "
                    "changed_at) SELECT id, :t, :now, 'bench', :now FROM customer"
                ),
                {"t": t, "now": now},
            )
        print(f"built {n:,} customers × {args.tags} tags in {time.perf_counter() - started:.1f} s")
    con = duck.connect(str(tmp / "wh.duckdb"))
    con.execute("SET memory_limit='5GB'")
    started = time.perf_counter()
    sync(con, engine, b, full=True)
    print(f"full sync: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    sync(con, engine, b, overlap=timedelta(0))
    print(f"incremental sync, nothing changed (baseline): {time.perf_counter() - started:.2f} s")
    gone = np.arange(1, n + 1, 100, dtype=np.int64)
    with engine.begin() as conn:
        started = time.perf_counter()
        k = service.untag_customers(conn, brand_id=b, tag_id=tag_ids[0], customer_ids=gone,
                                    by="bench", source="manual")  # fmt: skip
        print(f"untag_customers of {k:,}: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    r = sync(con, engine, b, overlap=timedelta(0))  # the bench is the only writer
    left = con.execute(
        "SELECT count(*) FROM customer_tags WHERE tag_id = ?", [tag_ids[0]]
    ).fetchone()
    print(f"(a) incremental sync with the history feed: {time.perf_counter() - started:.2f} s "
          f"(rows copied {r.total:,}); tag 0 in the warehouse: {left[0]:,}")  # fmt: skip
    m = BY_NAME["customer_tags"]
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    copied = _copy(con, engine, m, b, None)
    _apply(con, m, b, True)
    con.execute("ROLLBACK")
    print(
        f"(b) customer_tags copied whole: {time.perf_counter() - started:.2f} s ({copied:,} rows)"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
