"""The SOP brand imported per test (both engines), and helpers to drive the engine in time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import Engine, text

from siyu import pii
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.sop import engine as sop_engine
from siyu.sop import service
from tests.factories import run_import, write_dir
from tests.sop import brand

TZ = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)  # type: ignore[misc]


@dataclass
class World:
    settings: Settings
    engine: Engine
    brand_id: int
    people: dict[str, int]  # letter → customer id

    def sql(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]

    def put(self, definition: str | dict[str, Any], *, activate_at: datetime | None = None) -> str:
        raw = yaml.safe_load(definition) if isinstance(definition, str) else definition
        with self.engine.begin() as conn:
            done = service.import_definition(conn, brand_id=self.brand_id, raw=raw, by="test")
            if activate_at is not None:
                service.set_status(conn, brand_id=self.brand_id, key=done.key, status="active",
                                   now=activate_at)  # fmt: skip
        return done.key

    def tick(self, at: datetime) -> sop_engine.TickReport:
        """A tick as a fresh process would run it (new engine: nothing kept in memory)."""
        engine, brand_id = open_brand(self.settings)
        try:
            return sop_engine.tick(self.settings, engine, brand_id, at)
        finally:
            engine.dispose()

    def outbox(self, prefix: str = "sop:") -> list[dict[str, Any]]:
        from siyu.automation.models import OutboxItem

        t = OutboxItem.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.dedup_key.like(prefix + "%")).order_by(t.c.id))
            return [dict(r._mapping) for r in rows]

    def who(self, customer_ids: Any) -> str:
        back = {v: k for k, v in self.people.items()}
        return "".join(sorted(back[int(c)] for c in customer_ids if c is not None))

    def event(self, type_: str, key: str, *, payload: dict[str, Any], customer: str | None = None,
              at: datetime) -> None:  # fmt: skip
        from siyu.events.models import Event

        with self.engine.begin() as conn:
            conn.execute(Event.__table__.insert().values(
                brand_id=self.brand_id, type=type_, idempotency_key=key,
                customer_id=self.people[customer] if customer else None, occurred_at=at,
                recorded_at=at, payload=payload))  # fmt: skip


@pytest.fixture
def world(settings: Settings, tmp_path: Path) -> Iterator[World]:
    with built(settings, tmp_path) as w:
        yield w


@contextmanager
def built(settings: Settings, tmp_path: Path) -> Iterator[World]:
    """The brand of tests/sop/brand.py imported into `settings`' database."""
    summary = run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    assert summary.rejected == 0, summary
    engine, brand_id = open_brand(settings)
    with engine.connect() as conn:
        people = {
            v: int(c)
            for v, c in conn.execute(
                text("SELECT value, customer_id FROM identifier WHERE id_type = 'external_userid'")
            )
        }
        people["d"] = int(conn.execute(  # a phone is stored as its lookup hash (siyu.pii)
            text("SELECT customer_id FROM identifier WHERE value = :h"),
            {"h": pii.keyring(engine).lookup_hash("phone", "+8613800000004")},
        ).scalar_one())  # fmt: skip
    try:
        yield World(settings, engine, brand_id, people)
    finally:
        engine.dispose()
