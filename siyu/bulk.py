"""Bulk movement of columns between Python (NumPy) and the operational store.

Reads bypass SQLAlchemy's Row objects (NumPy probing a Row for array interfaces costs more
than the query): SQLite rows come from the raw cursor as tuples, PostgreSQL columns arrive by
binary COPY and are decoded by NumPy without a Python loop. Writes go the other way: executemany
on SQLite, binary COPY built by NumPy on PostgreSQL.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, func, select, text
from sqlalchemy.schema import AddConstraint, DropConstraint

_PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_PG_HEADER = _PG_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_PG_TRAILER = b"\xff\xff"


def fetch_int_columns(conn: Connection, sql: str, *, brand_id: int, ncols: int) -> list[np.ndarray]:
    """Run a query (brand as `:b`) returning integer columns, NULL as 0, as int64 arrays."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        return _pg_fetch(raw, sql.replace(":b", str(int(brand_id))), ncols)
    cur = raw.cursor()
    try:
        cur.execute(sql.replace(":b", "?"), (brand_id,) * sql.count(":b"))
        chunks: list[np.ndarray] = []
        while rows := cur.fetchmany(1_000_000):
            chunks.append(_int_block(rows, ncols))
    finally:
        cur.close()
    if not chunks:
        return [np.zeros(0, dtype=np.int64) for _ in range(ncols)]
    merged = np.concatenate(chunks)
    return [np.ascontiguousarray(merged[:, i]) for i in range(ncols)]


def _int_block(rows: list[Any], ncols: int) -> np.ndarray:
    try:
        flat = np.fromiter(
            itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * ncols
        )
    except TypeError:  # a NULL somewhere: the slow, careful way
        block = np.array(rows, dtype=object).reshape(len(rows), ncols)
        block[block == None] = 0  # noqa: E711 - elementwise test on an object array
        return block.astype(np.int64)
    return flat.reshape(len(rows), ncols)


def _pg_fetch(raw: Any, sql: str, ncols: int) -> list[np.ndarray]:
    names = [f"c{i}" for i in range(ncols)]
    cols = ", ".join(f"coalesce(q.{n}, 0)::bigint" for n in names)
    query = f"SELECT {cols} FROM ({sql}) AS q({', '.join(names)})"
    buf = bytearray()
    with raw.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        for chunk in copy:
            buf += chunk
    if not buf.startswith(_PG_SIGNATURE):
        raise RuntimeError("unexpected COPY BINARY header")
    ext = int.from_bytes(buf[15:19], "big")
    body = memoryview(buf)[19 + ext : len(buf) - 2]
    dtype = np.dtype(
        [("n", ">i2")] + [f for i in range(ncols) for f in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))]
    )
    if len(body) % dtype.itemsize:
        raise RuntimeError("COPY BINARY rows are not fixed-width bigint columns")
    rec = np.frombuffer(body, dtype=dtype)
    if len(rec) and (
        (rec["n"] != ncols).any() or any((rec[f"l{i}"] != 8).any() for i in range(ncols))
    ):
        raise RuntimeError("COPY BINARY rows are not fixed-width bigint columns")
    return [rec[f"v{i}"].astype(np.int64) for i in range(ncols)]


def _pg_binary(arrays: Sequence[np.ndarray]) -> bytes:
    """A COPY BINARY payload of bigint columns (no NULLs)."""
    n = len(arrays[0]) if arrays else 0
    dtype = np.dtype(
        [("n", ">i2")]
        + [f for i in range(len(arrays)) for f in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))]
    )
    rec = np.empty(n, dtype=dtype)
    rec["n"] = len(arrays)
    for i, a in enumerate(arrays):
        rec[f"l{i}"] = 8
        rec[f"v{i}"] = a
    return _PG_HEADER + rec.tobytes() + _PG_TRAILER


def int_table(
    conn: Connection,
    name: str,
    columns: Sequence[str],
    arrays: Sequence[np.ndarray],
    *,
    keyed: bool = True,
) -> None:
    """Create (or replace) a temporary table of BIGINT columns filled from NumPy arrays.

    keyed: the first column is unique and becomes the primary key. On SQLite the table is
    then WITHOUT ROWID, one b-tree in key order instead of a table and its key index: a sixth
    less to fill. (Declaring the key the rowid fills faster still, but SQLite then plans
    `UPDATE … FROM` as a scan of the whole target table with a seek into this one: the likely
    reason a 10M-record identity run was slower with it.)
    """
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    ddl = ", ".join(f"{c} BIGINT" for c in columns)
    if keyed:
        ddl += f", PRIMARY KEY ({columns[0]})"
    clustered = keyed and conn.dialect.name == "sqlite"
    conn.execute(
        text(f"CREATE TEMPORARY TABLE {name} ({ddl}){' WITHOUT ROWID' if clustered else ''}")
    )
    if len(arrays) == 0 or len(arrays[0]) == 0:
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cols = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        payload = _pg_binary([np.asarray(a, dtype=np.int64) for a in arrays])
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT binary)") as copy,  # type: ignore[attr-defined]
        ):
            copy.write(payload)
        conn.execute(text(f"ANALYZE {name}"))
    else:
        if keyed:  # inserting in key order keeps the primary-key b-tree append-only
            order = np.argsort(arrays[0], kind="stable")
            arrays = [np.asarray(a)[order] for a in arrays]
        cur = raw.cursor()
        marks = ", ".join("?" for _ in columns)
        cur.executemany(
            f"INSERT INTO {name} ({cols}) VALUES ({marks})",
            zip(*(np.asarray(a, dtype=np.int64).tolist() for a in arrays), strict=True),
        )
        cur.close()


def temp_table(
    conn: Connection,
    name: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[Any]],
    *,
    keyed: bool = True,
) -> None:
    """Create (or replace) a temporary table and fill it in bulk (COPY on PostgreSQL).

    keyed: the first column is unique and becomes the primary key, so correlated lookups into
    the table are index seeks rather than scans (quadratic otherwise).
    """
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    ddl = ", ".join(f"{c} {t}" for c, t in columns)
    if keyed:
        ddl += f", PRIMARY KEY ({columns[0][0]})"
    conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({ddl})"))
    if len(rows) == 0:
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cols = ", ".join(c for c, _ in columns)
    if conn.dialect.name == "postgresql":
        buf = io.StringIO()
        for row in rows:
            buf.write("\t".join("\\N" if v is None else str(v) for v in row))
            buf.write("\n")
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            copy.write(buf.getvalue())
        conn.execute(text(f"ANALYZE {name}"))
    else:
        cur = raw.cursor()
        cur.executemany(
            f"INSERT INTO {name} ({cols}) VALUES ({', '.join('?' for _ in columns)})", rows
        )
        cur.close()


BIG_LOAD = 50_000  # rows; below this, keeping indexes is cheaper than rebuilding them


@contextmanager
def bulk_load(
    conn: Connection, target: Table, incoming: int, *, updating: Sequence[str] | None = None
) -> Iterator[None]:
    """Around a write of at least half the table's rows (a first load, a first identity pass):
    drop its secondary (non-unique) indexes and, on
    PostgreSQL, its foreign keys, and restore them afterwards.

    Rebuilding an index is a sort instead of a b-tree insert per row; re-adding a foreign key
    checks every row with one join instead of a trigger call per row (which more than doubled
    COPY time). Unique constraints stay: they are what keeps the natural key honest.

    updating: the write is an UPDATE of these columns. SQLite rewrites only the indexes that
    hold one of them, so only those are dropped (rebuilding the others was a sort of every row
    for nothing: ~25 s of a 10M-record identity pass); PostgreSQL writes a new entry into every
    index for an updated row, so there all of them go.
    """
    indexes = [ix for ix in target.indexes if not ix.unique]
    if updating is not None and conn.dialect.name == "sqlite":
        indexes = [ix for ix in indexes if any(c.name in updating for c in ix.columns)]
    fks = (
        [fk for fk in target.foreign_key_constraints if fk.name]
        if conn.dialect.name == "postgresql"
        else []
    )
    if incoming < BIG_LOAD or not (indexes or fks):
        yield
        return
    held = conn.execute(select(func.count()).select_from(target)).scalar_one()
    if incoming * 2 < held:
        yield
        return
    for ix in indexes:
        ix.drop(conn)
    for fk in fks:
        conn.execute(DropConstraint(fk))
    yield
    for ix in indexes:
        ix.create(conn)
    for fk in fks:
        conn.execute(AddConstraint(fk))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'ANALYZE "{target.name}"')
