"""The PostgreSQL pool replaces a connection the server closed while it sat idle (siyu.db).

PostgreSQL only: SQLite has no server to close a connection.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from siyu import db
from tests.conftest import PG_URL, engine_settings


def test_an_idle_connection_the_server_closed_is_replaced_before_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine_settings("postgresql", tmp_path / "data") as settings:
        engine = db.make_engine(settings)
        admin = create_engine(PG_URL)
        try:
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            # a server restart or an idle timeout, while the connection sits in the pool
            with admin.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                deadline = time.monotonic() + 10
                while conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                   {"p": pid}).scalar_one():  # fmt: skip
                    assert time.monotonic() < deadline, "the backend did not exit"
                    time.sleep(0.05)
            monkeypatch.setattr(db, "PING_IDLE", 0.0)  # it has been idle long enough
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        finally:
            engine.dispose()
            admin.dispose()
