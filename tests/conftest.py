"""One fixture builds a database on SQLite or on the real PostgreSQL (STYLE.md).

PostgreSQL runs at 127.0.0.1:5432 (user postgres, database test); SIYU_TEST_PG_URL overrides.
Each test gets a schema of its own. If PostgreSQL cannot be reached the tests fail, not skip:
CI must prove both engines.

`make test` runs the suite on every core (pytest-xdist); each test's data directory and schema
are its own, so workers share nothing but the PostgreSQL server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# A pytest-xdist worker starts with COLUMNS=80, and Rich fixes a console's width from COLUMNS when
# the console is made (siyu.clikit, at import): tests that give the CLI `COLUMNS=200` to read a
# whole table would then see it wrapped at 80. Without it, the width is read at each print.
os.environ.pop("COLUMNS", None)

from siyu.config import Settings  # noqa: E402

ENGINES = ["sqlite", "postgresql"]
PG_URL = os.environ.get("SIYU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def engine_settings(kind: str, data_dir: Path) -> Iterator[Settings]:
    """Settings on SQLite in `data_dir`, or on a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield Settings(data_dir=data_dir)
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield Settings(
            data_dir=data_dir, database_url=f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    with engine_settings(request.param, tmp_path / "data") as s:
        yield s
