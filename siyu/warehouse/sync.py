"""Incremental sync from the operational store (SQLite or PostgreSQL) into DuckDB.

The first sync copies everything; later ones copy only rows whose change stamp moved since the
previous sync began, less an overlap (default one hour) that catches transactions which were
still open when that sync read. Rows are replaced by key, so reading a row twice is harmless.
Reference tables (stores, staff, channels…) are small and copied whole each time.

Every fact that names a customer by identifier gets its customer id here, from the synced
identifiers; when identity resolution moves an identifier to another customer (a merge or an
unmerge), the facts carrying it are re-keyed in the same sync. Deleted operational rows are
only dropped by a full sync (`siyu warehouse sync --full`), except where a mirror has a change
feed of removals (`Mirror.removed`: customer tags, from their history; identifiers an erasure
deleted, from erased_identifier).

Each sync also notes which mirrors it really changed (`_mirror_changes`: a re-read row identical
to the stored one changes nothing), so something derived from the warehouse — the daily
attribute snapshot — can tell whether its sources have moved since it was computed.

Everything runs in one DuckDB transaction: a failed sync leaves the previous copy intact.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np

try:
    from duckdb.sqltypes import VARCHAR
except ImportError:  # DuckDB before 1.4
    from duckdb.typing import VARCHAR  # type: ignore[no-redef]
from sqlalchemy import Engine, text

from siyu import pii
from siyu.warehouse import order_summary
from siyu.warehouse.mirrors import MIRRORS, Mirror

BATCH = 200_000
TS_FMT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass
class SyncResult:
    full: bool
    rows: dict[str, int] = field(default_factory=dict)  # rows copied per mirror
    rekeyed: int = 0  # facts moved to another customer by identity changes
    changed: set[str] = field(default_factory=set)  # mirrors whose content changed
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def schema_version() -> str:
    """A fingerprint of the mirror definitions: a change forces a full rebuild."""
    spec = repr([(m.name, m.cols, m.refs, m.key) for m in MIRRORS])
    return hashlib.sha1(spec.encode()).hexdigest()[:12]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the warehouse tables; True when they were (re)built empty."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS _sync_state (mirror VARCHAR, brand_id BIGINT, "
        "read_from TIMESTAMPTZ, synced_at TIMESTAMPTZ, PRIMARY KEY (mirror, brand_id))"
    )
    con.execute("CREATE TABLE IF NOT EXISTS _meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(
        "CREATE TABLE IF NOT EXISTS _mirror_changes (mirror VARCHAR, brand_id BIGINT, "
        "changed_at TIMESTAMPTZ, PRIMARY KEY (mirror, brand_id))"
    )
    row = con.execute("SELECT value FROM _meta WHERE key = 'schema'").fetchone()
    version = schema_version()
    if row and row[0] == version:
        return False
    for m in MIRRORS:
        con.execute(f"DROP TABLE IF EXISTS {m.name}")
        cols = [f"{c.name} {c.type}" for c in m.cols] + [f"{r.customer} BIGINT" for r in m.refs]
        con.execute(f"CREATE TABLE {m.name} ({', '.join(cols)})")
    con.execute("DELETE FROM _sync_state")
    con.execute("INSERT OR REPLACE INTO _meta VALUES ('schema', ?)", [version])
    return True


def install_pii_open(con: duckdb.DuckDBPyConnection, engine: Engine) -> None:
    """`siyu_pii_open(sealed)` on this connection: the clear value, with the store's key."""
    ring = pii.keyring(engine)
    try:
        con.remove_function("siyu_pii_open")
    except (duckdb.InvalidInputException, duckdb.CatalogException):
        pass
    con.create_function("siyu_pii_open", ring.open_, [VARCHAR], VARCHAR)


def _select(m: Mirror, dialect: str, brand_id: int, since: datetime | None) -> tuple[str, dict]:
    exprs = []
    for c in m.cols:
        src = c.src
        if dialect == "postgresql" and c.type == "TIMESTAMPTZ":
            src = f"to_char({src} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        elif dialect == "postgresql" and c.type == "DATE":
            src = f"to_char({src}, 'YYYY-MM-DD')"
        exprs.append(src)
    where, params = [], {}
    if m.brand_scoped:
        where.append("brand_id = :brand_id")
        params["brand_id"] = brand_id
    if since is not None and m.stamp:
        where.append(f"{m.stamp} >= :since")
        params["since"] = since.strftime(TS_FMT) if dialect == "sqlite" else since
    sql = f"SELECT {', '.join(exprs)} FROM {m.table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params


def _column(values: tuple[Any, ...], type_: str) -> np.ndarray:
    if type_ == "DOUBLE":
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


def _load_batch(
    con: duckdb.DuckDBPyConnection, m: Mirror, rows: list[tuple[Any, ...]], first: bool
) -> None:
    """Append fetched rows to the `_batch` temp table, typed as the mirror says."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in m.cols]
    frame = {f"c{i}": _column(v, c.type) for i, (v, c) in enumerate(zip(cols, m.cols, strict=True))}
    casts = []
    for i, c in enumerate(m.cols):
        expr = f"c{i}"
        if c.type == "DOUBLE":
            expr = f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"
        casts.append(f"CAST({expr} AS {c.type}) AS {c.name}")
    con.register("_frame", frame)
    try:
        select = f"SELECT {', '.join(casts)} FROM _frame"
        if first:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _batch AS {select}")
        else:
            con.execute(f"INSERT INTO _batch {select}")
    finally:
        con.unregister("_frame")


def _copy(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    m: Mirror,
    brand_id: int,
    since: datetime | None,
) -> int:
    """Read the mirror's (changed) rows from the operational store into `_batch`."""
    sql, params = _select(m, engine.dialect.name, brand_id, since)
    n, first = 0, True
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(text(sql), params)
        while True:
            rows = result.fetchmany(BATCH)
            if not rows and not first:
                break
            _load_batch(con, m, [tuple(r) for r in rows], first)
            first = False
            n += len(rows)
            if not rows:
                break
    return n


def _drop_removed(
    con: duckdb.DuckDBPyConnection, engine: Engine, m: Mirror, brand_id: int, since: datetime
) -> None:
    """Delete the rows the mirror's change feed says were removed upstream since `since`."""
    assert m.removed is not None
    ts = since.strftime(TS_FMT) if engine.dialect.name == "sqlite" else since
    with engine.connect() as conn:
        keys = conn.execute(text(m.removed), {"brand_id": brand_id, "since": ts}).all()
    if not keys:
        return
    frame = {k: np.array([r[i] for r in keys], dtype=np.int64) for i, k in enumerate(m.key)}
    con.register("_removed", frame)
    try:
        match = " AND ".join(f"{m.name}.{k} = r.{k}" for k in m.key)
        con.execute(f"DELETE FROM {m.name} USING _removed r WHERE {match}")
    finally:
        con.unregister("_removed")


def _resolve_select(m: Mirror, brand_id: int) -> str:
    """The batch's rows with each customer reference resolved through identifiers."""
    cols = [f"b.{c.name}" for c in m.cols]
    joins = []
    for i, r in enumerate(m.refs):
        type_expr = r.id_type if r.id_type.startswith("'") else f"b.{r.id_type}"
        joins.append(
            f"LEFT JOIN identifiers i{i} ON i{i}.brand_id = {int(brand_id)} "
            f"AND i{i}.id_type = {type_expr} AND i{i}.value = b.{r.id_value}"
        )
        cols.append(f"i{i}.customer_id AS {r.customer}")
    return f"SELECT {', '.join(cols)} FROM _batch b {' '.join(joins)}"


def _differs(con: duckdb.DuckDBPyConnection, m: Mirror, brand_id: int, whole: bool) -> bool:
    """Whether applying the batch changes the mirror: a row that is new or not identical to the
    stored one, or (for a whole copy) a stored row the batch no longer has."""
    cols = ", ".join(m.columns)
    batch = f"SELECT {cols} FROM ({_resolve_select(m, brand_id)})"
    scope = f"brand_id = {int(brand_id)}" if m.brand_scoped else "true"
    if whole:
        held = f"SELECT {cols} FROM {m.name} WHERE {scope}"
        sql = f"SELECT EXISTS ({batch} EXCEPT {held}) OR EXISTS ({held} EXCEPT {batch})"
    else:
        match = " AND ".join(f"b.{k} = {m.name}.{k}" for k in m.key)
        held = (
            f"SELECT {cols} FROM {m.name} WHERE {scope} "
            f"AND EXISTS (SELECT 1 FROM _batch b WHERE {match})"
        )
        sql = f"SELECT EXISTS ({batch} EXCEPT {held})"
    row = con.execute(sql).fetchone()
    return bool(row and row[0])


def _apply(con: duckdb.DuckDBPyConnection, m: Mirror, brand_id: int, whole: bool) -> None:
    if whole:
        scope = f" WHERE brand_id = {int(brand_id)}" if m.brand_scoped else ""
        con.execute(f"DELETE FROM {m.name}{scope}")
    else:
        match = " AND ".join(f"{m.name}.{k} = b.{k}" for k in m.key)
        con.execute(f"DELETE FROM {m.name} USING _batch b WHERE {match}")
    # Facts are laid out in time order (a whole copy sorted, later batches appended), so the
    # zone maps let a trailing window ("orders in the last 90 days") skip the older row groups.
    order = " ORDER BY b.created_at" if "created_at" in m.columns else ""
    con.execute(
        f"INSERT INTO {m.name} ({', '.join(m.columns)}) {_resolve_select(m, brand_id)}{order}"
    )


def _owners_of_batch(brand_id: int) -> str:
    """The customers owning the orders of the batch in the mirror (as it stands when run)."""
    return (
        "SELECT customer_id FROM orders "
        f"WHERE brand_id = {int(brand_id)} AND id IN (SELECT id FROM _batch)"
    )


def _rekey(con: duckdb.DuckDBPyConnection, brand_id: int) -> dict[str, int]:
    """Facts whose identifier now resolves elsewhere follow it (merges and unmerges); the
    number moved per mirror."""
    moved: dict[str, int] = {}
    for m in MIRRORS:
        for r in m.refs:
            type_expr = r.id_type if r.id_type.startswith("'") else f"{m.name}.{r.id_type}"
            res = con.execute(
                f"UPDATE {m.name} SET {r.customer} = c.customer_id FROM _changed_identifiers c "
                f"WHERE c.id_type = {type_expr} AND c.value = {m.name}.{r.id_value} "
                f"AND {m.name}.brand_id = {int(brand_id)} "
                f"AND {m.name}.{r.customer} IS DISTINCT FROM c.customer_id"
            ).fetchone()
            moved[m.name] = moved.get(m.name, 0) + (int(res[0]) if res else 0)
    return moved


def changed_at(
    con: duckdb.DuckDBPyConnection, brand_id: int, mirrors: tuple[str, ...]
) -> int | None:
    """When a sync last changed any of `mirrors` for the brand, in microseconds since the epoch
    (None: never recorded)."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_mirror_changes'"
    ).fetchone()
    if not row or not row[0]:
        return None
    row = con.execute(
        "SELECT epoch_us(max(changed_at)) FROM _mirror_changes WHERE brand_id = ? AND list_contains(?, mirror)",
        [brand_id, list(mirrors)],
    ).fetchone()
    return row[0] if row else None


def sync(
    con: duckdb.DuckDBPyConnection,
    engine: Engine,
    brand_id: int,
    *,
    full: bool = False,
    overlap: timedelta = timedelta(hours=1),
) -> SyncResult:
    """Bring the warehouse up to date with the operational store for one brand.

    The warehouse copies personal data as stored — hashed and sealed (siyu.pii) — and this
    connection gets `siyu_pii_open(sealed)` to open it where a preview or an export shows it.
    """
    started = time.perf_counter()
    now = datetime.now(UTC)
    install_pii_open(con, engine)
    con.execute("BEGIN TRANSACTION")
    try:
        rebuilt = ensure_schema(con)
        order_summary.ensure(con, reset=rebuilt)
        order_summary.start_marking(con)
        summary_whole = True
        state = dict(
            con.execute(
                "SELECT mirror, strftime(read_from, '%Y-%m-%d %H:%M:%S.%f') FROM _sync_state "
                "WHERE brand_id = ?",
                [brand_id],
            ).fetchall()
        )
        whole_run = full or rebuilt or not state
        result = SyncResult(full=whole_run)
        for m in MIRRORS:
            last = state.get(m.name)
            whole = whole_run or m.stamp is None or last is None
            since = None if whole else datetime.strptime(last, TS_FMT).replace(tzinfo=UTC)
            if since is not None:
                since -= overlap
            if since is not None and m.removed:
                _drop_removed(con, engine, m, brand_id, since)
            result.rows[m.name] = _copy(con, engine, m, brand_id, since)
            if whole_run or _differs(con, m, brand_id, whole):
                result.changed.add(m.name)
            if m.name == "orders" and not whole:  # the re-read orders' owners, before and after
                order_summary.mark(con, _owners_of_batch(brand_id))
            _apply(con, m, brand_id, whole)
            if m.name == "orders":
                summary_whole = whole
                if not whole:
                    order_summary.mark(con, _owners_of_batch(brand_id))
            if m.name == "identifiers" and not whole:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _changed_identifiers AS "
                    "SELECT id_type, value, customer_id FROM _batch"
                )
            con.execute(
                "INSERT OR REPLACE INTO _sync_state VALUES (?, ?, ?, ?)",
                [m.name, brand_id, now, now],
            )
        if not whole_run and "identifiers" in state:
            order_summary.mark(  # orders about to follow an identifier: their old owners …
                con,
                f"SELECT o.customer_id FROM orders o JOIN _changed_identifiers c "
                f"ON c.id_type = o.id_type AND c.value = o.id_value "
                f"WHERE o.brand_id = {int(brand_id)}",
            )
            order_summary.mark(con, "SELECT customer_id FROM _changed_identifiers")  # … new ones
            moved = _rekey(con, brand_id)
            result.rekeyed = sum(moved.values())
            result.changed.update(name for name, n in moved.items() if n)
        if summary_whole or not order_summary.ready(con, brand_id):
            order_summary.rebuild(con, brand_id)
        else:
            order_summary.refresh(con, brand_id)
        for name in sorted(result.changed):
            con.execute(
                "INSERT OR REPLACE INTO _mirror_changes VALUES (?, ?, ?)", [name, brand_id, now]
            )
        con.execute("DROP TABLE IF EXISTS _batch")
        con.execute("DROP TABLE IF EXISTS _changed_identifiers")
        con.execute(f"DROP TABLE IF EXISTS {order_summary.DIRTY}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    result.seconds = time.perf_counter() - started
    return result
