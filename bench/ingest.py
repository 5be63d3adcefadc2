"""Benchmark: events ingested per second through POST /api/v1/events (issue #7: ≥ 5,000/s one
event per request, ≥ 50,000/s batched, one server process, SQLite and PostgreSQL).

    .venv/bin/python bench/ingest.py                 # SQLite
    .venv/bin/python bench/ingest.py --pg            # PostgreSQL (schema of its own, dropped after)

The server is `siyu serve` itself, in a process of its own: the `siyu` command's entry point
(siyu.cli:app) run by this interpreter — uvicorn with httptools and uvloop, one worker, as a
user runs it (`PYTHONPATH=<another checkout>` runs both sides on that code: before/after).
The brand holds `--customers` customers imported from a records file; every event names one
of them, half by id and half by `phone:…`, so each is resolved as a real integration's
would be. The client is this process:
asyncio over raw keep-alive HTTP/1.1 connections with the requests encoded beforehand, so that
its own cost per request (~20 µs) stays far below the server's and the figure is the server's.
The machine has two cores: the server gets one, the client and PostgreSQL share the other.

Two phases, each timed from the first request to the last answer, counting only events the
server answered `created` (every answer is checked; anything else fails the run):
- single: `--single` events, one per request, over `--connections` concurrent connections;
- batched: `--batches` requests of `--batch` events each, over 4 connections.
Prints events/s for each, the server's CPU seconds per 1,000 events (a figure that depends
less on what else the machine runs) — and on PostgreSQL the database's (every `postgres`
process on this machine) — and checks the events table holds every event once.
Last, the ceiling: the same client against an endpoint that does nothing under the same
uvicorn — what one FastAPI process answers at most on this machine at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
from sqlalchemy import create_engine, text

from siyu.auth import service as tokens
from siyu.config import Settings
from siyu.imports import service as import_service
from siyu.runtime import open_brand
from siyu.serverthread import free_port

PG_URL = os.environ.get("SIYU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def prepare(settings: Settings, customers: int, work: Path) -> str:
    """Import `customers` people (POS records with phones) and issue an ingest token."""
    src = work / "in"
    src.mkdir()
    lines = ["record_id,source,phone,member_no"]
    lines += [f"p{i},pos,139{i:08d},M{i}" for i in range(customers)]
    (src / "records.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    engine, brand_id = open_brand(settings)
    import_service.import_directory(
        engine, src, brand_id=brand_id, timezone=settings.timezone, k_guard=5,
        report_dir=work / "reports",
    )  # fmt: skip
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, f"bench-{uuid.uuid4().hex[:6]}")  # ingest only
    engine.dispose()
    return token


def event(run: str, i: int, customers: int) -> dict[str, object]:
    n = i % customers
    who = str(n + 1) if i % 2 else f"phone:139{n:08d}"  # ids 1…customers all exist
    # a stream: one event a second, each timestamp its own (none parsed once for many events)
    at = f"2025-11-01T{9 + i // 3600 % 12:02d}:{i // 60 % 60:02d}:{i % 60:02d}+08:00"
    return {"type": "coupon.claimed", "idempotency_key": f"{run}-{i}", "customer": who,
            "occurred_at": at,
            "payload": {"coupon": f"C{i % 50}", "store": "S001"}}  # fmt: skip


def request(port: int, token: str, body: bytes) -> bytes:
    head = (
        f"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _send(port: int, queue: list[bytes], expect: int, answers: list[dict]) -> None:
    """One keep-alive connection: send the next request, read its answer, until none is left."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue:
            writer.write(queue.pop())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
            answer = orjson.loads(body)
            if answer["created"] != expect:
                raise RuntimeError(f"expected {expect} created: {body[:300]!r}")
            answers.append(answer)
    finally:
        writer.close()


async def phase(port: int, requests: list[bytes], per_request: int, connections: int) -> float:
    queue = list(reversed(requests))
    answers: list[dict] = []
    started = time.perf_counter()
    await asyncio.gather(*(_send(port, queue, per_request, answers) for _ in range(connections)))
    seconds = time.perf_counter() - started
    assert len(answers) == len(requests)
    return seconds


CEILING_APP = """
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.post("/api/v1/events")
async def events(request: Request) -> Response:
    await request.body()
    return Response(b'{"created":1,"duplicate":0,"rejected":0,"results":[]}',
                    media_type="application/json")
"""


def ceiling(work: Path, requests: list[bytes], connections: int, access_log: bool) -> float:
    """Requests/s of an endpoint that does nothing, under the same uvicorn in the same
    conditions: what one FastAPI process on this machine can answer at most, right now."""
    (work / "ceiling.py").write_text(CEILING_APP, encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "ceiling:app", "--app-dir", str(work), "--port",
         str(port), "--log-level", "info", *([] if access_log else ["--no-access-log"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(port, server)
        return len(requests) / asyncio.run(phase(port, requests, 1, connections))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


def wait_for(port: int, server: subprocess.Popen) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                err = server.stderr.read() if server.stderr else b""
                raise RuntimeError(f"the server did not start: {err!r}") from None
            time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """User + system CPU time so far of every PostgreSQL server process on this machine (its
    backends, WAL writer, checkpointer…): the database's share of a run on PostgreSQL."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to read
            if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres":
                total += cpu_seconds(int(pid))
    return total


def database_cpu(pg: bool, seconds: float, events: int) -> str:
    return f", PostgreSQL CPU {seconds / events * 1000:.3f} s" if pg else ""


@contextlib.contextmanager
def profiled(into: Path | None, pid: int, name: str) -> Iterator[None]:
    """Sample the server with py-spy (if asked) while the block runs."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw",
                            "--output", str(into / f"{name}.txt"), "--threads", "--idle"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=40_000, help="events sent one per request")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1_000)
    ap.add_argument("--no-access-log", action="store_true", help="siyu serve --no-access-log")
    ap.add_argument(
        "--profile",
        type=Path,
        help="py-spy each phase into DIR (raw stacks; needs pip install py-spy)",
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="siyu-bench-ingest-"))
    env = {**os.environ, "SIYU_DATA_DIR": str(work / "data")}
    schema = None
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in PG_URL else "?"
        env["SIYU_DATABASE_URL"] = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    settings = Settings(data_dir=work / "data", database_url=env.get("SIYU_DATABASE_URL"))
    server = None
    try:
        token = prepare(settings, args.customers, work)
        port = free_port()
        # exactly what the `siyu` command runs (its entry point), with this interpreter, so
        # PYTHONPATH can point both sides at another checkout (a before/after comparison)
        siyu = [sys.executable, "-c", "from siyu.cli import app; app()"]
        server = subprocess.Popen(
            [*siyu, "serve", "--port", str(port),
             *(["--no-access-log"] if args.no_access_log else [])], env=env, cwd=work, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(port, server)

        run = uuid.uuid4().hex[:8]
        warm = [request(port, token, orjson.dumps(event(f"w{run}", i, args.customers)))
                for i in range(500)]  # fmt: skip
        asyncio.run(phase(port, warm, 1, 8))

        singles = [request(port, token, orjson.dumps(event(f"s{run}", i, args.customers)))
                   for i in range(args.single)]  # fmt: skip
        cpu0, pg0 = cpu_seconds(server.pid), postgres_cpu_seconds()
        with profiled(args.profile, server.pid, "single"):
            t_single = asyncio.run(phase(port, singles, 1, args.connections))
        cpu_single = cpu_seconds(server.pid) - cpu0
        pg_single = postgres_cpu_seconds() - pg0

        batches = [
            request(port, token, orjson.dumps(
                {"events": [event(f"b{run}", k * args.batch + i, args.customers)
                            for i in range(args.batch)]}))
            for k in range(args.batches)
        ]  # fmt: skip
        cpu0, pg0 = cpu_seconds(server.pid), postgres_cpu_seconds()
        with profiled(args.profile, server.pid, "batched"):
            t_batch = asyncio.run(phase(port, batches, args.batch, 4))
        cpu_batch = cpu_seconds(server.pid) - cpu0
        pg_batch = postgres_cpu_seconds() - pg0
        n_batched = args.batches * args.batch

        engine, _ = open_brand(settings)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM event")).scalar_one()
        engine.dispose()
        assert stored == 500 + args.single + n_batched, stored

        engine_name = "PostgreSQL" if args.pg else "SQLite"
        flags = " --no-access-log" if args.no_access_log else ""
        print(f"engine: {engine_name}; customers: {args.customers:,}; server: `siyu serve{flags}` "
              f"(pid {server.pid}), one process")  # fmt: skip
        print(f"single  : {args.single:,} events, 1 per request, {args.connections} connections: "
              f"{t_single:.2f} s = {args.single / t_single:,.0f} events/s; server CPU "
              f"{cpu_single / args.single * 1000:.3f} s per 1,000 events"
              f"{database_cpu(args.pg, pg_single, args.single)}")  # fmt: skip
        print(f"batched : {n_batched:,} events, {args.batch:,} per request, 4 connections: "
              f"{t_batch:.2f} s = {n_batched / t_batch:,.0f} events/s; server CPU "
              f"{cpu_batch / n_batched * 1000:.3f} s per 1,000 events"
              f"{database_cpu(args.pg, pg_batch, n_batched)}")  # fmt: skip
        print(f"stored  : {stored:,} events, each once")
        top = ceiling(work, singles[: min(len(singles), 20_000)], args.connections,
                      not args.no_access_log)  # fmt: skip
        print(f"ceiling : an endpoint that does nothing, same uvicorn, same client: "
              f"{top:,.0f} requests/s")  # fmt: skip
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
