"""Moving validated rows from DuckDB into the operational store, in bulk, and upserting them.

Three steps keep a big import cheap:

1. Unchanged rows never leave DuckDB. A target with a `row_hash` column (siyu.db.RowHashed)
   stores a 63-bit hash of every imported value; rows whose hash the store already holds for the
   brand are dropped in DuckDB (an anti-join against the stored hashes, fetched as one NumPy
   array), so re-importing unchanged data costs a read, a validation and one integer column.
2. A first load (the brand has no rows in the target) goes straight into the target: no staging
   table, no UPDATE, no NOT EXISTS; when it brings more rows than the table holds, the target's
   secondary indexes are dropped and rebuilt after the load (a sort beats a million b-tree
   inserts).
3. Otherwise rows go to a temporary staging table (executemany on SQLite, COPY on PostgreSQL),
   then set-based statements apply them by natural key: UPDATE … FROM for rows that differ,
   INSERT … SELECT for new keys. Their row counts are the import summary's updated and inserted
   figures. A hash that differs while the values do not (a row stored before hashing, or
   touched by another writer) is refreshed without counting as an update or moving changed_at.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.types import TypeEngine

from siyu.bulk import bulk_load, fetch_int_columns
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


HASH = "row_hash"


def hash_expr(exprs: Sequence[str]) -> str:
    """A 63-bit hash of the values (DuckDB's `hash`, ~5× cheaper than md5 over a text form).

    Only equality within one store matters: if a DuckDB upgrade changed the function, every
    row would look changed once, be compared value by value, and get its new hash stored.
    """
    return f"(hash('v1', {', '.join(f'({e})' for e in exprs)}) & 9223372036854775807)::BIGINT"


def hashed(cols: Sequence[StageCol], extra: Sequence[str] = ()) -> StageCol:
    """The row_hash staged column over the other staged columns (and `extra` expressions)."""
    return integer(HASH, hash_expr([c.expr for c in cols] + list(extra)))


def _duck_value(c: StageCol, dialect: str) -> str:
    if isinstance(c.type, UTCDateTime):
        suffix = "" if dialect == "sqlite" else " || '+00'"
        return f"strftime({c.expr}, '{TS_FORMAT}'){suffix}"
    if isinstance(c.type, Date):
        return f"strftime({c.expr}, '%Y-%m-%d')"
    return c.expr


def _duck_select(
    cols: Sequence[StageCol], source: str, dialect: str, order_by: Sequence[str] = ()
) -> str:
    parts = ", ".join(_duck_value(c, dialect) for c in cols)
    order = f" ORDER BY {', '.join(order_by)}" if order_by else ""
    return f"SELECT {parts} FROM {source}{order}"


def _sql_literal(value: Any, dialect: str) -> str:
    """A constant as a DuckDB literal in the form the store's driver would bind it."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC).strftime(TS_FORMAT)
        return f"'{stamp}'" if dialect == "sqlite" else f"'{stamp}+00'"
    if isinstance(value, bool | int | float):
        return repr(int(value) if isinstance(value, bool) else value)
    return "'" + str(value).replace("'", "''") + "'"


def pending(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    source: str,
    hash_col: StageCol,
    stored_sql: str,
    brand_id: int,
) -> str:
    """DuckDB table of the rows of `source` whose hash the store does not hold (new or changed).

    stored_sql selects the stored row_hash of the brand's rows (brand as `:b`).
    """
    (stored,) = fetch_int_columns(conn, stored_sql, brand_id=brand_id, ncols=1)
    out = f"{source}_todo"
    duck.execute(
        f"CREATE OR REPLACE TABLE {out} AS SELECT *, {hash_col.expr} AS {HASH} FROM {source}"
    )
    if len(stored):
        stored_hashes = {"h": stored}  # scanned by DuckDB in place  # noqa: F841
        duck.register("siyu_stored_hashes", stored_hashes)
        try:
            duck.execute(f"DELETE FROM {out} WHERE {HASH} IN (SELECT h FROM siyu_stored_hashes)")
        finally:
            duck.unregister("siyu_stored_hashes")
    return out


def count(duck: duckdb.DuckDBPyConnection, table: str) -> int:
    row = duck.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def brand_has_rows(conn: Connection, from_where: str, brand_id: int) -> bool:
    """Whether `FROM … WHERE …` (brand as `:b`) holds any row."""
    return (
        conn.execute(sql_text(f"SELECT 1 {from_where} LIMIT 1"), {"b": brand_id}).first()
        is not None
    )


def insert_direct(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    target: Table,
    cols: Sequence[StageCol],
    source: str,
    *,
    constants: dict[str, Any],
    order_by: Sequence[str] = (),
) -> int:
    """Insert every row of `source` into `target` (new keys only, checked by the caller)."""
    dialect = conn.dialect.name
    n = count(duck, source)
    if n == 0:
        return 0
    consts = [
        StageCol(k, String(), _sql_literal(v, dialect))  # already in the driver's form
        for k, v in constants.items()
    ]
    every = [*cols, *consts]
    query = _duck_select(every, source, dialect, order_by)
    names = ", ".join(f'"{c.name}"' for c in every)
    with bulk_load(conn, target, n):
        _copy_in(duck, conn, f'"{target.name}"', names, len(every), query)
    return n


def _copy_in(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    table: str,
    names: str,
    ncols: int,
    query: str,
) -> None:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "stage.csv"
            duck.execute(f"COPY ({query}) TO '{path}' (FORMAT csv, HEADER false)")
            with (
                raw.cursor() as cur,
                cur.copy(  # type: ignore[attr-defined]
                    f"COPY {table} ({names}) FROM STDIN (FORMAT csv)"
                ) as copy,
                path.open("rb") as f,
            ):
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
    else:
        marks = ", ".join("?" for _ in range(ncols))
        result = duck.execute(query)
        cur = raw.cursor()
        while batch := result.fetchmany(100_000):
            cur.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", batch)
        cur.close()


def stage(
    duck: duckdb.DuckDBPyConnection,
    conn: Connection,
    name: str,
    cols: Sequence[StageCol],
    source: str,
    order_by: Sequence[str] = (),
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
    query = _duck_select(cols, source, conn.dialect.name, order_by)
    names = ", ".join(f'"{c.name}"' for c in cols)
    _copy_in(duck, conn, name, names, len(cols), query)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {name}")
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
    fresh: bool = False,
    carried: Sequence[str] = (),
) -> tuple[int, int]:
    """Apply staged rows to target by natural key; returns (inserted, updated).

    `constants` (e.g. brand_id) scope the key and fill inserted rows; `on_update` adds values
    set only when a row really changed (e.g. updated_at); `update_when` narrows updates further
    (first-touch referrals update only to an earlier touch). A target with `changed_at`
    (siyu.db.Tracked) gets `now` there on insert and on every real update. `fresh`: the caller
    knows no staged key is stored yet (the brand has no rows): a plain INSERT … SELECT.
    `carried` columns are written with a row but never compared: a sealed value differs on
    every import (fresh nonce), its hash beside it says whether the value changed.
    """
    if "changed_at" in target.c:
        on_update = {**(on_update or {}), "changed_at": now}
    if fresh:
        fill = {**constants, **(on_update or {})}
        select_cols = [staged.c[c] for c in columns] + [
            literal(v, target.c[k].type).label(k) for k, v in fill.items()
        ]
        stmt = insert(target).from_select([*columns, *fill.keys()], select(*select_cols))
        n = conn.execute(select(func.count()).select_from(staged)).scalar_one()
        with bulk_load(conn, target, n):
            return conn.execute(stmt.execution_options(preserve_rowcount=True)).rowcount, 0
    # Index the staged key: the UPDATE … FROM and NOT EXISTS below seek by it for every row.
    conn.exec_driver_sql(f"CREATE INDEX ix_{staged.name}_key ON {staged.name} ({', '.join(key)})")
    scope = [
        target.c[k] == literal(v, target.c[k].type) for k, v in constants.items() if k == "brand_id"
    ]
    match = and_(*scope, *(target.c[k] == staged.c[k] for k in key))
    updated = 0
    changing = [c for c in columns if c not in key and c != HASH and c not in carried]
    if changing:
        differs = or_(*(target.c[c].is_distinct_from(staged.c[c]) for c in changing))
        cond = and_(match, differs) if update_when is None else and_(match, differs, update_when)
        values: dict[str, Any] = {c: staged.c[c] for c in [*changing, *carried]}
        if HASH in columns:
            values[HASH] = staged.c[HASH]
        values.update(on_update or {})
        updated = conn.execute(update(target).where(cond).values(values)).rowcount
    if HASH in columns:
        # Same values, different hash (stored before hashing, or touched by another writer):
        # remember the hash so the next import skips the row; not an update, changed_at stays.
        keep: dict[str, Any] = {HASH: staged.c[HASH]}
        if "changed_at" in target.c:  # Tracked's onupdate would move it otherwise
            keep["changed_at"] = target.c.changed_at
        conn.execute(
            update(target)
            .where(and_(match, target.c[HASH].is_distinct_from(staged.c[HASH])))
            .values(keep)
        )
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
