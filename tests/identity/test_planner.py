"""How an incremental identity pass steers PostgreSQL's planner (siyu.identity.planner).

PostgreSQL only: the settings are PostgreSQL's. A small scope gets index seeks forced; a large
one keeps the planner's own choice, which is what keeps the pass after an import from running
for minutes to hours; when most of the brand changed the pass is a full one; and whatever the
pass does, settings are as they were before it once it is over, also when it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DataError

from siyu.identity import service as identity_service
from siyu.identity.records import upsert_record
from tests.conftest import engine_settings
from tests.factories import engine_for

K = 5
CHAIN = 60  # records linked one to the next: one customer
SINGLES = 60  # records of a customer each


@pytest.fixture
def brand(tmp_path: Path) -> Iterator[tuple[Engine, int]]:
    """A resolved brand on PostgreSQL: one customer of CHAIN records, SINGLES customers of one."""
    with engine_settings("postgresql", tmp_path / "data") as settings:
        engine, brand_id = engine_for(settings)
        with engine.begin() as conn:
            for i in range(CHAIN):
                # r0: P0 U0, r1: P0 U1, r2: P1 U1, r3: P1 U2 … each value on two records.
                ids = {"phone": f"1390000{i // 2:04d}", "unionid": f"U{(i + 1) // 2}"}
                upsert_record(
                    conn, brand_id=brand_id, record_key=f"C{i}", source="mp", identifiers=ids
                )
            for i in range(SINGLES):
                upsert_record(
                    conn,
                    brand_id=brand_id,
                    record_key=f"S{i}",
                    source="pos",
                    identifiers={"member_no": f"M{i}"},
                )
        result = identity_service.resolve(engine, brand_id=brand_id, k_guard=K)
        assert result.full and result.customers == 1 + SINGLES
        # As if the records had been written long ago: the next pass sees only new changes.
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE source_record SET updated_at = updated_at - interval '3 days'")
            )
            conn.execute(
                text("UPDATE identity_pass SET started_at = started_at - interval '2 days'")
            )
        yield engine, brand_id
        engine.dispose()


def _settings(conn: Connection) -> dict[str, str]:
    return {
        name: conn.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar_one()
        for name in ("enable_hashjoin", "enable_mergejoin", "enable_seqscan")
    }


@pytest.fixture
def seen_while_loading(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, str]]:
    """The settings in force when the pass reads its scope (after the scope is complete)."""
    seen: list[dict[str, str]] = []
    load = identity_service._load_scope

    def spy(conn: Connection, brand_id: int):  # type: ignore[no-untyped-def]
        seen.append(_settings(conn))
        return load(conn, brand_id)

    monkeypatch.setattr(identity_service, "_load_scope", spy)
    return seen


def _touch(engine: Engine, where: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE source_record SET updated_at = now() WHERE {where}"))


def _pass(engine: Engine, brand_id: int) -> identity_service.ResolutionResult:
    return identity_service.resolve(engine, brand_id=brand_id, k_guard=K, overlap=None)


FORCED = {"enable_hashjoin": "off", "enable_mergejoin": "off", "enable_seqscan": "off"}
DEFAULT = {"enable_hashjoin": "on", "enable_mergejoin": "on", "enable_seqscan": "on"}


def test_a_small_scope_gets_index_seeks(
    brand: tuple[Engine, int], seen_while_loading: list[dict[str, str]]
) -> None:
    engine, brand_id = brand
    _touch(engine, "record_key = 'S7'")  # one record of a one-record customer
    result = _pass(engine, brand_id)
    assert not result.full and result.resolved == 1
    assert seen_while_loading == [FORCED]


def test_a_large_scope_keeps_the_planners_choice(
    brand: tuple[Engine, int], seen_while_loading: list[dict[str, str]]
) -> None:
    engine, brand_id = brand
    _touch(engine, "record_key IN (" + ", ".join(f"'S{i}'" for i in range(12)) + ")")  # 10 %
    result = _pass(engine, brand_id)
    assert not result.full and result.resolved == 12
    assert seen_while_loading == [DEFAULT]


def test_a_pass_over_a_mostly_changed_brand_is_a_full_pass(
    brand: tuple[Engine, int], seen_while_loading: list[dict[str, str]]
) -> None:
    engine, brand_id = brand
    _touch(engine, "true")  # a fresh import of every record
    result = _pass(engine, brand_id)
    assert result.full and result.resolved == CHAIN + SINGLES
    assert result.customers == 1 + SINGLES and result.created == result.merged == 0
    assert seen_while_loading == []  # no scope was built


def test_a_scope_that_grows_large_gives_the_planner_its_choice_back(
    brand: tuple[Engine, int], seen_while_loading: list[dict[str, str]]
) -> None:
    # One changed record (small), but its customer is half the brand: the scope takes it all.
    engine, brand_id = brand
    _touch(engine, "record_key = 'C30'")
    result = _pass(engine, brand_id)
    assert result.resolved == CHAIN
    assert seen_while_loading == [DEFAULT]


def test_settings_are_as_before_after_a_pass(brand: tuple[Engine, int]) -> None:
    # Whoever set a setting for the session (here mergejoin off) finds it so after the pass.
    engine, brand_id = brand
    _touch(engine, "record_key = 'S7'")
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_mergejoin = off"))
        identity_service._resolve(conn, brand_id, K)
        assert _settings(conn) == {**DEFAULT, "enable_mergejoin": "off"}


def test_settings_are_as_before_after_a_pass_fails(
    brand: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, brand_id = brand
    _touch(engine, "record_key = 'S7'")

    def broken(conn: Connection, brand_id: int) -> None:
        assert _settings(conn) == FORCED  # the failure happens while seeks are forced
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(identity_service, "_load_scope", broken)
    with engine.connect() as conn:  # rolled back when closed
        with pytest.raises(RuntimeError, match="disk on fire"):
            identity_service._resolve(conn, brand_id, K)
        assert _settings(conn) == DEFAULT


def test_a_database_error_in_a_pass_is_the_error_reported(
    brand: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failed statement aborts the transaction: the pass must not bury the error under
    # "current transaction is aborted" by restoring settings; rolling back restores them.
    engine, brand_id = brand
    _touch(engine, "record_key = 'S7'")

    def broken(conn: Connection, brand_id: int) -> None:
        conn.execute(text("SELECT 1 / 0"))

    monkeypatch.setattr(identity_service, "_load_scope", broken)
    with engine.connect() as conn:  # rolled back when closed
        savepoint = conn.begin_nested()
        with pytest.raises(DataError, match="division by zero"):
            identity_service._resolve(conn, brand_id, K)
        savepoint.rollback()
        assert _settings(conn) == DEFAULT


def test_the_profile_merge_reads_the_records_once_when_their_index_was_rebuilt_in_the_pass(
    brand: tuple[Engine, int],
) -> None:
    """A big pass updates every record's customer_id with its indexes dropped, and siyu.bulk
    rebuilds them in the same transaction. Over HOT-updated rows PostgreSQL marks such an index
    unusable until that transaction ends (pg_index.indcheckxmin), so a merge seeking each
    customer's records by customer_id scanned every record once per customer and field: a
    first import of 250k persons had not finished after 13 minutes in that one statement
    (bench/RESULTS.md). The merge must read the records table at most once."""
    engine, brand_id = brand
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_source_record_customer_id"))
        conn.execute(text("UPDATE source_record SET customer_id = customer_id"))  # HOT updates
        conn.execute(text("CREATE INDEX ix_source_record_customer_id ON source_record "
                          "(customer_id)"))  # fmt: skip
        unusable = conn.execute(text(
            "SELECT indcheckxmin FROM pg_index WHERE indexrelid = "
            "'ix_source_record_customer_id'::regclass")).scalar_one()  # fmt: skip
        assert unusable  # the situation the test is about

        def scans() -> int:
            return conn.execute(text("SELECT seq_scan FROM pg_stat_xact_user_tables "
                                     "WHERE relid = 'source_record'::regclass")).scalar_one()  # fmt: skip

        customers = conn.execute(text("SELECT id FROM customer")).scalars().all()
        before = scans()
        identity_service._merge_profiles(conn, brand_id, np.array(customers, dtype=np.int64))
        assert len(customers) == 1 + SINGLES and scans() - before <= 1
