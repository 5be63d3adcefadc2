"""Batch inserts on the database driver itself, for the hot write paths (WeCom callbacks,
integration events), which SQLAlchemy's compilation and per-parameter processing would cost more
than the inserts themselves.

SQLite: multi-row `VALUES`, split so that no statement binds more parameters than the library
allows (`SQLITE_LIMIT_VARIABLE_NUMBER`: 32,766 by default, 999 in old builds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any


def sqlite_insert(raw: sqlite3.Connection, table: str, columns: tuple[str, ...],
                  returning: tuple[str, ...], rows: Sequence[Sequence[Any]]
                  ) -> list[tuple[Any, ...]]:  # fmt: skip
    """`INSERT INTO table (columns) VALUES … ON CONFLICT DO NOTHING RETURNING returning` over `rows`
    (one value per column each, as SQLite binds them); what RETURNING gave, statement after
    statement."""
    out: list[tuple[Any, ...]] = []
    for n, params in _statements(raw, columns, rows):
        out.extend(raw.execute(_sqlite_sql(table, columns, returning, n), params))
    return out


def sqlite_insert_count(raw: sqlite3.Connection, table: str, columns: tuple[str, ...],
                        rows: Sequence[Sequence[Any]]) -> int:  # fmt: skip
    """The same insert without RETURNING: how many of `rows` were inserted. One step per
    statement where RETURNING takes one per row, and CPython's sqlite3 gives the GIL up and
    takes it back around every step: from a worker thread, each of those waits for the event
    loop's thread to let go of it (bench/ingest.py)."""
    inserted = 0
    for n, params in _statements(raw, columns, rows):
        inserted += raw.execute(_sqlite_sql(table, columns, (), n), params).rowcount
    return inserted


def _statements(raw: sqlite3.Connection, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
                ) -> Iterator[tuple[int, list[Any]]]:  # fmt: skip
    """`rows` in statements of as many as SQLite binds: (rows in it, flat parameters)."""
    per_statement = max(1, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        yield len(chunk), [value for row in chunk for value in row]


@lru_cache(maxsize=128)  # batch sizes vary; most batches are small
def _sqlite_sql(table: str, columns: tuple[str, ...], returning: tuple[str, ...], n: int) -> str:
    one = "(" + ", ".join("?" * len(columns)) + ")"
    tail = f" RETURNING {names(returning)}" if returning else ""
    return (
        f"INSERT INTO {table} ({names(columns)}) VALUES {', '.join([one] * n)} "
        f"ON CONFLICT DO NOTHING{tail}"
    )


def names(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)
