"""The segment brand imported once per engine, with tags and an SMS opt-out added through the
operational store, and a function that evaluates a rule to the people it selects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from siyu.config import Settings
from siyu.consent.models import OptOut
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.segments import evaluate
from siyu.segments.rules import parse
from siyu.tags import service as tag_service
from siyu.tags.models import CustomerTag
from siyu.warehouse.service import Warehouse, open_synced
from tests.conftest import ENGINES, engine_settings
from tests.factories import run_import, write_dir
from tests.segments import brand

AS_OF = datetime(2025, 8, 1, tzinfo=ZoneInfo("Asia/Shanghai"))


def customer_of(engine: Engine, person: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT customer_id FROM identifier "
                    "WHERE id_type = 'external_userid' AND value = :v"
                ),
                {"v": person},
            ).scalar_one()
        )


def add_tag(engine: Engine, brand_id: int, person: str, group: str, name: str) -> None:
    cid = customer_of(engine, person)
    with engine.begin() as conn:
        tag_id = tag_service.get_or_create_tag(conn, brand_id=brand_id, group=group, name=name)
        conn.execute(
            CustomerTag.__table__.insert().values(
                customer_id=cid,
                tag_id=tag_id,
                added_at=datetime(2025, 7, 1, tzinfo=UTC),
                added_by="test",
            )
        )


def build(settings: Settings, directory: Path) -> None:
    summary = run_import(settings, write_dir(directory, brand.FILES))
    assert summary.rejected == 0, summary
    engine, brand_id = open_brand(settings)
    try:
        for person, group, name in brand.TAGS:
            add_tag(engine, brand_id, person, group, name)
        person, channel, at = brand.SMS_OPT_OUT
        with engine.begin() as conn:
            conn.execute(
                OptOut.__table__.insert().values(
                    brand_id=brand_id,
                    row_key="sms-only",
                    channel=channel,
                    created_at=datetime.fromisoformat(at),
                    id_type="external_userid",
                    id_value=person,
                )
            )
    finally:
        engine.dispose()


@dataclass
class Brand:
    settings: Settings
    wh: Warehouse
    people: dict[int, str]

    def evaluation(self, rule: Any, as_of: datetime = AS_OF) -> evaluate.Evaluation:
        return evaluate.prepare(
            self.wh.con,
            parse(rule),
            scope=Scope(self.wh.brand_id, self.settings.timezone),
            as_of=as_of,
            constants=Constants(),
        )

    def who(self, rule: Any, as_of: datetime = AS_OF) -> str:
        """The people the rule selects, as a sorted string: "abe"."""
        ids = evaluate.member_ids(self.wh.con, self.evaluation(rule, as_of))
        return "".join(sorted(self.people[int(i)] for i in ids))


Who = Callable[[Any], str]


@pytest.fixture(scope="module", params=ENGINES)
def seg_brand(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Brand]:
    base = tmp_path_factory.mktemp("segments")
    with engine_settings(request.param, base / "data") as s:
        build(s, base / "in")
        wh = open_synced(s)
        people = dict(
            wh.con.execute(
                "SELECT customer_id, value FROM identifiers WHERE id_type = 'external_userid'"
            ).fetchall()
        )
        try:
            yield Brand(s, wh, people)
        finally:
            wh.con.close()


@pytest.fixture
def who(seg_brand: Brand) -> Who:
    return seg_brand.who
