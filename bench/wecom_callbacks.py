"""Benchmark: WeCom callbacks accepted per second (issue #8: ≥ 1,000/s in one process).

    .venv/bin/python bench/wecom_callbacks.py --events 20000             # PostgreSQL
    .venv/bin/python bench/wecom_callbacks.py --events 20000 --sqlite
    .venv/bin/python bench/wecom_callbacks.py --events 20000 --pg-database bench_me --full-app

The server is Siyu's real callback endpoint (FastAPI, POST /wecom/callback) under uvicorn in
this one process: each delivery is signature-checked, decrypted (AES-256-CBC), checked for
staleness and replay, and stored (wecom_callback_event + its nonce) before the 200 answer.
WeCom's side runs in `--clients` other processes, each POSTing its share of distinct
add_external_contact events, encrypted and signed beforehand, over `--connections` concurrent
keep-alive connections (WeCom delivers callbacks concurrently).
PostgreSQL runs in a database of its own (`--pg-database`, default bench_wecom, recreated each
run and dropped afterwards). `--full-app` serves siyu.app's whole application (API, console and
the callback) instead of the callback-only app.
Prints accepted/s (events stored ÷ wall time from the first request to the last answer), and
the CPU time the server process spent per callback — the figure that does not depend on what
else the machine is running (the senders share its cores; PostgreSQL's own backend is apart) —
and the load average (`os.getloadavg`, as `uptime` shows it) before and after the run.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import ServerThread
from siyu.wecom.callback import CALLBACK_PATH, create_callback_app
from siyu.wecom.crypto import CallbackCipher

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
CORP_ID = "wwbenchcorp00000001"
TOKEN = "benchToken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def _event(i: int, now: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event>"
        "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
        f"<UserID><![CDATA[guide{i % 50:02d}]]></UserID>"
        f"<ExternalUserID><![CDATA[wmBench{i:026d}]]></ExternalUserID>"
        "<State><![CDATA[S001-store_qr-abc123]]></State>"
        f"<WelcomeCode><![CDATA[{secrets.token_urlsafe(24)}]]></WelcomeCode></xml>"
    )


def _client(port: int, ids: list[int], connections: int, ready: mp.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One sender process: `connections` keep-alive connections, each sending in turn."""
    cipher = CallbackCipher(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)
    now = int(time.time())
    requests = []
    for i in ids:
        msg = cipher.encrypt(_event(i, now), nonce=secrets.token_hex(8), timestamp=str(now))
        path = f"{CALLBACK_PATH}?{urlencode(msg.query_params())}"
        requests.append((path, msg.to_callback_xml(to_user_name=CORP_ID).encode()))
    latencies: list[float] = []
    failed = [0]

    def send(share: list[tuple[str, bytes]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for path, body in share:
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - t)
            failed[0] += response.status != 200
        conn.close()

    threads = [
        threading.Thread(target=send, args=(requests[k::connections],)) for k in range(connections)
    ]
    ready.wait()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((latencies, failed[0], time.perf_counter()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=2, help="sender processes (WeCom's side)")
    ap.add_argument("--connections", type=int, default=16, help="concurrent connections each")
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument(
        "--pg-database", default="bench_wecom", help="PostgreSQL database (recreated, then dropped)"
    )
    ap.add_argument(
        "--full-app", action="store_true", help="serve siyu.app.create_app, not the callback app"
    )
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    db = args.pg_database
    if args.sqlite:
        settings = Settings(data_dir=Path(tmp.name))
    else:
        if not db.replace("_", "").isalnum():
            ap.error(f"--pg-database {db!r}: letters, digits and _ only")
        _pg_admin(f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}")
        settings = Settings(data_dir=Path(tmp.name), database_url=f"{PG_SERVER}/{db}")
    settings = settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID,
            "wecom_callback_token": TOKEN,
            "wecom_encoding_aes_key": AES_KEY,
        }
    )
    engine, brand_id = open_brand(settings)
    if args.full_app:
        from siyu.app import create_app

        app = create_app(settings)
    else:
        app = create_callback_app(settings, engine=engine, brand_id=brand_id)
    ctx = mp.get_context("spawn")
    load_before = os.getloadavg()
    with ServerThread(app) as server:
        ready = ctx.Barrier(args.clients + 1)
        out = ctx.Queue()
        shares = [list(range(k, args.events, args.clients)) for k in range(args.clients)]
        procs = [
            ctx.Process(target=_client, args=(server.port, share, args.connections, ready, out))
            for share in shares
        ]
        for p in procs:
            p.start()
        ready.wait()  # every sender has its requests encrypted and its connection open
        start, cpu_start = time.perf_counter(), time.process_time()
        writer_start = _writer_cpu()
        results = [out.get() for _ in procs]
        elapsed = max(r[2] for r in results) - start
        cpu = time.process_time() - cpu_start  # this process: every server thread
        writer_cpu = _writer_cpu() - writer_start
        load_after = os.getloadavg()
        for p in procs:
            p.join()
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM wecom_callback_event WHERE brand_id = :b"), {"b": brand_id}
        ).scalar_one()
    batches = app.state.wecom_callback.writer.batches
    app.state.wecom_callback.writer.close()
    engine.dispose()
    if not args.sqlite:
        _pg_admin(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    latencies = sorted(x for r in results for x in r[0])
    failed = sum(r[1] for r in results)
    engine_name = "SQLite" if args.sqlite else "PostgreSQL"
    app_name = "full app" if args.full_app else "callback app"
    print(
        f"{engine_name} ({app_name}): {args.events} callbacks from {args.clients}×{args.connections} connections "
        f"in {elapsed:.2f} s "
        f"= {stored / elapsed:,.0f} accepted/s; stored {stored}, non-200 {failed}; latency "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms; {batches} commits; "
        f"server CPU {cpu:.2f} s = {cpu / stored * 1000:.3f} ms per callback "
        f"(= {stored / cpu:,.0f} callbacks per CPU-second), of which the writer thread "
        f"{writer_cpu / stored * 1000:.3f} ms; load average (1/5/15 min) "
        f"{_load(load_before)} before, {_load(load_after)} after"
    )


def _writer_cpu() -> float:
    """CPU seconds of the callback writer thread so far (Linux /proc; 0 elsewhere)."""
    for t in threading.enumerate():
        if t.name == "wecom-callback-writer" and t.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                return 0.0
            utime, stime = fields.split()[11:13]
            return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")
    return 0.0


def _load(avg: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in avg)


def _pg_admin(*statements: str) -> None:
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for sql in statements:
            conn.execute(text(sql))
    admin.dispose()


if __name__ == "__main__":
    main()
