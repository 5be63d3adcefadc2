"""Opening the warehouse for a report: migrate, sync what changed, hand back a connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
from sqlalchemy import Engine

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.warehouse import duck
from siyu.warehouse.sync import SyncResult, sync


@dataclass
class Warehouse:
    con: duckdb.DuckDBPyConnection
    brand_id: int
    synced: SyncResult


def open_synced(settings: Settings, *, full: bool = False) -> Warehouse:
    """The brand's warehouse, brought up to date with the operational store first."""
    engine, brand_id = open_brand(settings)
    try:
        con = duck.connect(settings.duckdb_path)
        result = sync(con, engine, brand_id, full=full)
    finally:
        engine.dispose()
    return Warehouse(con, brand_id, result)


# DuckDB lets one process hold the warehouse file; within a server process (the console and
# the API), one request at a time.
_lock = threading.Lock()


@contextmanager
def held(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """The warehouse for one request of a server, under the process's lock; closed after."""
    with _lock:
        con = duck.connect(settings.duckdb_path)
        try:
            yield con
        finally:
            con.close()


@contextmanager
def synced(
    settings: Settings, engine: Engine, brand_id: int
) -> Iterator[duckdb.DuckDBPyConnection]:
    """`held`, brought up to date with the operational store first."""
    with held(settings) as con:
        sync(con, engine, brand_id)
        yield con
