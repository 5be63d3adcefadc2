"""Bulk movement of columns between Python (NumPy) and the operational store."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, text


def fetch_int_columns(conn: Connection, sql: str, *, brand_id: int, ncols: int) -> list[np.ndarray]:
    """Run a query (brand as `:b`) returning integer columns, NULL as 0, as int64 arrays."""
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    cur = conn.exec_driver_sql(sql.replace(":b", mark), (brand_id,) * sql.count(":b"))
    chunks: list[np.ndarray] = []
    while rows := cur.fetchmany(500_000):
        block = np.array(rows, dtype=object).reshape(len(rows), ncols)
        block[block == None] = 0  # noqa: E711 - elementwise test on an object array
        chunks.append(block.astype(np.int64))
    if not chunks:
        return [np.zeros(0, dtype=np.int64) for _ in range(ncols)]
    merged = np.concatenate(chunks)
    return [merged[:, i].copy() for i in range(ncols)]


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
    else:
        cur = raw.cursor()
        cur.executemany(
            f"INSERT INTO {name} ({cols}) VALUES ({', '.join('?' for _ in columns)})", rows
        )
        cur.close()
