"""`siyu demo` ends by serving the console with logins that work (issue #7: the README's first
command shows a populated console)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from siyu.serverthread import free_port
from tests.web import console_brand as cb

LOGIN = re.compile(r"^\s+(hq|store) / (\S+)\s", flags=re.M)


def test_demo_prints_logins_that_open_the_console(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ["--data-dir", str(data), "demo", "--persons", "300", "--no-serve"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert f"siyu --data-dir {data} serve" in " ".join(out.output.split())
    logins = dict(LOGIN.findall(out.output))
    assert set(logins) == {"hq", "store"}
    with cb.client(Settings(data_dir=data)) as c:
        for name, password in logins.items():
            c.cookies.clear()
            r = c.post("/login", data={"username": name, "password": password})
            assert r.status_code == 200 and 'data-testid="kpis"' in r.text, name
        assert "S001" in r.text  # the store manager's scope
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output  # a second demo resets the passwords
    assert dict(LOGIN.findall(again.output)) != logins


def test_demo_ends_by_serving_its_console(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-c", "from siyu.cli import run; run()"]
    cmd += ["--data-dir", str(tmp_path / "data"), "demo", "--persons", "300", "--port", str(port)]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        seen = ""
        deadline = time.monotonic() + 300
        while "Ctrl-C" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"demo ended before serving:\n{seen}"
            seen += line
        assert f"http://127.0.0.1:{port}" in seen
        password = dict(LOGIN.findall(seen))["store"]
        for _ in range(100):  # the server starts after the logins are printed
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            r = c.post("/login", data={"username": "store", "password": password},
                       follow_redirects=True)  # fmt: skip
            assert r.status_code == 200 and 'data-testid="kpis"' in r.text
            assert "S001" in r.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_demo_on_a_busy_port_says_so_and_keeps_the_brand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        out = CliRunner().invoke(
            app, ["--data-dir", str(data), "demo", "--persons", "300", "--port", str(port)]
        )
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert f"port {port} is in use" in text and f"serve --port {port + 1}" in text
    assert set(dict(LOGIN.findall(out.output))) == {"hq", "store"}  # the brand is ready
