"""`siyu metrics`, `metrics compare`, `cohorts` and `clv` as a user runs them."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from tests.factories import write_dir
from tests.metrics import brand

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("cli")
    src = write_dir(base / "in", brand.FILES)
    result = runner.invoke(app, ["--data-dir", str(base / "data"), "import", str(src)])
    assert result.exit_code == 0, result.output
    return base / "data"


def siyu(data_dir: Path, *args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["--data-dir", str(data_dir), *args])


def test_metrics_json_prints_the_report(data_dir: Path) -> None:
    result = siyu(data_dir, "metrics", "--from", brand.FROM, "--to", brand.TO, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["sales"]["gmv"] == 12000 and report["pool"] == {"start": 3, "end": 2}


def test_metrics_tables_in_chinese_and_english(data_dir: Path) -> None:
    zh = siyu(data_dir, "metrics", "--from", brand.FROM, "--to", brand.TO)
    assert zh.exit_code == 0, zh.output
    assert "顾客池" in zh.output and "复购" in zh.output and "¥120.00" in zh.output
    en = siyu(data_dir, "metrics", "--from", brand.FROM, "--to", brand.TO, "--lang", "en")
    assert "Customer pool" in en.output and "顾客池" not in en.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-08-01", "--to", "2025-07-01"], "must be before --to"),
        (["--from", "2025-07-01", "--to", "2025-07-01"], "must be before --to"),
        (["--from", "2025-13-01", "--to", "2025-07-01"], "--from: '2025-13-01' is not a date"),
        (["--from", "yesterday", "--to", "2025-07-01"], "is not a date"),
        (["--to", "2025-07-01"], "--from is required"),
        (["--from", "2999-01-01", "--to", "2999-02-01"], "is in the future"),
        (["--from", brand.FROM, "--to", brand.TO, "--store", "S999"], "--store: unknown store"),
        (["--from", brand.FROM, "--to", brand.TO, "--channel", "CX"], "--channel: unknown channel"),
        (["--from", brand.FROM, "--to", brand.TO, "--region", "火星"], "--region: unknown region"),
        (["--from", brand.FROM, "--to", brand.TO, "--lang", "fr"], "--lang"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(
    data_dir: Path, args: list[str], message: str
) -> None:
    result = siyu(data_dir, "metrics", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_compare_two_periods_parts_add_up(data_dir: Path) -> None:
    result = siyu(
        data_dir, "metrics", "compare", "--from", brand.FROM, "--to", brand.TO,
        "--benchmark", "users=3,conversion=0.5,purchases_per_buyer=2,aov=2000", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # Current: 3 × 2/3 × 2 × 2500 = 10000 against 3 × 0.5 × 2 × 2000 = 6000.
    assert out["gmv"]["current"] == pytest.approx(10000)
    assert out["gmv"]["gap"] == pytest.approx(4000)
    parts = [f["contribution"] for f in out["factors"].values()]
    assert sum(parts) == pytest.approx(4000)
    assert out["factors"]["users"]["contribution"] == pytest.approx(0)


def test_compare_with_an_empty_period_says_why(data_dir: Path) -> None:
    result = siyu(
        data_dir, "metrics", "compare", "--from", brand.FROM, "--to", brand.TO,
        "--vs-from", "2024-01-01", "--vs-to", "2024-02-01",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--vs-from/--vs-to: users is 0" in result.output


def test_cohorts_csv_and_json(data_dir: Path) -> None:
    result = siyu(
        data_dir, "cohorts", "--by", "month", "--metric", "retention",
        "--from", "2025-06-01", "--to", "2025-08-01", "--periods", "3", "--output", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    cohorts = {c["cohort"]: c for c in table["cohorts"]}
    # June: P5 (06-01) and P1 (06-20); both still connected a month later.
    assert cohorts["2025-06-01"]["size"] == 2
    assert cohorts["2025-06-01"]["values"][:2] == [1.0, 1.0]
    # July: P2 (ended 07-10) and P3 (07-15). A month after P2's start (08-01) is the last instant
    # the data covers; P3's month has not passed yet, so only P2 counts — and has left.
    assert cohorts["2025-07-01"]["values"] == [1.0, 0.0, None]
    csv_out = siyu(
        data_dir, "cohorts", "--by", "week", "--metric", "conversion", "--output", "csv"
    )  # fmt: skip
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.stdout.splitlines()[0].startswith("cohort,size,week_0,week_1")


def test_cohorts_reject_unknown_metric(data_dir: Path) -> None:
    result = siyu(data_dir, "cohorts", "--metric", "happiness")
    assert result.exit_code == 2 and "--metric: 'happiness'" in result.output


def test_clv_fit_needs_enough_buyers(data_dir: Path) -> None:
    result = siyu(data_dir, "clv", "fit", "--as-of", brand.TO)
    assert result.exit_code == 2 and "too few to fit" in result.output


def test_clv_fit_and_predict_on_a_buying_base(tmp_path: Path) -> None:
    # 120 buyers drawn from BG/NBD's own story: Poisson buying at a rate λ ~ Gamma while
    # alive, dropping out after each purchase with probability p ~ Beta; spend per customer ~ Gamma.
    rng = random.Random(5)
    lines = ["order_id,platform,id_type,id_value,created_at,amount_fen,status"]
    start = date(2025, 1, 1)
    purchase_days: dict[int, set[int]] = {}
    for i in range(120):
        rate, p, mean_spend = (
            rng.gammavariate(2, 0.05),
            rng.betavariate(1, 3),
            rng.gammavariate(6, 600),
        )
        t, k = 0.0, 0
        while t < 150:
            spend = round(rng.gammavariate(8, mean_spend / 8)) + 1
            lines.append(
                f"O{i}-{k},mp,phone,1390000{i:04d},{start + timedelta(days=int(t))} 12:00,"
                f"{spend},paid"
            )
            purchase_days.setdefault(i, set()).add(int(t))
            k += 1
            if rng.random() < p:
                break
            t += rng.expovariate(rate)
    src = write_dir(tmp_path / "in", {"orders.csv": "\n".join(lines) + "\n"})
    data = tmp_path / "data"
    assert runner.invoke(app, ["--data-dir", str(data), "import", str(src)]).exit_code == 0
    fit = siyu(data, "clv", "fit", "--as-of", "2025-06-01", "--json")
    assert fit.exit_code == 0, fit.output
    params = json.loads(fit.stdout)
    assert params["bgnbd"]["customers"] == 120
    # Same-day orders are one purchase: Gamma-Gamma sees customers with a second purchase day.
    repeaters = sum(1 for days in purchase_days.values() if len(days) > 1)
    assert params["gamma_gamma"]["customers"] == repeaters
    assert params["bgnbd"]["converged"] and params["gamma_gamma"]["converged"]
    assert all(v > 0 for v in params["bgnbd"]["params"].values())
    out = tmp_path / "pltv.csv"
    pred = siyu(
        data, "clv", "predict", "--as-of", "2025-06-01", "--horizon", "6", "--out", str(out)
    )
    assert pred.exit_code == 0, pred.output
    rows = out.read_text().splitlines()
    assert rows[0] == "customer_id,expected_purchases,probability_alive,pltv_fen"
    assert len(rows) == 121
    values = [[float(x) for x in r.split(",")[1:]] for r in rows[1:]]
    assert all(
        0 <= alive <= 1 and purchases >= 0 and pltv >= 0 for purchases, alive, pltv in values
    )
    # The customers most likely alive are worth more than those most likely gone.
    ranked = sorted(values, key=lambda v: v[1])
    assert sum(v[2] for v in ranked[-20:]) > sum(v[2] for v in ranked[:20])
