"""Benchmark: outbox fan-out and delivery (issue #6).

    .venv/bin/python bench/sop.py --recipients 1000000 --deliver 20000          # PostgreSQL
    .venv/bin/python bench/sop.py --recipients 200000 --deliver 20000 --sqlite

Times enqueueing N recipients into the outbox (one row each, unique keys, as an SOP step fans
out) and one worker delivering M of them through the SMS adapter to `siyu sms-sim` over HTTP on
localhost. Prints rows/s and messages/s.
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

from sqlalchemy import create_engine, text

from siyu.automation import outbox
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import free_port
from siyu.sms.adapter import SmsAdapter

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"siyu sms-sim did not start on port {port}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--recipients", type=int, default=1_000_000)
    ap.add_argument("--deliver", type=int, default=20_000)
    ap.add_argument("--sqlite", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    if args.sqlite:
        settings = Settings(data_dir=Path(tmp.name))
    else:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        settings = Settings(
            data_dir=Path(tmp.name), database_url=f"{PG_URL}?options=-csearch_path%3D{schema}"
        )
    try:
        engine, brand = open_brand(settings)
        label = "SQLite" if args.sqlite else "PostgreSQL"
        items = [
            outbox.Enqueue(
                f"bench:v1:s1:{i}:0",
                "sms",
                i,
                {"phone": f"+86139{i % 10**8:08d}", "text": "会员日 8 折"},
            )  # fmt: skip
            for i in range(args.recipients)
        ]
        started = time.perf_counter()
        for i in range(0, len(items), 50_000):
            outbox.enqueue(engine, brand, items[i : i + 50_000])
        took = time.perf_counter() - started
        print(f"{label}: fan-out of {args.recipients:,} rows  {took:7.1f} s = "
              f"{args.recipients / took:,.0f} rows/s")  # fmt: skip
        # The gateway runs in its own process, as a provider would: sharing this one's GIL
        # would measure the simulator, not the worker.
        port = free_port()
        sim = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from siyu.cli import app; app()",
                "sms-sim",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
        )
        _wait_for(port)
        try:
            adapter = SmsAdapter(f"http://127.0.0.1:{port}")
            started = time.perf_counter()
            sent = 0
            while sent < args.deliver:
                r = outbox.deliver(
                    engine, outbox.claim(engine, "bench", limit=200), {"sms": adapter}, "bench"
                )
                sent += r.sent
            took = time.perf_counter() - started
            adapter.close()
        finally:
            sim.terminate()
            sim.wait()
        print(
            f"{label}: one worker delivered {sent:,}     {took:7.1f} s = {sent / took:,.0f} msg/s"
        )
        engine.dispose()
    finally:
        if not args.sqlite:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
