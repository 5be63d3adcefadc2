"""`siyu lifecycle --as-of DATE`: the daily attribute pass, its distributions and transitions."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from siyu.clikit import as_of_day, console, metric_constants, open_brand, settings
from siyu.glossary import zh
from siyu.lifecycle import service
from siyu.lifecycle.service import GONE, NEW, Snapshot
from siyu.metrics.constants import Constants
from siyu.metrics.report import LIFECYCLE_STAGES
from siyu.metrics.scope import Scope
from siyu.warehouse.service import open_synced


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
    constants: Constants = metric_constants(s)
    day = as_of_day(s, as_of)
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


def _distribution(title: str, counts: dict[str, int], total: int) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("")
    t.add_column("customers", justify="right")
    t.add_column("share", justify="right")
    for key, n in counts.items():
        share = f"{n / total:.1%}" if total else "—"
        t.add_row(f"{zh(key)} {key}".strip(), f"{n:,}", share)
    return t


def print_snapshot(snap: Snapshot) -> None:
    console.print(
        f"[bold]Snapshot as of {snap.as_of}[/bold] (start of the day, brand-local): "
        f"{snap.customers:,} customers; loyal 忠实用户 {snap.loyal:,}, "
        f"super users 超级用户 {snap.super_users:,}"
    )
    total = snap.customers
    console.print(_distribution("Lifecycle 生命周期", snap.stages, total))
    console.print(_distribution("Value layers 贡献度分层", snap.layers, total))
    buyers = sum(snap.rfm_classes.values())
    console.print(_distribution("RFM (buyers)", snap.rfm_classes, buyers))
    # Quadrants cover buyers of the trailing quadrant_days only, so their own total is the base.
    console.print(
        _distribution(
            "Business quadrant 生意四象限",
            snap.quadrants,
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
        t.add_column(zh(c, c), justify="right")
    for r in rows:
        t.add_row(
            f"{zh(r)} {r}".strip(),
            *(f"{snap.transitions.get((r, c), 0):,}" for c in cols),
        )
    console.print(t)
    console.print(
        f"{snap.changed:,} customers changed stage; {snap.events:,} lifecycle.changed events "
        "recorded (a re-run of the same day records none twice)."
    )
