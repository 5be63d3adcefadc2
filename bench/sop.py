"""Benchmark: outbox fan-out and delivery (issue #6).

    .venv/bin/python bench/sop.py --recipients 1000000 --deliver 50000          # PostgreSQL
    .venv/bin/python bench/sop.py --recipients 200000 --deliver 20000 --sqlite

PostgreSQL runs in its own database (`bench_delivery`, created if missing; a fresh schema per
run, dropped afterwards). Three figures:

1. fan-out: `outbox.enqueue` of N recipients (one row each, unique keys, as an SOP step fans
   out), in chunks of 100,000 as a caller would;
2. SMS: one worker (`outbox.run_lanes` turns, as `siyu worker` runs them: 2 lanes) delivering M rows
   through the SMS adapter's batch endpoint to `siyu sms-sim` in its own process;
3. WeCom 1:1: one worker delivering M rows through add_msg_template to the WeCom simulator in
   its own process (20 staff members, M/20 customers each) — "sent" is the task created, as
   in production — then the time `poll_results` takes to read the confirmed tasks' results
   into delivery rows and events.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from siyu.automation import outbox
from siyu.automation.models import Delivery
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import free_port
from siyu.sms.adapter import SmsAdapter
from siyu.wecom.client import WeComClient
from siyu.wecom.delivery import WeComMassAdapter, poll_results

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
DB = "bench_delivery"
STAFF = 20
LANES = 2  # as `siyu worker` runs by default

# The WeCom simulator in its own process, its staff already friends with their customers.
WECOM_SIM = """
import sys, uvicorn
from siyu.wecom.simulator import Simulator, create_app
port, staff, per = (int(a) for a in sys.argv[1:4])
sim = Simulator(auto_confirm_after=0)
for s in range(staff):
    sim.add_user(userid=f"guide{s:02d}", name=f"guide{s:02d}")
    sim.add_friends(f"guide{s:02d}", [f"wm{s:02d}x{i:07d}" for i in range(per)])
uvicorn.run(create_app(sim), host="127.0.0.1", port=port, log_level="warning")
"""


def _wait_for(port: int, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start on port {port}")


def _serve(args: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
    _wait_for(port, what)
    return proc


def _drain(engine, adapters, want: int, limit: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    sent = 0
    while sent < want:
        r = outbox.run_lanes(engine, adapters, "bench", lanes=LANES, limit=limit)
        if not (r.sent or r.failed or r.retrying):
            break
        sent += r.sent
    return sent, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--deliver", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=2000, help="rows claimed per worker turn")
    ap.add_argument("--sqlite", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    if args.sqlite:
        settings = Settings(data_dir=Path(tmp.name))
    else:
        with admin.connect() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DB}
            ).first():
                conn.execute(text(f"CREATE DATABASE {DB}"))
        bench = create_engine(f"{SERVER}/{DB}")
        with bench.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        settings = Settings(
            data_dir=Path(tmp.name), database_url=f"{SERVER}/{DB}?options=-csearch_path%3D{schema}"
        )
    label = "SQLite" if args.sqlite else "PostgreSQL"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        engine, brand = open_brand(settings)
        # 1. fan-out
        items = [
            outbox.Enqueue(f"bench:v1:s1:{i}:0", "sms", i,
                           {"kind": "marketing", "phone": f"+86139{i % 10**8:08d}",
                            "text": "会员日 8 折", "sop": {"key": "bench", "version": 1, "step": "s1"}})
            for i in range(args.recipients)
        ]  # fmt: skip
        started = time.perf_counter()
        for i in range(0, len(items), 100_000):
            outbox.enqueue(engine, brand, items[i : i + 100_000])
        took = time.perf_counter() - started
        print(f"{label}: fan-out of {args.recipients:,} rows      {took:7.1f} s = "
              f"{args.recipients / took:,.0f} rows/s")  # fmt: skip
        del items
        # 2. SMS, batch endpoint
        port = free_port()
        procs.append(_serve(["-c", "from siyu.cli import app; app()", "sms-sim", "--port",
                             str(port)], port, "siyu sms-sim"))  # fmt: skip
        sms = SmsAdapter(f"http://127.0.0.1:{port}")
        sent, took = _drain(engine, {"sms": sms}, args.deliver, args.batch)
        sms.close()
        print(
            f"{label}: one worker, SMS, delivered {sent:,}  {took:7.1f} s = {sent / took:,.0f} msg/s"
        )
        # 3. WeCom 1:1
        per = args.deliver // STAFF
        with engine.begin() as conn:  # the SMS backlog is not this worker's business now
            conn.execute(text("UPDATE outbox SET status = 'failed' WHERE status = 'pending'"))
        if not args.sqlite:  # as autovacuum would after that, before the next measurement
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE outbox"))
        outbox.enqueue(engine, brand, [
            outbox.Enqueue(f"bench:v1:s2:{s}:{i}", "wecom", s * per + i,
                           {"kind": "marketing", "sender": f"guide{s:02d}",
                            "external_userid": f"wm{s:02d}x{i:07d}", "text": "会员日 8 折",
                            "attachments": [], "sop": {"key": "bench", "version": 1, "step": "s2"}})
            for s in range(STAFF) for i in range(per)
        ])  # fmt: skip
        port = free_port()
        procs.append(
            _serve(["-c", WECOM_SIM, str(port), str(STAFF), str(per)], port, "WeCom simulator")
        )
        from siyu.wecom.simulator import Simulator

        ids = Simulator()
        client = WeComClient(corp_id=ids.corp_id, secret=ids.secret,
                             base_url=f"http://127.0.0.1:{port}", requests_per_second=1000)  # fmt: skip
        wecom = WeComMassAdapter(client, engine)
        sent, took = _drain(engine, {"wecom": wecom}, per * STAFF, args.batch)
        print(f"{label}: one worker, WeCom, sent {sent:,}      {took:7.1f} s = {sent / took:,.0f} msg/s"
              " (tasks created)")  # fmt: skip
        started = time.perf_counter()
        report = poll_results(engine, client)
        took = time.perf_counter() - started
        with engine.connect() as conn:
            rows = conn.execute(
                select(func.count()).where(Delivery.channel == "wecom")
            ).scalar_one()
        print(
            f"{label}: WeCom results of {report.tasks:,} tasks → {report.delivered:,} "
            f"delivered ({rows:,} delivery rows) {took:5.1f} s = {report.delivered / took:,.0f}/s"
        )
        client.close()
        engine.dispose()
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        if not args.sqlite:
            with bench.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            bench.dispose()
        admin.dispose()


if __name__ == "__main__":
    main()
