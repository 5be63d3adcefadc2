"""`siyu serve`'s access log (siyu.accesslog): the line uvicorn's access log would write for every
answered request — the events fast path, FastAPI's routes, errors — gathered and written in bulk."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from uvicorn.logging import AccessFormatter

from siyu.accesslog import AccessLog
from siyu.app import create_app
from siyu.auth import service as tokens
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import free_port

EVENT = {"type": "coupon.claimed", "idempotency_key": "k1", "customer": None,
         "occurred_at": "2025-07-20T09:00:00+08:00"}  # fmt: skip


def uvicorn_line(addr: str, method: str, target: str, status: int) -> str:
    """What uvicorn's own access log writes (its formatter, without colours)."""
    formatter = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 0,
                               '%s - "%s %s HTTP/%s" %d', (addr, method, target, "1.1", status),
                               None)  # fmt: skip
    return formatter.format(record) + "\n"


def test_every_answered_request_gets_uvicorns_line(settings: Settings) -> None:
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "crm")
    engine.dispose()
    out = io.StringIO()
    app = AccessLog(create_app(settings), stream=out, interval=30)  # written by close() below
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert client.post("/api/v1/events", json=EVENT, headers=auth).status_code == 200
        assert client.post("/api/v1/events", json=EVENT).status_code == 401
        assert client.get("/api/v1/nowhere", params={"q": 'a"b'}).status_code == 404
        assert client.post("/api/v1/events", content=b"nope", headers=auth).status_code == 422
        assert out.getvalue() == ""  # not yet written: gathered for the thread
        app.close()
    app.app.state.siyu.engine.dispose()
    addr = "testclient:50000"
    assert out.getvalue() == "".join([
        uvicorn_line(addr, "POST", "/api/v1/events", 200),
        uvicorn_line(addr, "POST", "/api/v1/events", 401),
        uvicorn_line(addr, "GET", "/api/v1/nowhere?q=a%22b", 404),
        uvicorn_line(addr, "POST", "/api/v1/events", 422),
    ])  # fmt: skip


def test_siyu_serve_writes_the_access_log_unless_told_not_to(
    settings: Settings, tmp_path: Path
) -> None:
    """The command itself: lines reach stdout while it runs (the writer thread), and none with
    --no-access-log."""
    open_brand(settings)[0].dispose()
    env = {"SIYU_DATA_DIR": str(settings.data_dir)}
    if settings.database_url:
        env["SIYU_DATABASE_URL"] = settings.database_url
    for flags, expect in (([], True), (["--no-access-log"], False)):
        port = free_port()
        log = tmp_path / f"serve{len(flags)}.log"
        with log.open("w") as stdout:
            server = subprocess.Popen(
                [sys.executable, "-c", "from siyu.cli import run; run()", "serve", "--port",
                 str(port), *flags], stdout=stdout, stderr=subprocess.STDOUT,
                env={**_base_env(), **env},
            )  # fmt: skip
            try:
                answer = _get(f"http://127.0.0.1:{port}/api/v1/nowhere", server)
                assert answer == 404
                time.sleep(1)  # the writer thread writes every 0.2 s
                text = log.read_text()
            finally:
                server.terminate()
                server.wait(timeout=20)
        assert ('"GET /api/v1/nowhere HTTP/1.1" 404 Not Found' in text) is expect, text


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}


def _get(url: str, server: subprocess.Popen) -> int:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while True:
        try:
            return httpx.get(url, timeout=5).status_code
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
