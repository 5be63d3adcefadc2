"""Opening the warehouse for a report: migrate, sync what changed, hand back a connection."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

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
