"""SPEC §6 per customer: every lifecycle branch and threshold edge, the first-match order of the
value layers, every RFM class with the strict-mean rule, the quintile scores and the quadrants —
computed by the daily pass from hand-built brands, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from siyu.cli import app
from siyu.lifecycle import service as lifecycle
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.runtime import open_brand
from siyu.warehouse.service import open_synced
from tests.conftest import ENGINES, engine_settings
from tests.factories import rows, run_import, write_dir
from tests.lifecycle import brand

AS_OF = date.fromisoformat(brand.AS_OF)


def snapshot(settings: Any, constants: Constants) -> dict[str, dict[str, Any]]:
    """Take the snapshot as of AS_OF; each person's row by their external_userid."""
    wh = open_synced(settings)
    try:
        scope = Scope(wh.brand_id, settings.timezone)
        lifecycle.write_snapshot(wh.con, scope=scope, as_of=AS_OF, constants=constants)
        cur = wh.con.execute(
            f"SELECT i.value AS person, s.* FROM {lifecycle.SNAPSHOT} s "
            "JOIN identifiers i ON i.customer_id = s.customer_id AND i.id_type = 'external_userid' "
            "WHERE s.as_of = ?",
            [AS_OF],
        )
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        wh.con.close()


def _imported(request: pytest.FixtureRequest, factory: Any, files: dict[str, str]) -> Iterator[Any]:
    base = factory.mktemp("brand")
    with engine_settings(request.param, base / "data") as s:
        summary = run_import(s, write_dir(base / "in", files))
        assert summary.rejected == 0, summary
        yield s


@pytest.fixture(scope="module", params=ENGINES)
def people(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    for s in _imported(request, tmp_path_factory, brand.FILES):
        yield snapshot(s, Constants())


@pytest.fixture(scope="module", params=ENGINES)
def buyers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    for s in _imported(request, tmp_path_factory, brand.RFM_FILES):
        yield snapshot(s, Constants(quadrant_orders=3, quadrant_aov_fen=2500))


LIFECYCLE = {
    "nc": "churned",
    "i30": "introduction",
    "d31": "dormant",
    "d90": "dormant",
    "c91": "churned",
    "cx": "introduction",
    "o91": "churned",
    "o90": "dormant",
    "o31": "dormant",
    "m30": "maturity",
    "g30": "growth",
    "g1": "growth",
}


@pytest.mark.parametrize("person", LIFECYCLE)
def test_every_lifecycle_branch_and_threshold_edge(people, person) -> None:  # type: ignore[no-untyped-def]
    assert people[person]["stage"] == LIFECYCLE[person]


def test_days_since_counts_brand_local_days(people) -> None:  # type: ignore[no-untyped-def]
    got = {p: people[p]["days_since"] for p in ("i30", "d31", "d90", "c91", "o90", "g1")}
    assert got == {"i30": 30, "d31": 31, "d90": 90, "c91": 91, "o90": 90, "g1": 1}


def test_thresholds_come_from_the_constants(tmp_path: Path) -> None:
    with engine_settings("sqlite", tmp_path / "data") as s:
        run_import(s, write_dir(tmp_path / "in", brand.FILES))
        rows = snapshot(s, Constants(t1=31, t2=91))
    assert rows["d31"]["stage"] == "introduction"
    assert rows["c91"]["stage"] == "dormant"
    assert rows["o91"]["stage"] == "dormant"


LAYERS = {
    "loyal": "loyal_fans",
    "super": "loyal_fans",
    "inv1": "paying",
    "o90": "paying",
    "act": "active",
    "new": "newly_activated",
    "reg": "regular",
    "d90": "regular",
}


@pytest.mark.parametrize("person", LAYERS)
def test_value_layers_first_match(people, person) -> None:  # type: ignore[no-untyped-def]
    assert people[person]["value_layer"] == LAYERS[person]


def test_loyal_and_super_user_flags(people) -> None:  # type: ignore[no-untyped-def]
    flags = {
        p: (r["loyal"], r["super_user"]) for p, r in people.items() if r["loyal"] or r["super_user"]
    }
    assert flags == {"loyal": (True, False), "super": (False, True)}


def test_customers_without_paid_orders_have_no_rfm_or_quadrant(people) -> None:  # type: ignore[no-untyped-def]
    for person in ("i30", "cx", "act", "new"):
        row = people[person]
        assert (row["rfm_class"], row["r_score"], row["quadrant"]) == (None, None, None)


@pytest.mark.parametrize("person", [p for p in brand.RFM_BUYERS if p != "at_the_mean"])
def test_every_rfm_class(buyers, person) -> None:  # type: ignore[no-untyped-def]
    assert buyers[person]["rfm_class"] == person


def test_a_buyer_exactly_at_every_mean_is_low_on_all_three(buyers) -> None:  # type: ignore[no-untyped-def]
    row = buyers["at_the_mean"]
    assert (row["rfm_r"], row["rfm_f"], row["rfm_m"]) == (33, 2, 5000)
    assert row["rfm_class"] == "general_winback"


def test_rfm_quintile_scores_share_ties(buyers) -> None:  # type: ignore[no-untyped-def]
    # Nine buyers; score = 1 + floor(5 (rank − 1) / 9), ties take the first rank.
    scores = {p: (r["r_score"], r["f_score"], r["m_score"]) for p, r in buyers.items()}
    assert scores["general_winback"] == (1, 1, 1)  # oldest, fewest, smallest
    assert scores["at_the_mean"] == (3, 3, 3)  # rank 5 of 9 on every axis
    assert scores["important_value"] == (3, 3, 3)  # ties with the most recent / frequent
    assert scores["important_development"][2] == 3
    assert scores["general_value"] == (3, 3, 1)


def test_business_quadrants_with_configured_thresholds(buyers) -> None:  # type: ignore[no-untyped-def]
    got = {p: buyers[p]["quadrant"] for p in (
        "important_value", "general_value", "important_development", "general_development",
        "at_the_mean")}  # fmt: skip
    assert got == {
        "important_value": "high_freq_high_aov",  # 3 orders (= threshold), ¥30 each
        "general_value": "high_freq_low_aov",
        "important_development": "low_freq_high_aov",
        "general_development": "low_freq_low_aov",
        "at_the_mean": "low_freq_high_aov",  # AOV exactly 2500 counts as high
    }


def test_transitions_and_lifecycle_changed_events_once(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_import(settings, write_dir(tmp_path / "in", brand.FILES))
    wh = open_synced(settings)
    engine, _ = open_brand(settings)
    scope = Scope(wh.brand_id, settings.timezone)
    try:
        first = lifecycle.run_daily(
            wh.con, engine, scope=scope, as_of=date(2025, 7, 20), constants=Constants()
        )
        snap = lifecycle.run_daily(wh.con, engine, scope=scope, as_of=AS_OF, constants=Constants())
        again = lifecycle.run_daily(wh.con, engine, scope=scope, as_of=AS_OF, constants=Constants())
    finally:
        engine.dispose()
        wh.con.close()
    events = rows(
        settings,
        "SELECT i.value, e.payload FROM event e JOIN identifier i ON i.customer_id = "
        "e.customer_id AND i.id_type = 'external_userid' WHERE e.type = 'lifecycle.changed'",
    )
    # The CLI prints the same snapshot; a third run of the day still records no event.
    env = {"SIYU_DATABASE_URL": settings.database_url} if settings.database_url else {}
    result = CliRunner().invoke(
        app, ["--data-dir", str(settings.data_dir), "lifecycle", "--as-of", brand.AS_OF], env=env
    )
    assert first.previous is None and first.events == 0
    assert snap.previous == date(2025, 7, 20)
    # cx, act and new were first seen after 07-20 00:00 and enter as introduction; reg (an old
    # buyer, churned on both days) is no transition.
    assert snap.transitions[(lifecycle.NEW, "introduction")] == 3
    changed = {
        person: payload if isinstance(payload, dict) else json.loads(payload)
        for person, payload in events
    }
    # d31: r 19 → 31 crosses T1; c91: r 79 → 91 crosses T2.
    assert changed["d31"] == {"from": "introduction", "to": "dormant", "as_of": "2025-08-01"}
    assert changed["c91"] == {"from": "dormant", "to": "churned", "as_of": "2025-08-01"}
    assert not {"act", "new", "reg", "cx"} & set(changed)
    assert snap.events == snap.changed == len(changed)
    assert again.events == 0 and again.changed == snap.changed
    assert result.exit_code == 0, result.output
    assert "休眠期" in result.output and f"{snap.changed} customers changed stage" in result.output
    assert "0 lifecycle.changed events" in result.output
