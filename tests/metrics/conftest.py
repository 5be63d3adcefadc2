"""Build a brand from interchange files, sync its warehouse, and run the report on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from siyu.config import Settings
from siyu.metrics.commands import resolve_scope
from siyu.metrics.period import Period
from siyu.metrics.report import build
from siyu.warehouse.service import open_synced
from tests.conftest import ENGINES, engine_settings
from tests.factories import run_import, write_dir
from tests.metrics import brand

Report = Callable[..., dict[str, Any]]


def reporter(settings: Settings, directory: Path, files: dict[str, str]) -> Report:
    """Import `files`; return a function computing the report for a period and filters."""
    summary = run_import(settings, write_dir(directory, files))
    assert summary.rejected == 0, summary

    def report(
        start: str, end: str, stores: list[str] | None = None, channel: str | None = None
    ) -> dict[str, Any]:
        wh = open_synced(settings)
        try:
            scope = resolve_scope(wh.con, wh.brand_id, settings.timezone, stores, None, channel)
            return build(wh.con, scope, Period.parse(start, end, settings.timezone))
        finally:
            wh.con.close()

    report.settings = settings  # type: ignore[attr-defined]
    return report


@pytest.fixture
def brand_report(settings: Settings, tmp_path: Path) -> Callable[[dict[str, str]], Report]:
    return lambda files: reporter(settings, tmp_path / "in", files)


@pytest.fixture(scope="module", params=ENGINES)
def small_brand(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Report]:
    """tests/metrics/brand.py imported once per engine for the whole module."""
    base = tmp_path_factory.mktemp("brand")
    with engine_settings(request.param, base / "data") as s:
        yield reporter(s, base / "in", brand.FILES)
