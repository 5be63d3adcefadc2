"""`siyu customer show` as an operator runs it: the customer behind any identifier, why its records
are one customer, and an audit row for the read of personal data (SPEC §4, §12)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from siyu.audit import service as audit
from siyu.cli import app
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import run_import, write_dir
from tests.metrics import brand


def test_show_explains_the_merge_and_is_audited(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_import(Settings(data_dir=data), write_dir(tmp_path / "in", brand.FILES))
    runner = CliRunner()
    shown = runner.invoke(app, ["--data-dir", str(data), "customer", "show", "member_no:M5"])
    assert shown.exit_code == 0, shown.output
    assert "r5a" in shown.output and "r5b" in shown.output  # both records of P5
    assert "+8613800000005" in shown.output  # the phone they share
    missing = runner.invoke(app, ["--data-dir", str(data), "customer", "show", "phone:13999999999"])
    assert missing.exit_code != 0 and "no customer has phone:+8613999999999" in missing.output
    engine, brand_id = open_brand(Settings(data_dir=data))
    with engine.begin() as conn:
        reads = [e for e in audit.recent(conn, brand_id=brand_id) if e["action"] == "pii.read"]
    engine.dispose()
    assert [(e["target"], str(e["actor"])[:4]) for e in reads] == [("customer:5", "cli:")]
