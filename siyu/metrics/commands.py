"""`siyu metrics`, `siyu metrics compare`, `siyu cohorts` and `siyu clv`: the reports of issue #4."""

from __future__ import annotations

import csv
import json
import time
from contextlib import nullcontext
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import typer
from rich.table import Table

from siyu.clikit import console, err, fail, metric_constants, settings
from siyu.config import Settings
from siyu.metrics import clv, render
from siyu.metrics import cohorts as cohort_tables
from siyu.metrics import compare as gmv_compare
from siyu.metrics import scope as scope_module
from siyu.metrics.period import Period, PeriodError
from siyu.metrics.report import Runner, build
from siyu.metrics.scope import Scope
from siyu.warehouse.service import Warehouse, open_synced

metrics_app = typer.Typer(
    help="The metrics report of SPEC §5 私域指标 (DATA_FORMAT.md).", invoke_without_command=True
)
clv_app = typer.Typer(help="Predicted LTV: BG/NBD × Gamma-Gamma (SPEC §5.8).", no_args_is_help=True)

From = Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (brand-local).")]
To = Annotated[str | None, typer.Option("--to", help="Day after the last, YYYY-MM-DD (exclusive).")]
Stores = Annotated[list[str] | None, typer.Option("--store", help="Store code (repeatable).")]
Regions = Annotated[list[str] | None, typer.Option("--region", help="Region name (repeatable).")]
ChannelOpt = Annotated[str | None, typer.Option("--channel", help="Acquisition channel code.")]
Lang = Annotated[str, typer.Option("--lang", help="zh (default) or en.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (DATA_FORMAT.md).")]


def _lang(lang: str) -> str:
    if lang not in ("zh", "en"):
        raise fail(f"--lang: {lang!r} is not zh or en")
    return lang


def _period(s: Settings, start: str | None, end: str | None, flag: str = "") -> Period:
    if start is None or end is None:
        missing = f"--{flag}from" if start is None else f"--{flag}to"
        raise fail(f"{missing} is required (YYYY-MM-DD)")
    try:
        period = Period.parse(start, end, s.timezone)
    except PeriodError as e:
        msg = str(e).replace("--from", f"--{flag}from").replace("--to", f"--{flag}to")
        raise fail(msg) from None
    try:
        period.check_started(datetime.now(ZoneInfo(s.timezone)).date())
    except PeriodError as e:
        raise fail(str(e).replace("--from", f"--{flag}from")) from None
    return period


def _open(s: Settings) -> Warehouse:
    status = console.status("Syncing the warehouse 同步数据仓库…")
    with status if console.is_terminal else nullcontext():
        return open_synced(s)


def resolve_scope(
    con: duckdb.DuckDBPyConnection,
    brand_id: int,
    timezone: str,
    stores: list[str] | None,
    regions: list[str] | None,
    channel: str | None,
) -> Scope:
    try:
        return scope_module.resolve(con, brand_id, timezone, stores, regions, channel)
    except scope_module.ScopeError as e:
        raise fail(f"--{e.field}: {e}") from None


@metrics_app.callback()
def metrics(
    ctx: typer.Context,
    start: From = None,
    end: To = None,
    as_json: AsJson = False,
    lang: Lang = "zh",
    store: Stores = None,
    region: Regions = None,
    channel: ChannelOpt = None,
) -> None:
    """The full report for [--from, --to): pool, pass rate, retention, conversion, repurchase,
    GMV and its decomposition, ROI, LTV, loyal and super users, triangle, lifecycle, RFM…"""
    if ctx.invoked_subcommand is not None:
        return
    s = settings()
    lang = _lang(lang)
    period = _period(s, start, end)
    constants = metric_constants(s)
    wh = _open(s)
    scope = resolve_scope(wh.con, wh.brand_id, s.timezone, store, region, channel)
    started = time.perf_counter()
    report = build(wh.con, scope, period, constants)
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    render.print_report(console, report, lang)
    console.print(
        f"[dim]warehouse sync {wh.synced.seconds:.1f} s ({wh.synced.total:,} rows), "
        f"report {time.perf_counter() - started:.2f} s[/dim]"
    )


@metrics_app.command("compare")
def compare(
    start: From = None,
    end: To = None,
    vs_from: Annotated[str | None, typer.Option("--vs-from", help="Baseline first day.")] = None,
    vs_to: Annotated[str | None, typer.Option("--vs-to", help="Baseline end (exclusive).")] = None,
    benchmark: Annotated[
        str | None,
        typer.Option(
            "--benchmark",
            help="Baseline factor values instead of a period: "
            "users=…,conversion=…,purchases_per_buyer=…,aov=… (aov in fen).",
        ),
    ] = None,
    as_json: AsJson = False,
    lang: Lang = "zh",
    store: Stores = None,
    region: Regions = None,
    channel: ChannelOpt = None,
) -> None:
    """Attribute the GMV gap between two periods (or a period and a benchmark) to users,
    conversion, purchases per buyer and AOV (log-share attribution; the parts add up)."""
    s = settings()
    lang = _lang(lang)
    period = _period(s, start, end)
    if (benchmark is None) == (vs_from is None and vs_to is None):
        raise fail("give either --vs-from and --vs-to, or --benchmark")
    wh = _open(s)
    scope = resolve_scope(wh.con, wh.brand_id, s.timezone, store, region, channel)
    try:
        current = gmv_compare.Factors.from_report(_decomposition(wh, scope, period), "--from/--to")
        if benchmark is not None:
            baseline = gmv_compare.Factors.parse(benchmark)
            base_label = "benchmark"
        else:
            base = _period(s, vs_from, vs_to, flag="vs-")
            baseline = gmv_compare.Factors.from_report(
                _decomposition(wh, scope, base), "--vs-from/--vs-to"
            )
            base_label = f"{base.start_day} → {base.end_day}"
    except gmv_compare.CompareError as e:
        raise fail(str(e)) from None
    result = gmv_compare.attribute(current, baseline)
    result["current_period"] = period.as_json()
    result["baseline"] = base_label
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    title = "GMV 差异拆解" if lang == "zh" else "GMV gap attribution"
    t = Table(
        title=f"{title}: {period.start_day} → {period.end_day} vs {base_label}",
        title_justify="left",
    )
    for head in (("因子", "factor"), ("本期", "current"), ("基准", "baseline"),
                 ("比值", "ratio"), ("贡献", "contribution")):  # fmt: skip
        t.add_column(head[0] if lang == "zh" else head[1], justify="right")
    for f, part in result["factors"].items():
        money = f == "aov"
        t.add_row(
            render.label(f, lang),
            render.fmt(f if money else "value", part["current"]),
            render.fmt(f if money else "value", part["baseline"]),
            f"{part['ratio']:.3f}",
            render.fmt("gmv", part["contribution"]),
        )
    g = result["gmv"]
    t.add_row(
        "GMV",
        render.fmt("gmv", g["current"]),
        render.fmt("gmv", g["baseline"]),
        f"{g['ratio']:.3f}",
        render.fmt("gmv", g["gap"]),
        style="bold",
    )
    console.print(t)


def _decomposition(wh: Warehouse, scope: Scope, period: Period) -> dict[str, Any]:
    return Runner(wh.con, scope, period).one("gmv_decomposition")


def cohorts(
    by: Annotated[str, typer.Option("--by", help="week or month.")] = "month",
    metric: Annotated[
        str, typer.Option("--metric", help="retention, conversion or repurchase.")
    ] = "retention",
    start: From = None,
    end: To = None,
    periods: Annotated[int, typer.Option("--periods", help="Offsets to show.")] = 12,
    output: Annotated[str, typer.Option("--output", help="table, csv or json.")] = "table",
    lang: Lang = "zh",
    store: Stores = None,
    region: Regions = None,
    channel: ChannelOpt = None,
) -> None:
    """Cohort table: first-connection cohort × weeks/months since (SPEC §5.3–5.5)."""
    s = settings()
    lang = _lang(lang)
    if output not in ("table", "csv", "json"):
        raise fail(f"--output: {output!r} is not table, csv or json")
    wh = _open(s)
    as_of = cohort_tables.data_end(wh.con, wh.brand_id)
    if start is None or end is None:
        # Default: every cohort, from the first connection to the day after the data ends.
        first = _first_connection_day(wh, s.timezone)
        if first is None:
            raise fail("no connections in the warehouse yet: import some first (siyu import DIR)")
        start = start or first.isoformat()
        last = as_of.astimezone(ZoneInfo(s.timezone)).date()
        end = end or date.fromordinal(last.toordinal() + 1).isoformat()
    period = _period(s, start, end)
    scope = resolve_scope(wh.con, wh.brand_id, s.timezone, store, region, channel)
    try:
        table = cohort_tables.build(
            Runner(wh.con, scope, period), period, unit=by, metric=metric, periods=periods,
            as_of=as_of,
        )  # fmt: skip
    except ValueError as e:
        raise fail(str(e)) from None
    if output == "json":
        print(json.dumps(table.as_json(), ensure_ascii=False, indent=2))
    elif output == "csv":
        print(table.as_csv(), end="")
    else:
        render.print_cohorts(console, table, lang)


def _first_connection_day(wh: Warehouse, timezone: str) -> date | None:
    row = wh.con.execute(
        "SELECT CAST(timezone(?, min(created_at)) AS DATE) FROM connections WHERE brand_id = ?",
        [timezone, wh.brand_id],
    ).fetchone()
    return row[0] if row else None


@clv_app.command("fit")
def clv_fit(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Calibration end, YYYY-MM-DD (default: today).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fit BG/NBD and Gamma-Gamma on every buyer's history before --as-of; print the
    parameters with standard errors."""
    s = settings()
    wh = _open(s)
    summary, period = _clv_summary(s, wh, as_of)
    started = time.perf_counter()
    bg, gg = _fit(summary)
    seconds = time.perf_counter() - started
    fits = {"bgnbd": bg, "gamma_gamma": gg}
    if as_json:
        out: dict[str, Any] = {"as_of": period.end_day.isoformat(), "time_unit": "week"}
        for name, fit in fits.items():
            out[name] = {
                "params": vars(fit.params),
                "std_errors": vars(fit.std_errors),
                "log_likelihood": fit.log_likelihood,
                "customers": fit.n_customers,
                "converged": fit.converged,
            }
        print(json.dumps(out, indent=2))
        return
    t = Table(title=f"pLTV models, calibration to {period.end_day} (weeks)", title_justify="left")
    for head in ("model", "parameter", "estimate", "std. error"):
        t.add_column(head, justify="right" if head in ("estimate", "std. error") else "left")
    for name, fit in fits.items():
        for p, v in vars(fit.params).items():
            t.add_row(name, p, f"{v:.4f}", f"{getattr(fit.std_errors, p):.4f}")
    console.print(t)
    console.print(
        f"BG/NBD on {bg.n_customers:,} buyers (log-likelihood {bg.log_likelihood:,.1f}, "
        f"{'converged' if bg.converged else 'NOT converged'}); Gamma-Gamma on {gg.n_customers:,} "
        f"repeat buyers ({'converged' if gg.converged else 'NOT converged'}); {seconds:.1f} s."
    )


@clv_app.command("predict")
def clv_predict(
    horizon: Annotated[int, typer.Option("--horizon", help="Months ahead.")] = 12,
    discount: Annotated[float, typer.Option("--discount", help="Monthly discount rate.")] = 0.01,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Calibration end, YYYY-MM-DD (default: today).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="CSV file (default: data dir/pltv-<date>.csv).")
    ] = None,
) -> None:
    """Fit, then write each buyer's expected purchases, probability alive and pLTV (fen)."""
    s = settings()
    if horizon < 1:
        raise fail("--horizon: must be at least 1 month")
    if not -1 < discount < 1:
        raise fail("--discount: a monthly rate such as 0.01 (1 %)")
    wh = _open(s)
    summary, period = _clv_summary(s, wh, as_of)
    bg, gg = _fit(summary)
    if not (bg.converged and gg.converged):
        err.print("[yellow]warning:[/yellow] a model did not converge; see `siyu clv fit`")
    pred = clv.predict_clv(
        bg.params,
        gg.params,
        frequency=summary["frequency"],
        recency=summary["recency"],
        T=summary["t"],
        monetary_value=summary["monetary"],
        time_unit=7.0,
        horizon_months=horizon,
        monthly_discount_rate=discount,
    )
    path = out or s.data_dir / f"pltv-{period.end_day}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "expected_purchases", "probability_alive", "pltv_fen"])
        for row in zip(
            summary["customer_id"],
            pred.expected_purchases,
            pred.probability_alive,
            pred.clv,
            strict=True,
        ):
            w.writerow([int(row[0]), f"{row[1]:.4f}", f"{row[2]:.4f}", f"{row[3]:.0f}"])
    console.print(
        f"pLTV for {len(pred.clv):,} buyers over {horizon} months at {discount:.1%}/month → {path}\n"
        f"mean pLTV ¥{pred.clv.mean() / 100:,.2f}, total ¥{pred.clv.sum() / 100:,.2f}, "
        f"mean P(alive) {pred.probability_alive.mean():.1%}"
    )


def _fit(summary: dict[str, np.ndarray]) -> tuple[clv.BgNbdFit, clv.GammaGammaFit]:
    """BG/NBD on every buyer, Gamma-Gamma on repeat buyers; model errors become messages."""
    repeat = summary["frequency"] > 0
    try:
        bg = clv.fit_bgnbd(
            frequency=summary["frequency"], recency=summary["recency"], T=summary["t"]
        )
        gg = clv.fit_gamma_gamma(
            frequency=summary["frequency"][repeat], monetary_value=summary["monetary"][repeat]
        )
    except ValueError as e:
        raise fail(f"cannot fit the pLTV models on this history: {e}") from None
    return bg, gg


def _clv_summary(
    s: Settings, wh: Warehouse, as_of: str | None
) -> tuple[dict[str, np.ndarray], Period]:
    end = as_of or datetime.now(ZoneInfo(s.timezone)).date().isoformat()
    try:
        period = Period.parse("1970-01-01", end, s.timezone)
    except PeriodError as e:
        raise fail(str(e).replace("--to", "--as-of")) from None
    cols = Runner(wh.con, Scope(wh.brand_id, s.timezone), period).columns("clv_summary")
    if len(cols["customer_id"]) < 10:
        raise fail(
            f"only {len(cols['customer_id'])} buyers before {period.end_day}: too few to fit"
        )
    return {k: np.asarray(v, dtype=float) for k, v in cols.items()}, period
