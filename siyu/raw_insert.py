"""Batch inserts on the database driver itself, for the hot write paths (WeCom callbacks,
integration events), which SQLAlchemy's compilation and per-parameter processing would cost more
than the inserts themselves.

SQLite: multi-row `VALUES`, split so that no statement binds more parameters than the library
allows (`SQLITE_LIMIT_VARIABLE_NUMBER`: 32,766 by default, 999 in old builds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import Any


def sqlite_insert(raw: sqlite3.Connection, table: str, columns: tuple[str, ...],
                  returning: tuple[str, ...], rows: Sequence[Sequence[Any]]
                  ) -> list[tuple[Any, ...]]:  # fmt: skip
    """`INSERT INTO table (columns) VALUES … ON CONFLICT DO NOTHING RETURNING returning` over `rows`
    (one value per column each, as SQLite binds them); what RETURNING gave, statement after
    statement."""
    per_statement = max(1, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns))
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params = [value for row in chunk for value in row]
        sql = _sqlite_sql(table, columns, returning, len(chunk))
        out.extend(raw.execute(sql, params))
    return out


@lru_cache(maxsize=128)  # batch sizes vary; most batches are small
def _sqlite_sql(table: str, columns: tuple[str, ...], returning: tuple[str, ...], n: int) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    return (
        f"INSERT INTO {table} ({names(columns)}) VALUES {', '.join([one] * n)} "
        f"ON CONFLICT DO NOTHING RETURNING {names(returning)}"
    )


def names(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
