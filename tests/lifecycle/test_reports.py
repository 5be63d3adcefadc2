"""`siyu ladder` and `siyu quadrant` on the segment brand (C1 coffee = traffic, T1 tea =
profit), with one more order: a buys tea on 07-25 after two coffee orders."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from siyu.cli import app
from siyu.lifecycle import reports
from tests.factories import run_import, write_dir
from tests.segments.conftest import build

AS_OF = date(2025, 8, 1)
MORE = {
    "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,"
    "refund_fen\nA3,pos,S001,external_userid,a,2025-07-25 12:00,3000,paid,\n",
    "order_items.csv": "order_id,sku,qty,amount_fen\nA3,T1,1,3000\n",
}


def test_ladder_and_quadrant(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    build(settings, tmp_path / "in")
    assert run_import(settings, write_dir(tmp_path / "more", MORE)).rejected == 0

    rows = reports.ladder_rows(settings, AS_OF)
    got = [(r["entry_role"], r["later_role"], r["buyers"], r["entered"]) for r in rows]
    # Entered with traffic: a, d, e (e's first order held coffee and tea, so it also entered
    # with profit); only a later bought a profit item. b entered with profit and stopped.
    assert got == [
        ("profit", "(none)", 2, 2),
        ("traffic", "(none)", 2, 3),
        ("traffic", "profit", 1, 3),
        ("traffic", "traffic", 1, 3),
    ]
    assert reports.climb(rows) == 1 / 3
    # Before a's tea order nobody had climbed.
    assert reports.climb(reports.ladder_rows(settings, date(2025, 7, 25))) == 0

    configured = settings.model_copy(
        update={"metric": {"quadrant_orders": 3, "quadrant_aov_fen": 3000}}
    )
    quad = {r["quadrant"]: r for r in reports.quadrant_rows(configured, AS_OF)}
    assert {q: r["customers"] for q, r in quad.items()} == {
        "high_freq_high_aov": 1,  # a: 3 orders, ¥30 each
        "high_freq_low_aov": 0,
        "low_freq_high_aov": 2,  # b ¥30, e ¥50
        "low_freq_low_aov": 1,  # d ¥20
    }
    assert quad["low_freq_high_aov"]["aov_fen"] == 4000
    assert quad["high_freq_high_aov"]["mode"][0] == "trading venue"

    env = {"SIYU_DATABASE_URL": settings.database_url} if settings.database_url else {}
    result = CliRunner().invoke(
        app, ["--data-dir", str(settings.data_dir), "ladder", "--as-of", "2025-08-01"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "Climb 引流品 → 利润品: 33.3%" in result.output
    result = CliRunner().invoke(
        app, ["--data-dir", str(settings.data_dir), "quadrant", "--as-of", "2025-08-01"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "befriend" in result.output
