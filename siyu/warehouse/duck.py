"""Opening the DuckDB warehouse and running SQL files against it with bound parameters."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A warehouse connection whose session time zone is UTC: stored instants are UTC, and
    every brand-local day is computed explicitly with the brand's zone."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    return con


@cache
def sql_file(package: str, name: str) -> str:
    """The text of `<package>/sql/<name>.sql`, shipped inside the wheel."""
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


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
