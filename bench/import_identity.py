"""Benchmark: `siyu import` and identity resolution vs a plain DuckDB read of the same files.

    .venv/bin/python bench/import_identity.py --persons 250000            # ~1M order rows
    .venv/bin/python bench/import_identity.py --persons 250000 --pg       # also on PostgreSQL
    .venv/bin/python bench/import_identity.py --persons 250000 --pg --no-sqlite

Prints, per engine: rows/s and order rows/s for the whole import (read + validate + store +
the first identity pass), seconds and rows/s per file, the identity pass alone (re-run over
everything stored), and a re-import of the same files; and DuckDB's `read_csv` of the same
files for scale.
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
from sqlalchemy import Engine, create_engine, text

from siyu.config import Settings
from siyu.demo.generator import generate
from siyu.identity import service as identity_service
from siyu.imports import service as import_service
from siyu.runtime import open_brand

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def count_rows(path: Path) -> int:
    return sum(1 for _ in path.open("rb")) - 1


class FileClock:
    """Seconds per file from the import's progress hook (read + validate + store)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._file: str | None = None
        self._start = 0.0

    def __call__(self, file: str, stage: str) -> None:
        now = time.perf_counter()
        if stage == "reading" or (file == "identity" and stage == "resolving"):
            self._file, self._start = file, now
        elif stage == "done" and self._file == file:
            self.seconds[file] = now - self._start
            self._file = None

    def identity(self, end: float) -> float:
        return end - self._start if self._file == "identity" else 0.0


def run_import(settings: Settings, engine: Engine, brand_id: int, data: Path, clock: FileClock):
    started = time.perf_counter()
    summary = import_service.import_directory(
        engine,
        data,
        brand_id=brand_id,
        timezone=settings.timezone,
        k_guard=settings.k_guard,
        report_dir=settings.data_dir / "reports",
        progress=clock,
    )
    end = time.perf_counter()
    return summary, end - started, clock.identity(end)


def bench_engine(label: str, settings: Settings, data: Path, orders: int) -> None:
    engine, brand_id = open_brand(settings)
    clock = FileClock()
    summary, total, ident_in_import = run_import(settings, engine, brand_id, data, clock)
    rows = sum(f.read for f in summary.files)
    print(
        f"[{label}] import of {rows:,} rows ({orders:,} order rows), all files incl. identity: "
        f"{total:.1f} s = {rows / total:,.0f} rows/s, {orders / total:,.0f} order rows/s"
    )
    print(f"    {'file':<20} {'read':>10} {'inserted':>10} {'rejected':>8} {'s':>7} {'rows/s':>10}")
    for f in summary.files:
        sec = clock.seconds.get(f.file, 0.0)
        rate = f"{f.read / sec:,.0f}" if sec else "-"
        print(
            f"    {f.file:<20} {f.read:>10,} {f.inserted:>10,} {f.rejected:>8,} {sec:>7.2f} {rate:>10}"
        )
    ident = summary.identity
    assert ident is not None
    print(
        f"    {'identity (first)':<20} {ident.records:>10,} records → {ident.customers:,} "
        f"customers {ident_in_import:>7.2f} s"
    )
    started = time.perf_counter()
    result = identity_service.resolve(
        engine, brand_id=brand_id, k_guard=settings.k_guard, full=True
    )
    again_ident = time.perf_counter() - started
    print(
        f"[{label}] identity pass alone (--full) over {result.records:,} records → "
        f"{result.customers:,} customers: {again_ident:.1f} s "
        f"(first pass, inside the import: {ident_in_import:.1f} s)"
    )
    started = time.perf_counter()
    result = identity_service.resolve(engine, brand_id=brand_id, k_guard=settings.k_guard)
    print(
        f"[{label}] identity pass alone (incremental, nothing changed; re-reads the last hour): "
        f"{result.resolved:,} records re-resolved in {time.perf_counter() - started:.1f} s"
    )
    again, reimport, _ = run_import(settings, engine, brand_id, data, FileClock())
    print(
        f"[{label}] re-import (nothing changes: {again.inserted} inserted, {again.updated} "
        f"updated): {reimport:.1f} s = {rows / reimport:,.0f} rows/s"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", action="store_true", help="also run against PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite run")
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
        if not args.no_sqlite:
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
