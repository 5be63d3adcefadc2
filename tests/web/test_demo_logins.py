"""`siyu demo` ends with console logins that work (issue #7: the README's first command shows a
populated console)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from siyu.cli import app
from siyu.config import Settings
from tests.web import console_brand as cb


def test_demo_prints_logins_that_open_the_console(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = CliRunner().invoke(app, ["--data-dir", str(data), "demo", "--persons", "300"])
    assert out.exit_code == 0, out.output
    assert f"siyu --data-dir {data} serve" in " ".join(out.output.split())
    logins = dict(re.findall(r"^\s+(hq|store) / (\S+)\s", out.output, flags=re.M))
    assert set(logins) == {"hq", "store"}
    with cb.client(Settings(data_dir=data)) as c:
        for name, password in logins.items():
            c.cookies.clear()
            r = c.post("/login", data={"username": name, "password": password})
            assert r.status_code == 200 and 'data-testid="kpis"' in r.text, name
        assert "S001" in r.text  # the store manager's scope
    again = CliRunner().invoke(app, ["--data-dir", str(data), "demo", "--persons", "300"])
    assert again.exit_code == 0, again.output  # a second demo resets the passwords
    assert dict(re.findall(r"^\s+(hq|store) / (\S+)\s", again.output, flags=re.M)) != logins
