"""Benchmark: `siyu import` and identity resolution vs a plain DuckDB read of the same files.

    .venv/bin/python bench/import_identity.py --persons 250000            # ~1M order rows
    .venv/bin/python bench/import_identity.py --persons 250000 --pg       # also on PostgreSQL

Prints rows/s for the whole import (validation + storage + identity), the identity pass alone
(re-run over everything stored), and DuckDB's `read_csv` of the same files for scale.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
from sqlalchemy import create_engine, text

from siyu.config import Settings
from siyu.demo.generator import generate
from siyu.identity import service as identity_service
from siyu.imports import service as import_service
from siyu.runtime import open_brand

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def count_rows(path: Path) -> int:
    return sum(1 for _ in path.open("rb")) - 1


def bench_engine(label: str, settings: Settings, data: Path, orders: int) -> None:
    engine, brand_id = open_brand(settings)
    started = time.perf_counter()
    summary = import_service.import_directory(
        engine,
        data,
        brand_id=brand_id,
        timezone=settings.timezone,
        k_guard=settings.k_guard,
        report_dir=settings.data_dir / "reports",
    )
    total = time.perf_counter() - started
    rows = sum(f.read for f in summary.files)
    started = time.perf_counter()
    result = identity_service.resolve(engine, brand_id=brand_id, k_guard=settings.k_guard)
    ident = time.perf_counter() - started
    started = time.perf_counter()
    again = import_service.import_directory(
        engine,
        data,
        brand_id=brand_id,
        timezone=settings.timezone,
        k_guard=settings.k_guard,
        report_dir=settings.data_dir / "reports",
    )
    reimport = time.perf_counter() - started
    print(
        f"[{label}] import of {rows:,} rows ({orders:,} orders): {total:.1f} s = "
        f"{rows / total:,.0f} rows/s, {orders / total:,.0f} order rows/s overall"
    )
    for f in summary.files:
        print(
            f"    {f.file:<20} {f.read:>10,} read {f.inserted:>10,} inserted {f.rejected:>6,} rejected"
        )
    print(
        f"[{label}] identity pass over {result.records:,} records → {result.customers:,} customers: "
        f"{ident:.1f} s"
    )
    print(
        f"[{label}] re-import (nothing changes: {again.inserted} inserted, {again.updated} updated): "
        f"{reimport:.1f} s"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", action="store_true", help="also run against PostgreSQL")
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    try:
        data = work / "brand"
        started = time.perf_counter()
        generate(data, seed=args.seed, persons=args.persons)
        orders = count_rows(data / "orders.csv")
        print(
            f"generated {args.persons:,} persons, {orders:,} order rows in "
            f"{time.perf_counter() - started:.1f} s"
        )
        con = duckdb.connect()
        started = time.perf_counter()
        n = 0
        for f in sorted(data.glob("*.csv")):
            n += con.execute(f"SELECT count(*) FROM read_csv('{f}', all_varchar=true)").fetchone()[
                0
            ]
        duck = time.perf_counter() - started
        print(f"[duckdb read_csv] {n:,} rows in {duck:.2f} s = {n / duck:,.0f} rows/s")
        bench_engine("sqlite", Settings(data_dir=work / "sqlite"), data, orders)
        if args.pg:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg_url)
            with admin.begin() as c:
                c.execute(text(f"CREATE SCHEMA {schema}"))
            try:
                url = f"{args.pg_url}?options=-csearch_path%3D{schema}"
                bench_engine(
                    "postgresql", Settings(data_dir=work / "pg", database_url=url), data, orders
                )
            finally:
                with admin.begin() as c:
                    c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory: {peak:,.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
