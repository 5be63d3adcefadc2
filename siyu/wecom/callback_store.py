"""Storing accepted callback deliveries in batches, on the database driver itself.

A batch is the deliveries the callback writer found waiting (siyu.wecom.inbox.CallbackWriter):
their nonces first, then the events of the deliveries whose nonce was new. Both inserts are
`ON CONFLICT DO NOTHING … RETURNING`, so a replayed (timestamp, nonce) and a second delivery of
an event already stored (same `event_key`) insert nothing and are told apart by what came back.

The statements bypass SQLAlchemy's compilation and result processing, which cost more than the
inserts themselves at a thousand callbacks a second (bench/wecom_callbacks.py):
- PostgreSQL: one fixed statement per table whatever the batch size, with one array parameter per
  column (`unnest`), sent in psycopg's binary format — psycopg prepares it after a few uses.
- SQLite: multi-row `VALUES`, split so no statement binds more parameters than the library allows
  (siyu.raw_insert, shared with the event ingest).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from siyu.db import sqlite_ts
from siyu.raw_insert import names, sqlite_insert

NONCE_TABLE = "wecom_callback_nonce"
EVENT_TABLE = "wecom_callback_event"
NONCE_COLUMNS = ("timestamp", "nonce", "received_at")
EVENT_COLUMNS = (
    "brand_id", "event_key", "corp_id", "event", "change_type", "user_id", "external_userid",
    "chat_id", "create_time", "xml", "received_at", "status", "attempts",
)  # fmt: skip
_PG_TYPES = {
    "timestamp": "varchar", "nonce": "varchar", "received_at": "timestamptz",
    "brand_id": "bigint", "event_key": "varchar", "corp_id": "varchar", "event": "varchar",
    "change_type": "varchar", "user_id": "varchar", "external_userid": "varchar",
    "chat_id": "varchar", "create_time": "timestamptz", "xml": "text", "status": "varchar",
    "attempts": "integer",
}  # fmt: skip
_TIMESTAMPS = frozenset({"received_at", "create_time"})
NONCE_KEY = ("timestamp", "nonce")
EVENT_RETURNING = ("brand_id", "event_key", "id")

Outcome = tuple[bool, int | None]  # (replayed, event id or None when the event was a duplicate)


def store_batch(conn: Connection, batch: Sequence[tuple[dict[str, Any], dict[str, Any]]]
                ) -> list[Outcome]:  # fmt: skip
    """Store (nonce row, event row) pairs in `conn`'s transaction; one outcome per pair.

    Within a batch the first delivery of a (timestamp, nonce) is the one that counts (a later
    one is a replay, as it would be one batch later), and the first delivery of an event gets
    its id (a later one is a duplicate).
    """
    raw = conn.connection.driver_connection
    insert = _pg_insert if conn.dialect.name == "postgresql" else _sqlite_insert
    fresh = set(insert(raw, NONCE_TABLE, NONCE_COLUMNS, NONCE_KEY, [n for n, _ in batch]))
    todo: list[int] = []
    for i, (nonce_row, _) in enumerate(batch):
        key = (nonce_row["timestamp"], nonce_row["nonce"])
        if key in fresh:
            fresh.discard(key)
            todo.append(i)
    ids: dict[tuple[int, str], int] = {}
    if todo:
        rows = [batch[i][1] for i in todo]
        for brand_id, event_key, event_id in insert(
            raw, EVENT_TABLE, EVENT_COLUMNS, EVENT_RETURNING, rows
        ):
            ids[(brand_id, event_key)] = event_id
    outcomes: list[Outcome] = [(True, None)] * len(batch)
    for i in todo:
        event = batch[i][1]
        outcomes[i] = (False, ids.pop((event["brand_id"], event["event_key"]), None))
    return outcomes


def _pg_insert(raw: Any, table: str, columns: tuple[str, ...], returning: tuple[str, ...],
               rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:  # fmt: skip
    sql = _PG_SQL.get(table)
    if sql is None:
        arrays = ", ".join(f"%b::{_PG_TYPES[c]}[]" for c in columns)
        sql = _PG_SQL[table] = (
            f"INSERT INTO {table} ({names(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT DO NOTHING RETURNING {names(returning)}"
        )
    with raw.cursor() as cur:
        cur.execute(sql, [[row[c] for row in rows] for c in columns])
        return cur.fetchall()


_PG_SQL: dict[str, str] = {}


def _sqlite_insert(raw: sqlite3.Connection, table: str, columns: tuple[str, ...],
                   returning: tuple[str, ...], rows: list[dict[str, Any]]
                   ) -> list[tuple[Any, ...]]:  # fmt: skip
    values = [[sqlite_ts(row[c]) if c in _TIMESTAMPS else row[c] for c in columns] for row in rows]
    return sqlite_insert(raw, table, columns, returning, values)
