"""`siyu warehouse …`: the DuckDB copy the reports read."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from siyu.clikit import console, settings
from siyu.warehouse.service import open_synced

app = typer.Typer(help="The analytics warehouse (DuckDB) 数据仓库.", no_args_is_help=True)


@app.command("sync")
def sync_cmd(
    full: Annotated[bool, typer.Option("--full", help="Copy everything again.")] = False,
) -> None:
    """Copy what changed in the operational store into the warehouse (reports do this too)."""
    s = settings()
    with console.status("Syncing the warehouse 同步数据仓库…"):
        wh = open_synced(s, full=full)
    r = wh.synced
    t = Table(title=f"Warehouse sync 数据仓库同步 → {s.duckdb_path}", title_justify="left")
    t.add_column("table")
    t.add_column("rows copied", justify="right")
    for name, n in r.rows.items():
        t.add_row(name, f"{n:,}")
    console.print(t)
    kind = "full" if r.full else "incremental"
    console.print(
        f"{kind} sync: {r.total:,} rows, {r.rekeyed:,} facts re-keyed to merged/split customers, "
        f"{r.seconds:.1f} s."
    )
