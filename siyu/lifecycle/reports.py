"""`siyu quadrant` and `siyu ladder`: the SPEC §6 operating reports, one SQL file each."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import typer
from rich.table import Table

from siyu.clikit import as_of_day, console, metric_constants, settings
from siyu.config import Settings
from siyu.glossary import zh
from siyu.lifecycle.service import as_of_period
from siyu.metrics.constants import Constants
from siyu.metrics.report import QUADRANTS, Runner
from siyu.metrics.scope import Scope
from siyu.warehouse.service import open_synced

# SPEC §6: each quadrant's recommended operating mode.
MODES = {
    "high_freq_high_aov": ("trading venue", "交易场: 让顾客在私域直接下单复购"),
    "high_freq_low_aov": ("content and play", "内容与玩法: 用内容和活动留住高频顾客"),
    "low_freq_high_aov": ("consultant service", "顾问式服务: 导购一对一专业服务"),
    "low_freq_low_aov": ("befriend and bridge", "交朋友, 带动其他品类"),
}

AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="As of the start of this day, YYYY-MM-DD (default today)."),
]


def _runner_rows(s: Settings, day: date, name: str) -> list[dict[str, Any]]:
    constants: Constants = metric_constants(s)
    wh = open_synced(s)
    try:
        r = Runner(wh.con, Scope(wh.brand_id, s.timezone), as_of_period(day, s.timezone), constants)
        return r.rows(name)
    finally:
        wh.con.close()


def quadrant_rows(s: Settings, day: date) -> list[dict[str, Any]]:
    found = {r["quadrant"]: r for r in _runner_rows(s, day, "quadrant_report")}
    empty = {"customers": 0, "orders_per_customer": None, "aov_fen": None}
    return [{"quadrant": q, **found.get(q, empty), "mode": MODES[q]} for q in QUADRANTS]


def quadrant(as_of: AsOf = None) -> None:
    """Buyers per business quadrant (purchase frequency × AOV, thresholds in settings
    [metric] quadrant_*) with each quadrant's recommended operating mode (SPEC §6)."""
    s = settings()
    day = as_of_day(s, as_of)
    rows = quadrant_rows(s, day)
    total = sum(r["customers"] for r in rows)
    t = Table(title=f"Business quadrant 生意四象限 as of {day}", title_justify="left")
    for col in ("quadrant", "buyers", "share", "orders/buyer", "AOV ¥", "operating mode"):
        t.add_column(col, justify="left" if col in ("quadrant", "operating mode") else "right")
    for r in rows:
        t.add_row(
            f"{zh(r['quadrant'])} {r['quadrant']}".strip(),
            f"{r['customers']:,}",
            f"{r['customers'] / total:.1%}" if total else "—",
            "—" if r["orders_per_customer"] is None else f"{r['orders_per_customer']:.2f}",
            "—" if r["aov_fen"] is None else f"{r['aov_fen'] / 100:,.2f}",
            f"{r['mode'][0]} · {r['mode'][1]}",
        )
    console.print(t)


def ladder_rows(s: Settings, day: date) -> list[dict[str, Any]]:
    return _runner_rows(s, day, "ladder")


def climb(rows: list[dict[str, Any]], start: str = "traffic", to: str = "profit") -> float | None:
    """Share of buyers entering with `start` who later bought `to` (SPEC §6: traffic → profit)."""
    entered = next((r["entered"] for r in rows if r["entry_role"] == start), 0)
    climbed = next(
        (r["buyers"] for r in rows if r["entry_role"] == start and r["later_role"] == to), 0
    )
    return climbed / entered if entered else None


def ladder(as_of: AsOf = None) -> None:
    """How buyers climb the product ladder 商品阶梯: the share whose first order held a traffic
    item who later bought a profit item, and the full entry-role → later-role table."""
    s = settings()
    day = as_of_day(s, as_of)
    rows = ladder_rows(s, day)
    if not rows:
        console.print(
            "No paid orders with ladder roles yet: give products a ladder_role "
            "(products.csv) and import order_items.csv."
        )
        return
    share = climb(rows)
    console.print(
        "Climb 引流品 → 利润品: "
        + ("no buyer entered with a traffic item" if share is None else f"[bold]{share:.1%}[/bold]")
    )
    t = Table(title=f"Product ladder 商品阶梯 as of {day}", title_justify="left")
    for col in ("first order held", "later bought", "buyers", "share of entry"):
        t.add_column(col, justify="right" if col in ("buyers", "share of entry") else "left")
    for r in rows:
        t.add_row(
            f"{zh(r['entry_role'])} {r['entry_role']}".strip(),
            f"{zh(r['later_role'])} {r['later_role']}".strip(),
            f"{r['buyers']:,}",
            f"{r['buyers'] / r['entered']:.1%}",
        )
    console.print(t)
