"""Benchmark: identity resolution alone, at scale (issue #3: 10M records ≤ 60 s).

    .venv/bin/python bench/identity.py --records 10000000                 # SQLite
    .venv/bin/python bench/identity.py --records 10000000 --pg            # PostgreSQL (bench_identity)
    .venv/bin/python bench/identity.py --records 250000 --pg --pg-database bench_me --rechange-all

Writes N source records and their identifiers straight into the operational store in bulk (no
CSV import): persons seen through 1–3 of POS / mini-program / WeCom / official account / Tmall,
with phones, unionids, external_userids, member numbers, openids and Tmall nicks overlapping
as they do in life, and one placeholder phone typed at tills. Then times:

1. the first (full) identity pass;
2. a re-run with nothing changed since the last pass (incremental);
3. an incremental pass after adding 1 % new records: new persons, new sightings of known
   persons, and records that bridge two existing customers;
   With --fresh-import the records are stamped now and PostgreSQL's statistics are left as a
   bulk import leaves them (autovacuum off for the run), so this re-run is the pass right after
   a `siyu import` into a new brand: every record is within the last pass's overlap, the
   scope is the whole brand, and the run stops there;
4. with --rechange-all, an incremental pass after touching every record's updated_at (a fresh
   import into an already resolved brand): the scope is the whole brand;
5. with --full-rerun, a full pass over everything again (`siyu identity resolve --full`).

Each pass prints its wall time, the CPU seconds of this process and (PostgreSQL) of the
database's server backends, and the machine's load. --pass-limit cancels a PostgreSQL pass
that runs longer (reported as killed) so that a plan that never finishes cannot hang the run.

--setup-only --keep DIR writes the records and stops; --from DIR then times the first pass
and a re-run on a fresh copy of that store, so that two revisions' first passes run on the same
records (each from its own checkout). --phases prints the first pass's steps.

The records are stamped two days ago, as if imported earlier; the 1 % batch is stamped now.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from siyu.bulk import bulk_load
from siyu.config import Settings
from siyu.identity import service as identity_service
from siyu.identity.models import Identifier, RecordIdentity, SourceRecord
from siyu.runtime import open_brand

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SOURCES = np.array(["pos", "mp", "wecom", "oa", "tmall"])
SOURCE_P = [0.30, 0.25, 0.20, 0.10, 0.15]
# (type, value prefix); a value is its prefix and the person number, zero-padded.
TYPES = {
    "external_userid": "wm",
    "member_no": "M",
    "openid_oa": "oa",
    "phone": "+8613",
    "tmall_nick": "t",
    "unionid": "o6_",
}
PLACEHOLDER = 999_999_999  # "person" whose phone is the till's placeholder +8613999999999
CHUNK = 500_000
BIG_TABLES = ("source_record", "identifier", "record_identity")


def value(id_type: str, pid: int) -> str:
    return f"{TYPES[id_type]}{pid:09d}"


class Store:
    """Identifier ids by (type, person), so later batches reuse what exists."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[np.ndarray, np.ndarray]] = {
            t: (np.zeros(0, np.int64), np.zeros(0, np.int64)) for t in TYPES
        }
        self.next_record = 1
        self.next_ident = 1


def carried(rng: np.random.Generator, pid: np.ndarray, src: np.ndarray) -> dict[str, np.ndarray]:
    """Person number per record for each identifier type (-1: the record lacks it)."""
    n = len(pid)
    none = np.full(n, -1, dtype=np.int64)
    u = rng.random((3, n))
    by = {t: none.copy() for t in TYPES}
    pos, mp, wecom, oa, tmall = (src == s for s in SOURCES)
    by["member_no"][pos] = pid[pos]
    phone = (pos & (u[0] < 0.7)) | (mp & (u[0] < 0.5)) | (tmall & (u[0] < 0.3))
    by["phone"][phone] = pid[phone]
    till = pos & (u[1] < 0.003)  # typed the placeholder instead of the customer's phone
    by["phone"][till] = PLACEHOLDER
    union = mp | oa | (wecom & (u[2] < 0.7))
    by["unionid"][union] = pid[union]
    by["external_userid"][wecom] = pid[wecom]
    by["openid_oa"][oa] = pid[oa]
    by["tmall_nick"][tmall] = pid[tmall]
    return by


def stamp(conn: Connection, when: datetime) -> object:
    return when.strftime("%Y-%m-%d %H:%M:%S.%f") if conn.dialect.name == "sqlite" else when


def write(conn: Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cols = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cur = raw.cursor()
        cur.executemany(
            f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in columns)})", rows
        )
        cur.close()


def add_records(
    conn: Connection,
    store: Store,
    brand_id: int,
    pid: np.ndarray,
    src: np.ndarray,
    by: dict[str, np.ndarray],
    when: datetime,
    analyze: bool = True,
) -> tuple[int, int]:
    """Write records (ids in order) with their identifiers; returns (records, new identifiers).

    analyze: refresh PostgreSQL's statistics afterwards (False: as a `siyu import` leaves them)."""
    n = len(pid)
    rec_ids = np.arange(store.next_record, store.next_record + n, dtype=np.int64)
    store.next_record += n
    at = stamp(conn, when)
    # New identifier values, in (type, value) order so the unique index grows at its end.
    new_idents: list[tuple[str, np.ndarray, np.ndarray]] = []
    pair_ident: dict[str, np.ndarray] = {}
    for t in sorted(TYPES):
        has = by[t] >= 0
        known_pid, known_id = store.known[t]
        wanted = np.unique(by[t][has])
        fresh = wanted[~np.isin(wanted, known_pid)]
        ids = np.arange(store.next_ident, store.next_ident + len(fresh), dtype=np.int64)
        store.next_ident += len(fresh)
        new_idents.append((t, ids, fresh))
        all_pid = np.concatenate([known_pid, fresh])
        all_id = np.concatenate([known_id, ids])
        order = np.argsort(all_pid, kind="stable")
        store.known[t] = (all_pid[order], all_id[order])
        ident = np.full(n, -1, dtype=np.int64)
        ident[has] = store.known[t][1][np.searchsorted(store.known[t][0], by[t][has])]
        pair_ident[t] = ident
    with bulk_load(conn, Identifier.__table__, sum(len(ids) for _, ids, _ in new_idents)):
        for t, ids, fresh in new_idents:
            for s in range(0, len(ids), CHUNK):
                part = zip(ids[s : s + CHUNK].tolist(), fresh[s : s + CHUNK].tolist(), strict=True)
                write(
                    conn,
                    "identifier",
                    ["id", "brand_id", "id_type", "value", "status", "changed_at"],
                    [(i, brand_id, t, value(t, p), "linked", at) for i, p in part],
                )
    with bulk_load(conn, SourceRecord.__table__, n):
        for s in range(0, n, CHUNK):
            ids, sources = rec_ids[s : s + CHUNK].tolist(), src[s : s + CHUNK].tolist()
            write(
                conn,
                "source_record",
                ["id", "brand_id", "record_key", "source", "created_at", "updated_at"],
                [
                    (i, brand_id, f"R{i:010d}", so, at, at)
                    for i, so in zip(ids, sources, strict=True)
                ],
            )
    pairs = 0
    with bulk_load(conn, RecordIdentity.__table__, sum(int((v >= 0).sum()) for v in by.values())):
        for s in range(0, n, CHUNK):
            rows = []
            for t in sorted(TYPES):
                ident = pair_ident[t][s : s + CHUNK]
                has = ident >= 0
                rows += zip(
                    rec_ids[s : s + CHUNK][has].tolist(),
                    [t] * int(has.sum()),
                    ident[has].tolist(),
                    strict=True,
                )
            rows.sort()
            pairs += len(rows)
            write(conn, "record_identity", ["record_id", "id_type", "identifier_id"], rows)
    if analyze and conn.dialect.name == "postgresql":
        for table in BIG_TABLES:
            conn.execute(text(f"ANALYZE {table}"))
    return n, pairs


def base(rng: np.random.Generator, records: int) -> tuple[np.ndarray, np.ndarray, int]:
    persons = int(records / 1.7) + 1
    counts = rng.choice([1, 2, 3], size=persons, p=[0.5, 0.3, 0.2])
    pid = np.repeat(np.arange(persons, dtype=np.int64), counts)
    if len(pid) < records:
        pid = np.concatenate([pid, np.arange(persons, persons + records - len(pid))])
        persons += records - len(pid)
    pid = pid[:records]
    src = rng.choice(SOURCES, size=records, p=SOURCE_P)
    return pid, src, int(pid.max()) + 1


def daily(
    rng: np.random.Generator, count: int, persons: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """1 %: 60 % new persons, 30 % known persons seen again, 10 % bridging two known persons."""
    kind = rng.choice(3, size=count, p=[0.6, 0.3, 0.1])
    pid = np.where(
        kind == 0,
        persons + np.arange(count),
        rng.integers(0, persons, size=count),
    )
    src = rng.choice(SOURCES, size=count, p=SOURCE_P)
    src[kind == 2] = "mp"
    by = carried(rng, pid, src)
    bridge = kind == 2  # a mini-program record: one person's phone, another's unionid
    by["phone"][bridge] = rng.integers(0, persons, size=int(bridge.sum()))
    return pid, src, by


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def own_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def backends_cpu(engine: Engine) -> float:
    """CPU seconds used so far by the server processes serving this database (PostgreSQL on
    this machine; 0 elsewhere)."""
    if engine.dialect.name != "postgresql":
        return 0.0
    with engine.connect() as conn:
        pids = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        ).scalars()
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


class Watchdog:
    """Cancel the database's other queries once `limit` seconds have passed (PostgreSQL)."""

    def __init__(self, engine: Engine, limit: float | None) -> None:
        self.engine, self.limit, self.fired = engine, limit, False
        self.done = threading.Event()

    def __enter__(self) -> Watchdog:
        if self.limit and self.engine.dialect.name == "postgresql":
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()

    def _watch(self) -> None:
        assert self.limit is not None
        if self.done.wait(self.limit):
            return
        self.fired = True
        with self.engine.connect() as conn:
            while not self.done.is_set():
                conn.execute(
                    text(
                        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                self.done.wait(2)


def timed(label: str, engine: Engine, brand_id: int, k: int, limit: float | None, **kw) -> float:
    started, cpu, server = time.perf_counter(), own_cpu(), backends_cpu(engine)
    try:
        with Watchdog(engine, limit) as dog:
            r = identity_service.resolve(engine, brand_id=brand_id, k_guard=k, **kw)
    except OperationalError:
        if not dog.fired:
            raise
        print(f"  {label:<36} KILLED after {time.perf_counter() - started:.0f} s  [{load()}]")
        return float("nan")
    sec = time.perf_counter() - started
    kind = "full" if r.full else "incremental"
    print(
        f"  {label:<36} {sec:8.1f} s  ({kind}: {r.resolved:,} of {r.records:,} records → "
        f"{r.customers:,} customers; {r.created:,} created, {r.merged:,} merged, "
        f"{r.split:,} split, {r.quarantined} quarantined)\n"
        f"  {'':<36} cpu {own_cpu() - cpu:.1f} s client, "
        f"{backends_cpu(engine) - server:.1f} s server  [{load()}]",
        flush=True,
    )
    return sec


def rechange_all(engine: Engine, brand_id: int) -> int:
    """Stamp every record of the brand as updated now, as a fresh import of them all would."""
    with engine.begin() as conn:
        return conn.execute(
            text("UPDATE source_record SET updated_at = :now WHERE brand_id = :b"),
            {"now": stamp(conn, datetime.now(UTC)), "b": brand_id},
        ).rowcount


# The pass's steps timed by --phases (wall and CPU seconds, summed over calls); int_table, the
# temp tables, is also counted inside the steps that fill them.
PHASES = (
    "add_all_fact_identifiers", "add_reference_records", "_load_brand", "connected_components",
    "_assign_customers", "_create_customers", "_write_records", "_write_customers",
    "_write_identifiers", "_write_quarantine", "_merge_profiles", "int_table",
)  # fmt: skip


def time_phases() -> dict[str, list[float]]:
    """Wrap the identity pass's steps (module globals, looked up at each call) with timers."""
    spent: dict[str, list[float]] = {}
    for name in PHASES:
        if not hasattr(identity_service, name):  # another revision's step names
            continue
        step = getattr(identity_service, name)

        def timed_step(*a: object, _step=step, _name=name, **kw: object) -> object:
            started, cpu = time.perf_counter(), own_cpu()
            try:
                return _step(*a, **kw)
            finally:
                total = spent.setdefault(_name, [0.0, 0.0])
                total[0] += time.perf_counter() - started
                total[1] += own_cpu() - cpu

        setattr(identity_service, name, timed_step)
    return spent


def print_phases(spent: dict[str, list[float]]) -> None:
    for name, (wall, cpu) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        print(f"    {name:<32} {wall:7.1f} s  cpu {cpu:6.1f} s")
    spent.clear()


def run_from(store: Path, args: argparse.Namespace) -> None:
    """The first pass and a re-run on a copy of a store kept by --setup-only --keep."""
    work = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    try:
        started = time.perf_counter()
        shutil.copytree(store, work, dirs_exist_ok=True)
        print(f"[sqlite] copied {store} in {time.perf_counter() - started:.1f} s", flush=True)
        settings = Settings(data_dir=work)
        engine, brand_id = open_brand(settings)
        spent = time_phases() if args.phases else None
        timed("first pass (full)", engine, brand_id, settings.k_guard, None)
        if spent is not None:
            print_phases(spent)
        timed("re-run, nothing changed", engine, brand_id, settings.k_guard, None)
        engine.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(label: str, settings: Settings, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    engine, brand_id = open_brand(settings)
    store = Store()
    pid, src, persons = base(rng, args.records)
    started = time.perf_counter()
    fresh = args.fresh_import
    with engine.begin() as conn:
        if fresh and conn.dialect.name == "postgresql":
            for table in BIG_TABLES:  # autovacuum would analyze them a minute later
                conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = off)"))
        n, pairs = add_records(
            conn, store, brand_id, pid, src, carried(rng, pid, src),
            datetime.now(UTC) - (timedelta(0) if fresh else timedelta(days=2)), analyze=not fresh,
        )  # fmt: skip
    print(
        f"[{label}] wrote {n:,} records, {pairs:,} record identifiers, "
        f"{store.next_ident - 1:,} identifier values in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    del pid, src
    if args.setup_only:
        engine.dispose()
        return
    k, limit = settings.k_guard, args.pass_limit
    spent = time_phases() if args.phases else None
    timed("first pass (full)", engine, brand_id, k, limit)
    if spent is not None:
        print_phases(spent)
    timed("re-run, nothing changed", engine, brand_id, k, limit)
    if fresh:  # every record is within the overlap: each later pass would see them all again
        engine.dispose()
        return
    count = max(1, args.records // 100)
    pid, src, by = daily(rng, count, persons)
    with engine.begin() as conn:
        add_records(conn, store, brand_id, pid, src, by, datetime.now(UTC))
    timed(f"after adding {count:,} records (1 %)", engine, brand_id, k, limit)
    if args.rechange_all:
        touched = rechange_all(engine, brand_id)
        sec = timed(f"after touching all {touched:,} records", engine, brand_id, k, limit)
        if sec != sec:  # killed: the next pass would face the same scope
            engine.dispose()
            return
        timed("re-run, nothing changed", engine, brand_id, k, limit)
    if args.full_rerun:
        timed("full pass again (--full)", engine, brand_id, k, limit, full=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", action="store_true", help="on PostgreSQL (see --pg-database)")
    parser.add_argument(
        "--pg-database", default="bench_identity", help="created for the run, dropped after"
    )
    parser.add_argument("--full-rerun", action="store_true", help="also time a second full pass")
    parser.add_argument(
        "--rechange-all",
        action="store_true",
        help="also time an incremental pass after touching every record",
    )
    parser.add_argument(
        "--fresh-import",
        action="store_true",
        help="records stamped now, statistics not refreshed; stop after the re-run",
    )
    parser.add_argument(
        "--pass-limit", type=float, help="PostgreSQL: cancel a pass after this many seconds"
    )
    parser.add_argument("--keep", type=Path, help="SQLite: keep the data directory here")
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="write the records and stop (with --keep: a store to copy for repeated first passes)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="SQLite: time the first pass and a re-run on a copy of a store kept by --setup-only",
    )
    parser.add_argument("--phases", action="store_true", help="time the first pass's steps")
    args = parser.parse_args()
    print(f"load: {load()}")
    if args.source:
        run_from(args.source, args)
    elif args.pg:
        db = args.pg_database
        if not db.isidentifier():
            parser.error(f"--pg-database: {db!r} is not a plain database name")
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {db}"))
            c.execute(text(f"CREATE DATABASE {db}"))
        work = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
        try:
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{db}"
            run("postgresql", Settings(data_dir=work, database_url=url), args)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
    else:
        work = args.keep or Path(tempfile.mkdtemp(prefix="siyu-bench-"))
        try:
            run("sqlite", Settings(data_dir=work), args)
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:,.0f} MiB")
    print(f"load: {load()}")


if __name__ == "__main__":
    main()
