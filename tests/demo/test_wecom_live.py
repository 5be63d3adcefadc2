"""The demo's live WeCom day: scans of a store's channel code in the local simulator reach
Siyu as encrypted callbacks over HTTP and become connections, welcomes, tags and merges —
counted from Siyu's own tables — and re-running the demo adds nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import func, select, text

from siyu.config import Settings
from siyu.connections.models import Connection
from siyu.demo import wecom_live
from siyu.demo.generator import generate
from siyu.imports.service import import_directory
from siyu.runtime import open_brand

SCANS = 40


def rows(engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_a_live_day_of_scans_lands_in_siyu_through_callbacks(settings: Settings, tmp_path: Path) -> None:  # fmt: skip
    engine, brand = open_brand(settings)
    generate(tmp_path / "brand", seed=3, persons=600, start=date(2025, 1, 1), days=120)
    import_directory(engine, tmp_path / "brand", brand_id=brand, timezone="Asia/Shanghai",
                     k_guard=5, report_dir=tmp_path / "rejects")  # fmt: skip
    customers_before = rows(engine, "SELECT count(*) FROM customer WHERE merged_into_id IS NULL")[0][0]  # fmt: skip

    day = wecom_live.run(settings, engine, brand, seed=3, scans=SCANS)

    assert day.skipped is None
    assert day.scans == SCANS and day.returning == SCANS * 2 // 5
    # Every scan became a friendship carrying the code's State, was welcomed with its own
    # WelcomeCode and tagged; one customer deleted their guide.
    assert (day.connections, day.welcomes, day.tagged, day.ended) == (SCANS, SCANS, SCANS, 1)
    welcomed = rows(engine, "SELECT status, count(*) FROM wecom_welcome GROUP BY status")
    assert welcomed == [("sent", SCANS)]
    # Returning customers joined the profile the brand already had; only new people are new.
    assert day.merged == day.returning
    customers_after = rows(engine, "SELECT count(*) FROM customer WHERE merged_into_id IS NULL")[0][0]  # fmt: skip
    assert customers_after == customers_before + SCANS - day.returning
    # The guides answering the code are the first store's staff, each given a share.
    per_guide = rows(
        engine,
        "SELECT s.code, count(*) FROM connection c JOIN staff s ON s.id = c.staff_id "
        "WHERE c.state = :s GROUP BY s.code ORDER BY s.code",
        s=day.state,
    )
    assert [g for g, _ in per_guide] == sorted(day.guides)
    assert sum(n for _, n in per_guide) == SCANS and min(n for _, n in per_guide) >= SCANS // 4
    # The day happened before now: no friendship is stamped in the future (a customer first
    # seen later than now is not yet one for lifecycle and segments).
    with engine.connect() as conn:
        later = conn.execute(
            select(func.count()).select_from(Connection)
            .where(Connection.state == day.state, Connection.created_at > datetime.now(UTC))
        ).scalar_one()  # fmt: skip
    assert later == 0

    again = wecom_live.run(settings, engine, brand, seed=3, scans=SCANS)
    assert again.skipped is not None
    assert rows(engine, "SELECT count(*) FROM connection WHERE state = :s", s=day.state)[0][0] == SCANS  # fmt: skip
    engine.dispose()
