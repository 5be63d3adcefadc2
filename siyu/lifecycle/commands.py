"""`siyu lifecycle --as-of DATE`: the daily attribute pass, its distributions and transitions."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from siyu.clikit import console, fail, settings
from siyu.lifecycle import service
from siyu.lifecycle.service import GONE, NEW, Snapshot
from siyu.metrics.constants import Constants
from siyu.metrics.report import LIFECYCLE_STAGES
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.warehouse.service import open_synced

STAGE_ZH = {
    "introduction": "引入期",
    "growth": "成长期",
    "maturity": "成熟期",
    "dormant": "休眠期",
    "churned": "流失期",
}
LAYER_ZH = {
    "loyal_fans": "铁杆粉丝",
    "paying": "付费用户",
    "active": "活跃用户",
    "newly_activated": "新激活用户",
    "regular": "普通用户",
}
RFM_ZH = {
    "important_value": "重要价值",
    "important_development": "重要发展",
    "important_retention": "重要保持",
    "important_winback": "重要挽留",
    "general_value": "一般价值",
    "general_development": "一般发展",
    "general_retention": "一般保持",
    "general_winback": "一般挽留",
}
QUADRANT_ZH = {
    "high_freq_high_aov": "高频高客单",
    "high_freq_low_aov": "高频低客单",
    "low_freq_high_aov": "低频高客单",
    "low_freq_low_aov": "低频低客单",
}


def lifecycle(
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Day whose start is the as-of instant, YYYY-MM-DD (brand-local; default "
            "today, i.e. everything up to the end of yesterday) — the same instant as "
            "`siyu metrics --to DATE`.",
        ),
    ] = None,
) -> None:
    """Snapshot every customer's lifecycle stage, value layer, RFM, quadrant and loyal /
    super-user flags (SPEC §6); print the distribution and the transitions from the previous
    snapshot, and record a lifecycle.changed event per customer whose stage changed."""
    s = settings()
    try:
        constants: Constants = s.metric_constants
    except ValueError as e:
        raise fail(f"settings: {e}") from None
    today = datetime.now(ZoneInfo(s.timezone)).date()
    if as_of is None:
        day = today
    else:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise fail(f"--as-of: {as_of!r} is not a date (YYYY-MM-DD)") from None
        if day > today:
            raise fail(f"--as-of {day} is in the future (today is {today})")
    started = time.perf_counter()
    wh = open_synced(s)
    engine, _ = open_brand(s)
    try:
        snap = service.run_daily(
            wh.con,
            engine,
            scope=Scope(wh.brand_id, s.timezone),
            as_of=day,
            constants=constants,
        )
    finally:
        engine.dispose()
        wh.con.close()
    print_snapshot(snap)
    console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/dim]")


def _distribution(title: str, counts: dict[str, int], zh: dict[str, str], total: int) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("")
    t.add_column("customers", justify="right")
    t.add_column("share", justify="right")
    for key, n in counts.items():
        share = f"{n / total:.1%}" if total else "—"
        t.add_row(f"{zh.get(key, key)} {key}", f"{n:,}", share)
    return t


def print_snapshot(snap: Snapshot) -> None:
    console.print(
        f"[bold]Snapshot as of {snap.as_of}[/bold] (start of the day, brand-local): "
        f"{snap.customers:,} customers; loyal 忠实用户 {snap.loyal:,}, "
        f"super users 超级用户 {snap.super_users:,}"
    )
    total = snap.customers
    console.print(_distribution("Lifecycle 生命周期", snap.stages, STAGE_ZH, total))
    console.print(_distribution("Value layers 贡献度分层", snap.layers, LAYER_ZH, total))
    buyers = sum(snap.rfm_classes.values())
    console.print(_distribution("RFM (buyers)", snap.rfm_classes, RFM_ZH, buyers))
    # Quadrants cover buyers of the trailing quadrant_days only, so their own total is the base.
    console.print(
        _distribution(
            "Business quadrant 生意四象限",
            snap.quadrants,
            QUADRANT_ZH,
            sum(snap.quadrants.values()),
        )
    )
    if snap.previous is None:
        console.print("No earlier snapshot: no transitions, no lifecycle.changed events.")
        return
    rows = (NEW, *LIFECYCLE_STAGES)
    cols = (*LIFECYCLE_STAGES, GONE)
    t = Table(
        title=f"Transitions 迁移 {snap.previous} → {snap.as_of} (rows: before, columns: now)",
        title_justify="left",
    )
    t.add_column("")
    for c in cols:
        t.add_column(STAGE_ZH.get(c, c), justify="right")
    for r in rows:
        t.add_row(
            f"{STAGE_ZH.get(r, '')} {r}".strip(),
            *(f"{snap.transitions.get((r, c), 0):,}" for c in cols),
        )
    console.print(t)
    console.print(
        f"{snap.changed:,} customers changed stage; {snap.events:,} lifecycle.changed events "
        "recorded (a re-run of the same day records none twice)."
    )
