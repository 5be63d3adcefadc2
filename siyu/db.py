"""Engine and sessions for the operational store: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    create_engine,
    event,
    null,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from siyu.config import Settings

# Named constraints so Alembic migrations are stable on SQLite (batch mode) and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL; SQLite needs plain INTEGER for rowid aliasing.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sqlite_ts(at: datetime) -> str:
    """A UTC instant as SQLAlchemy stores DateTime on SQLite (text, compared as text)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def bind_ts(conn: Connection, at: datetime) -> Any:
    """A UTC instant bound into a text() query on either engine."""
    return at if conn.dialect.name == "postgresql" else sqlite_ts(at)


def read_ts(value: Any) -> datetime:
    """A timestamp read through a text() query (SQLite gives text) as an aware UTC instant."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_ignore(conn: Connection, table: Any, values: dict[str, Any], returning: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the value, or None when the row existed."""
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    return conn.execute(
        stmt.values(**values).on_conflict_do_nothing().returning(returning)
    ).scalar_one_or_none()


def make_engine(settings: Settings) -> Engine:
    """An engine on the configured store, which knows where its PII key is (siyu.pii)."""
    from siyu import pii

    engine = _make_engine(settings)
    pii.attach(engine, settings)
    return engine


def _make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.execute("PRAGMA cache_size=-200000")
            # A checkpoint every 4,000 pages (16 MB of WAL) instead of SQLite's 1,000: the hot
            # tables' index pages are rewritten many times between checkpoints and copied once
            # per checkpoint — a third less commit time over 300,000 ingested events
            # (bench/RESULTS.md, "Event ingest: the writer thread…").
            cur.execute("PRAGMA wal_autocheckpoint=4000")
            cur.close()

        return engine
    engine = create_engine(url)
    _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection is pinged before use when it sat in the pool this long.
PING_IDLE = 1.0  # seconds


def _ping_when_idle(engine: Engine) -> None:
    """`pool_pre_ping` for connections that sat idle: a server restart or an idle timeout
    closes those, and they are replaced before anyone uses them. A connection back in the pool
    less than PING_IDLE ago has just worked; pinging it costs a round trip (~50 µs of CPU on
    loopback TCP), a third of those of a busy ingest writer's one-event group (issue #7)."""

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_conn, record):  # type: ignore[no-untyped-def]
        if dbapi_conn is not None:  # None: invalidated, reconnects at its next checkout
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.get("idle_since")  # none: a connection made for this checkout
        if since is None or time.monotonic() - since < PING_IDLE:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            if engine.dialect.is_disconnect(e, dbapi_conn, None):
                raise DisconnectionError(str(e)) from e  # the pool connects anew and retries
            raise


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    session = sessionmaker(engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Rows that predate change tracking (migration 0002) count as changed at the epoch: the first
# warehouse sync is a full copy anyway.
EPOCH = text("'1970-01-01 00:00:00'")


class Tracked:
    """A row the warehouse copies incrementally (siyu/warehouse).

    `changed_at` moves on every insert and every real update — ORM and Core writes get it from
    the column's default/onupdate; bulk SQL writers (the import upsert, the identity pass) set it
    themselves. The warehouse re-reads rows changed since its last sync (with an overlap for
    transactions that committed late), so a writer that forgot it would go unseen until a
    full sync.
    """

    changed_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False, server_default=EPOCH
    )


class RowHashed:
    """A row `siyu import` writes: `row_hash` is a 63-bit hash of the values it last imported.

    A re-import drops rows whose hash is already stored before they leave DuckDB, so unchanged
    data costs almost nothing (siyu/imports/upsert.py). Any other ORM or Core update clears the
    hash (onupdate), so the next import compares that row value by value again; raw SQL writers
    of imported columns must clear it themselves.
    """

    row_hash: Mapped[int | None] = mapped_column(BigInteger, onupdate=null())


class CustomerRef:
    """A reference to a customer by identifier (DATA_FORMAT.md: `id_type, id_value`).

    Facts keep the identifier, not a customer id: identity resolution maps each value to its
    customer through `identity_link`, so a merge or an unmerge never rewrites fact rows. An
    empty pair is an anonymous fact (e.g. a walk-in order).
    """

    id_type: Mapped[str | None] = mapped_column(String(32))
    id_value: Mapped[str | None] = mapped_column(String(200))


def advisory_key(conn: Connection, purpose: str, brand_id: int) -> int:
    """A PostgreSQL advisory-lock key for (`purpose`, brand) in this database and schema.

    Advisory locks are shared by the whole server, so the key names the database and the
    schema too: two Siyu installations (or test schemas) on one server never take each
    other's turn."""
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.sha256(f"siyu:{database}:{schema}:{purpose}:{brand_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
