"""Opening the DuckDB warehouse and running SQL files against it with bound parameters."""

from __future__ import annotations

import re
import time
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


_HOLDER = re.compile(r"\(PID (\d+)\)")
# How long opening the file waits for another process to let go of it: a `siyu serve`
# holds it for one request, a command such as the daily pass for up to a minute or two.
LOCK_WAIT_SECONDS = 15.0


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse file (DuckDB lets one process write a file)."""


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A warehouse connection whose session time zone is UTC: stored instants are UTC, and
    every brand-local day is computed explicitly with the brand's zone. While another process
    holds the file, waits up to LOCK_WAIT_SECONDS for it, then raises WarehouseBusy."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline, pause = time.monotonic() + LOCK_WAIT_SECONDS, 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as e:
            if "Could not set lock" not in str(e):
                raise
            if time.monotonic() >= deadline:
                holder = _HOLDER.search(str(e))
                who = f"process {holder[1]}" if holder else "another process"
                raise WarehouseBusy(
                    f"the warehouse {path} is in use by {who} (a `siyu serve` answering a "
                    f"request, or another siyu command) and was not released within "
                    f"{LOCK_WAIT_SECONDS:g} s; try again when it is done"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
    con.execute("SET TimeZone = 'UTC'")
    return con


@cache
def sql_file(package: str, name: str) -> str:
    """The text of `<package>/sql/<name>.sql`, shipped inside the wheel."""
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


_USES = re.compile(r"^--\s*uses:\s*(.+)$", re.MULTILINE)
_LEADING = re.compile(r"\A(?:\s*--[^\n]*\n)*\s*")


def uses(sql: str) -> list[str]:
    """The files a SQL file reads as CTEs, from its `-- uses: a, b` header lines."""
    return [n.strip() for line in _USES.findall(sql) for n in line.split(",") if n.strip()]


@cache
def composed(package: str, name: str, swap: tuple[tuple[str, str], ...] = ()) -> str:
    """`<name>.sql` with every file it uses, directly or not, in front of it as CTEs.

    This is how one definition feeds another without being written twice: `loyal.sql` counts
    the rows of `loyal_customers.sql`; `customer_attributes.sql` joins lifecycle, RFM and layers,
    which all read the per-customer order summary `customer_orders.sql`. Every used file appears
    once, in dependency order, so a summary shared by several files is computed once; a file's
    own inner WITH stays nested in its CTE, so CTE names inside different files never clash.

    `swap` pairs (used, instead): the CTE named `used` gets the text of `instead.sql`, a file
    giving the columns its readers need another way (customer_orders' lifetime columns from the
    warehouse's per-customer order summary, siyu.warehouse.order_summary).
    """
    text = sql_file(package, name)
    instead = dict(swap)
    order = _dependencies(package, name, instead)
    if not order:
        return text
    ctes = ",\n".join(f"{d} AS (\n{sql_file(package, instead.get(d, d))}\n)" for d in order)
    body = _LEADING.sub("", text, count=1)
    head = text[: len(text) - len(body)]
    if re.match(r"WITH\s", body, re.IGNORECASE):
        return f"{head}WITH {ctes},\n{body[4:].lstrip()}"
    return f"{head}WITH {ctes}\n{body}"


def _dependencies(package: str, name: str, instead: dict[str, str]) -> list[str]:
    """Every file `name` uses, transitively, each once, a file after those it uses."""
    order: list[str] = []

    def visit(file: str, path: tuple[str, ...]) -> None:
        for dep in uses(sql_file(package, instead.get(file, file))):
            if dep in path:
                raise ValueError(f"{package} SQL files use each other in a cycle: {dep}")
            if dep not in order:
                visit(dep, (*path, dep))
                order.append(dep)

    visit(name, (name,))
    return order


def bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names ($name), and an error naming any that is missing.

    DuckDB rejects values a statement does not use, so each file gets only its own."""
    names = set(_PARAM.findall(_strip_comments(sql)))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"SQL parameter(s) not given: {', '.join(sorted(missing))}")
    return {n: params[n] for n in names}


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def run(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
) -> duckdb.DuckDBPyConnection:
    return con.execute(sql, bind(sql, params))
