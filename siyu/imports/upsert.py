"""Moving validated rows from DuckDB into the operational store, in bulk, and upserting them.

Rows go to a temporary staging table (executemany on SQLite, COPY on PostgreSQL), then two
set-based statements apply them by natural key: UPDATE … FROM for rows that differ, INSERT …
SELECT for new keys. Their row counts are the import summary's updated and inserted figures.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Float,
    MetaData,
    String,
    Table,
    and_,
    exists,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.types import TypeEngine

from siyu.db import UTCDateTime

TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DATETIME storage format


@dataclass(frozen=True)
class StageCol:
    name: str
    type: TypeEngine[Any]
    expr: str  # DuckDB expression over the validated table


def text(name: str, expr: str | None = None) -> StageCol:
    return StageCol(name, String(), expr or f'"{name}"')


def integer(name: str, expr: str | None = None) -> StageCol:
    return StageCol(name, BigInteger(), expr or f'"{name}"')


def number(name: str, expr: str | None = None) -> StageCol:
    return StageCol(name, Float(), expr or f'"{name}"')


def day(name: str, expr: str | None = None) -> StageCol:
    return StageCol(name, Date(), expr or f'"{name}"')


def timestamp(name: str, expr: str | None = None) -> StageCol:
    return StageCol(name, UTCDateTime(), expr or f'"{name}"')


def _duck_select(cols: Sequence[StageCol], source: str, dialect: str) -> str:
    parts = []
    for c in cols:
        if isinstance(c.type, UTCDateTime):
            suffix = "" if dialect == "sqlite" else " || '+00'"
            parts.append(f"strftime({c.expr}, '{TS_FORMAT}'){suffix}")
        elif isinstance(c.type, Date):
            parts.append(f"strftime({c.expr}, '%Y-%m-%d')")
        else:
            parts.append(c.expr)
    return f"SELECT {', '.join(parts)} FROM {source}"


def stage(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    name: str,
    cols: Sequence[StageCol],
    source: str,
) -> Table:
    """Create temp table `name` in the operational store holding `source`'s rows."""
    meta = MetaData()
    table = Table(
        name,
        meta,
        *(Column(c.name, c.type) for c in cols),
        prefixes=["TEMPORARY"],
    )
    table.drop(conn, checkfirst=True)
    table.create(conn)
    dialect = conn.dialect.name
    query = _duck_select(cols, source, dialect)
    names = ", ".join(f'"{c.name}"' for c in cols)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if dialect == "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stage.csv"
            duck.execute(f"COPY ({query}) TO '{path}' (FORMAT csv, HEADER false)")
            with (
                raw.cursor() as cur,
                cur.copy(  # type: ignore[attr-defined]
                    f"COPY {name} ({names}) FROM STDIN (FORMAT csv)"
                ) as copy,
                path.open("rb") as f,
            ):
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
    else:
        marks = ", ".join("?" for _ in cols)
        result = duck.execute(query)
        cur = raw.cursor()
        while batch := result.fetchmany(100_000):
            cur.executemany(f"INSERT INTO {name} ({names}) VALUES ({marks})", batch)
        cur.close()
    return table


def upsert(
    conn: Connection,
    target: Table,
    staged: Table,
    *,
    key: Sequence[str],
    columns: Sequence[str],
    constants: dict[str, Any],
    now: datetime,
    on_update: dict[str, Any] | None = None,
    update_when: Any = None,
) -> tuple[int, int]:
    """Apply staged rows to target by natural key; returns (inserted, updated).

    `constants` (e.g. brand_id) scope the key and fill inserted rows; `on_update` adds values
    set only when a row really changed (e.g. updated_at); `update_when` narrows updates further
    (first-touch referrals update only to an earlier touch). A target with `changed_at`
    (siyu.db.Tracked) gets `now` there on insert and on every real update.
    """
    if "changed_at" in target.c:
        on_update = {**(on_update or {}), "changed_at": now}
    # Index the staged key: the UPDATE … FROM and NOT EXISTS below seek by it for every row.
    conn.exec_driver_sql(f"CREATE INDEX ix_{staged.name}_key ON {staged.name} ({', '.join(key)})")
    scope = [
        target.c[k] == literal(v, target.c[k].type) for k, v in constants.items() if k == "brand_id"
    ]
    match = and_(*scope, *(target.c[k] == staged.c[k] for k in key))
    updated = 0
    changing = [c for c in columns if c not in key]
    if changing:
        differs = or_(*(target.c[c].is_distinct_from(staged.c[c]) for c in changing))
        cond = and_(match, differs) if update_when is None else and_(match, differs, update_when)
        values: dict[str, Any] = {c: staged.c[c] for c in changing}
        values.update(on_update or {})
        updated = conn.execute(update(target).where(cond).values(values)).rowcount
    fill = {**constants, **(on_update or {})}
    select_cols = [staged.c[c] for c in columns] + [
        literal(v, target.c[k].type).label(k) for k, v in fill.items()
    ]
    new_rows = select(*select_cols).where(
        ~exists(select(literal(1)).select_from(target).where(match))
    )
    stmt = insert(target).from_select([*columns, *fill.keys()], new_rows)
    # SQLAlchemy guarantees rowcount only for UPDATE/DELETE unless asked to keep it.
    inserted = conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
    return inserted, updated
