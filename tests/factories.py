"""Small builders for interchange directories and imports."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from siyu.config import Settings
from siyu.imports import service as import_service
from siyu.runtime import open_brand

STORES = "store_id,name,region,city\nS001,静安店,华东,上海\nS002,朝阳店,华北,北京\n"


def write_dir(path: Path, files: dict[str, str | bytes]) -> Path:
    """Write {"orders.csv": "header\\nrow\\n"} files into a fresh directory."""
    path.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        target = path / name
        if isinstance(body, bytes):
            target.write_bytes(body)
        else:
            target.write_text(body, encoding="utf-8")
    return path


def run_import(settings: Settings, directory: Path) -> import_service.ImportSummary:
    engine, brand_id = open_brand(settings)
    try:
        return import_service.import_directory(
            engine,
            directory,
            brand_id=brand_id,
            timezone=settings.timezone,
            k_guard=settings.k_guard,
            report_dir=settings.data_dir / "reports",
        )
    finally:
        engine.dispose()


def scalar(settings: Settings, sql: str, **params: object) -> object:
    engine, _ = open_brand(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def rows(settings: Settings, sql: str, **params: object) -> list[tuple[object, ...]]:
    engine, _ = open_brand(settings)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params).all()]
    finally:
        engine.dispose()


def rejects(summary: import_service.ImportSummary) -> list[dict[str, str]]:
    import csv

    if summary.reject_report is None:
        return []
    with summary.reject_report.open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def engine_for(settings: Settings) -> tuple[Engine, int]:
    return open_brand(settings)


def audit_log(settings: Settings) -> list[dict[str, object]]:
    """The brand's audit log, newest first, as `siyu audit` reads it."""
    from siyu.audit import service as audit

    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        found = audit.recent(conn, brand_id=brand_id)
    engine.dispose()
    return found
