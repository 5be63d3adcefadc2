"""Segment rules read lifecycle, RFM, quadrant and the paid-order figures it keeps (all time, and
the trailing windows of the SPEC constants) from the daily snapshot when it holds exactly the
values as of the rule's instant, and select the same people as the live definitions — also after
a refund, a late order and a merge have been synced (the snapshot is then stale and not read,
until the daily pass runs again). On SQLite and PostgreSQL, with the hand-built brands of
tests/lifecycle/brand.py as of 2025-08-01."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from siyu.config import Settings
from siyu.lifecycle import service as lifecycle
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.segments import evaluate
from siyu.segments.rules import parse
from siyu.warehouse.service import Warehouse, open_synced
from tests.conftest import ENGINES, engine_settings
from tests.factories import run_import, write_dir
from tests.lifecycle import brand

DAY = date.fromisoformat(brand.AS_OF)
AT = datetime(2025, 8, 1, tzinfo=ZoneInfo("Asia/Shanghai"))


def leaf(field: str, op: str, value: Any = None, **options: Any) -> dict[str, Any]:
    return {"field": field, "op": op, **({} if value is None else {"value": value}), **options}


# Order leaves the pass stored a figure for (defaults: loyal 30, super and paying 90, quadrant
# 365 days); the brand has orders on both sides of the 30- and 90-day edges and one after the
# as-of instant. Several hold for a customer without any row (no paid order before the instant,
# like `late`): those read as anti-joins.
ORDER_RULES = [
    leaf("orders.count", "gte", 1),
    leaf("orders.count", "gte", 3),
    leaf("orders.count", "lt", 1),
    leaf("orders.count", "between", [0, 1]),
    leaf("orders.amount", "gte", 3000),
    leaf("orders.amount", "not_in", [1000]),
    leaf("orders.days_since_last", "lte", 31),
    leaf("orders.days_since_last", "is_not_set"),
    leaf("orders.days_since_last", "ne", 30),
    leaf("orders.count", "gte", 1, within_days=90),
    leaf("orders.count", "gte", 3, within_days=30),
    leaf("orders.count", "eq", 0, within_days=30),
    leaf("orders.count", "eq", 2, within_days=365),
    leaf("orders.amount", "gte", 2000, within_days=365),
    leaf("orders.amount", "lte", 1000, within_days=365),
    leaf("orders.days_since_last", "gte", 30, within_days=90),
    leaf("orders.days_since_last", "is_not_set", within_days=60),
    {"not": leaf("orders.count", "gte", 1, within_days=90)},
]


STAGES = ("introduction", "growth", "maturity", "dormant", "churned")
RULES = [
    *(leaf("lifecycle", "eq", s) for s in STAGES),
    leaf("lifecycle", "in", ["growth", "maturity"]),
    leaf("lifecycle", "not_in", ["churned"]),
    {"not": leaf("lifecycle", "eq", "churned")},
    leaf("lifecycle", "is_not_set"),
    leaf("rfm.class", "is_set"),
    leaf("rfm.class", "is_not_set"),
    leaf("rfm.class", "in", ["important_value", "general_winback", "important_retention"]),
    leaf("rfm.r_score", "gte", 3),
    leaf("rfm.f_score", "eq", 5),
    leaf("rfm.m_score", "lt", 2),
    leaf("quadrant", "eq", "high_freq_high_aov"),
    leaf("quadrant", "ne", "low_freq_low_aov"),
    leaf("quadrant", "is_set"),
    {
        "any": [
            {"all": [leaf("lifecycle", "eq", "dormant"), leaf("orders.count", "gte", 1)]},
            {"all": [leaf("rfm.class", "is_set"), {"not": leaf("lifecycle", "eq", "churned")}]},
        ]
    },
    *ORDER_RULES,
    {  # the three-level rule, on this brand's people
        "any": [
            {
                "all": [
                    leaf("lifecycle", "eq", "dormant"),
                    leaf("orders.count", "gte", 1, within_days=90),
                ]
            },
            {"not": leaf("orders.count", "gte", 1, within_days=365)},
        ]
    },
]


class Brand:
    def __init__(self, settings: Settings, constants: Constants) -> None:
        self.settings, self.constants = settings, constants

    def open(self) -> Warehouse:
        return open_synced(self.settings)

    def scope(self, wh: Warehouse) -> Scope:
        return Scope(wh.brand_id, self.settings.timezone)

    def pass_(self) -> None:
        wh = self.open()
        try:
            lifecycle.write_snapshot(
                wh.con, scope=self.scope(wh), as_of=DAY, constants=self.constants
            )
        finally:
            wh.con.close()

    def who(self, wh: Warehouse, rule: Any, *, use_snapshot: bool, at: datetime = AT) -> Any:
        ev = evaluate.prepare(
            wh.con,
            parse(rule),
            scope=self.scope(wh),
            as_of=at,
            constants=self.constants,
            use_snapshot=use_snapshot,
        )
        names = dict(
            wh.con.execute(
                "SELECT customer_id, value FROM identifiers WHERE id_type = 'external_userid'"
            ).fetchall()
        )
        people = sorted(names.get(int(i), str(i)) for i in evaluate.member_ids(wh.con, ev))
        return ev.snapshot, people


# A customer first seen after the as-of instant (a friend from 08-05, an order on 08-06): in no
# table the pass wrote for 2025-08-01, with no value in any of them.
LATE = {
    "connections.csv": "wecom_friend,external_userid,late,G1,,,2025-08-05 10:00,\n",
    "orders.csv": "O999,pos,S001,external_userid,late,2025-08-06 12:00,1000,paid,\n",
}


def _with_late(files: dict[str, str]) -> dict[str, str]:
    return {name: text + LATE.get(name, "") for name, text in files.items()}


def _brand(kind: str, base: Path, files: dict[str, str], constants: Constants) -> Iterator[Brand]:
    with engine_settings(kind, base / "data") as s:
        assert run_import(s, write_dir(base / "in", files)).rejected == 0
        b = Brand(s, constants)
        b.pass_()
        yield b


@pytest.fixture(scope="module", params=ENGINES)
def both(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """The lifecycle brand and the RFM brand (quadrant thresholds that split its buyers)."""
    base = tmp_path_factory.mktemp("snap")
    quadrants = Constants(quadrant_orders=3, quadrant_aov_fen=2500)
    for life in _brand(request.param, base / "life", _with_late(brand.FILES), Constants()):
        for rfm in _brand(request.param, base / "rfm", brand.RFM_FILES, quadrants):
            yield life, rfm


@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r)[:60])
def test_snapshot_and_live_select_the_same_people(both, rule) -> None:  # type: ignore[no-untyped-def]
    for b in both:
        wh = b.open()
        try:
            day, fast = b.who(wh, rule, use_snapshot=True)
            assert day == DAY  # the snapshot was read …
            assert b.who(wh, rule, use_snapshot=False) == (None, fast)  # … and agrees
        finally:
            wh.con.close()


def test_snapshot_only_for_the_start_of_its_day_and_its_constants(both) -> None:  # type: ignore[no-untyped-def]
    life, _ = both
    wh = life.open()
    try:
        rule = leaf("lifecycle", "eq", "growth")
        assert life.who(wh, rule, use_snapshot=True)[0] == DAY
        for no_figure in (  # a window the snapshot does not count, an option it does not split by
            leaf("orders.count", "gte", 1, within_days=45),
            leaf("orders.amount", "gte", 1, within_days=90),
            leaf("orders.count", "gte", 1, platform=["pos"]),
        ):
            day, people = life.who(wh, no_figure, use_snapshot=True)
            assert day is None and people
        later = AT + timedelta(hours=1)
        assert life.who(wh, rule, use_snapshot=True, at=later)[0] is None
        other = Brand(life.settings, Constants(t1=31, t2=91))
        assert other.who(wh, rule, use_snapshot=True)[0] is None
    finally:
        wh.con.close()


def _replace(files: dict[str, str], old: str, new: str) -> str:
    assert old in files["orders.csv"]
    return files["orders.csv"].replace(old, new)


def test_a_synced_change_makes_the_snapshot_stale_until_the_next_pass(
    settings: Settings, tmp_path: Path
) -> None:
    (b,) = _brand_for(settings, tmp_path)
    rules = [
        *(leaf("lifecycle", "eq", s) for s in STAGES),
        leaf("rfm.class", "is_set"),
        leaf("quadrant", "is_set"),
        leaf("orders.count", "gte", 1, within_days=30),
        leaf("orders.amount", "gte", 1000),
    ]
    wh = b.open()  # a sync that changes nothing keeps the snapshot fresh
    try:
        before = {str(r): b.who(wh, r, use_snapshot=True) for r in rules}
        assert {day for day, _ in before.values()} == {DAY}
    finally:
        wh.con.close()
    # o31's only order is refunded, d31 orders late (before the as-of instant), and a record
    # shows c91 and i30 are one person.
    later = {
        "orders.csv": _replace(
            brand.FILES,
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,1000,paid,",
            "O6,pos,S001,external_userid,o31,2025-07-01 12:00,1000,refunded,1000",
        )
        + "O99,pos,S001,external_userid,d31,2025-07-30 12:00,1000,paid,\n",
        "records.csv": "record_id,source,external_userid,unionid\nr1,mp,c91,U1\nr2,oa,i30,U1\n",
    }
    assert run_import(settings, write_dir(tmp_path / "later", later)).rejected == 0
    wh = b.open()
    try:
        assert {"orders", "identifiers"} <= wh.synced.changed
        for r in rules:
            day, live = b.who(wh, r, use_snapshot=True)
            assert day is None  # stale: computed live
            assert (day, live) == b.who(wh, r, use_snapshot=False)
        growth = b.who(wh, leaf("lifecycle", "eq", "growth"), use_snapshot=False)[1]
        assert "d31" in growth and "d31" not in before[str(leaf("lifecycle", "eq", "growth"))][1]
    finally:
        wh.con.close()
    b.pass_()
    wh = b.open()
    try:
        for r in rules:
            day, fast = b.who(wh, r, use_snapshot=True)
            assert day == DAY
            assert b.who(wh, r, use_snapshot=False) == (None, fast)
    finally:
        wh.con.close()


def _brand_for(settings: Settings, tmp_path: Path) -> list[Brand]:
    assert run_import(settings, write_dir(tmp_path / "in", brand.FILES)).rejected == 0
    b = Brand(settings, Constants())
    b.pass_()
    return [b]


def test_a_day_written_before_the_order_figures_is_not_read(
    settings: Settings, tmp_path: Path
) -> None:
    """A day the pass wrote before it stored order figures (an earlier version: its written key
    lacks the layout) is computed live until the pass runs again."""
    (b,) = _brand_for(settings, tmp_path)
    rule = leaf("orders.count", "gte", 1, within_days=90)
    wh = b.open()
    try:
        live = b.who(wh, rule, use_snapshot=False)
        wh.con.execute(f"DELETE FROM {lifecycle.ORDERS}")
        old_key = json.dumps(b.constants.params(), sort_keys=True)
        wh.con.execute(f"UPDATE {lifecycle.WRITTEN} SET constants = ?", [old_key])
        assert b.who(wh, rule, use_snapshot=True) == live  # not read: (None, people)
        assert b.who(wh, leaf("lifecycle", "eq", "growth"), use_snapshot=True)[0] is None
    finally:
        wh.con.close()
    b.pass_()
    wh = b.open()
    try:
        assert b.who(wh, rule, use_snapshot=True) == (DAY, live[1])
    finally:
        wh.con.close()
