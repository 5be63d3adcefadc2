"""DuckDB lets one process hold the warehouse file. Another process that wants it waits a
while, then gets a clear answer: a one-line error at the terminal, 503 with Retry-After from the
server — never a traceback or a 500."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from siyu import cli
from siyu.auth import service as tokens
from siyu.auth.principal import SCOPES
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.warehouse import duck
from tests.web import console_brand as cb

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold() -> Iterator[object]:
    """Start another process that holds a warehouse file for some seconds."""
    started: list[subprocess.Popen[str]] = []

    def start(path: Path, seconds: float) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()


def test_connect_waits_for_the_holder_then_names_it(hold, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.duckdb"
    duck.connect(path).close()
    holder = hold(path, 60)
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 0.5)
    t0 = time.monotonic()
    with pytest.raises(duck.WarehouseBusy) as e:
        duck.connect(path)
    assert time.monotonic() - t0 >= 0.5
    assert f"in use by process {holder.pid}" in str(e.value) and str(path) in str(e.value)
    # a holder that lets go within the wait is waited for
    holder.kill()
    hold(path, 1.0)
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 20)
    t0 = time.monotonic()
    con = duck.connect(path)
    assert con.execute("SELECT 1").fetchone() == (1,)
    con.close()
    assert 0.3 < time.monotonic() - t0 < 15


def test_a_command_prints_one_line_and_exits_2(hold, settings: Settings, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               monkeypatch, capsys) -> None:  # fmt: skip
    cb.build(settings, tmp_path)
    hold(settings.duckdb_path, 60)
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(sys, "argv", ["siyu", "--data-dir", str(settings.data_dir), "metrics",
                                      "--from", "2025-07-01", "--to", "2025-08-01"])  # fmt: skip
    if settings.database_url:  # the CLI reads SIYU_* as from a user's shell
        monkeypatch.setenv("SIYU_DATABASE_URL", settings.database_url)
    with pytest.raises(SystemExit) as e:
        cli.run()
    assert e.value.code == 2
    out = capsys.readouterr()
    said = " ".join(out.err.split())  # Rich wraps the line at the terminal's width
    assert said.startswith("error: the warehouse") and "Traceback" not in said
    assert "in use by process" in said and "try again when it is done" in said


def test_server_answers_503_while_a_command_holds_the_file(hold, settings: Settings,  # type: ignore[no-untyped-def]
                                                           tmp_path: Path, monkeypatch) -> None:  # fmt: skip
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        token = tokens.create(conn, brand_id, "hq", role="hq_admin", scopes=SCOPES)
    engine.dispose()
    monkeypatch.setattr(duck, "LOCK_WAIT_SECONDS", 0.3)
    with cb.client(settings) as c:
        cb.login(c, "ops")
        assert c.get("/segments").status_code == 200
        holder = hold(settings.duckdb_path, 60)
        r = c.get("/api/v1/metrics", params={"from": "2025-07-01", "to": "2025-08-01"},
                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert r.status_code == 503 and r.headers["Retry-After"] == "10"
        assert r.json()["error"]["code"] == "busy" and str(tmp_path) not in r.text
        page = c.get("/segments")
        assert page.status_code == 503 and "数据仓库正被另一个 Siyu 进程占用" in page.text
        holder.kill()
        holder.wait()
        assert c.get("/segments").status_code == 200
