"""`siyu import DIR`: the interchange format v1 into the operational store (DATA_FORMAT.md).

Files are applied in dependency order, each in its own transaction: a file that cannot be read
stores nothing of itself, a bad row is rejected alone, and nothing stored earlier is lost.
Identity resolution (SPEC §4) runs once at the end over everything stored.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from sqlalchemy import Engine

from siyu import pii
from siyu.events import facts as fact_events
from siyu.identity import service as identity_service
from siyu.identity.normalize import DUCKDB_MACROS
from siyu.imports import loaders, protect
from siyu.imports.reader import FileUnreadable, load
from siyu.imports.specs import BY_NAME, SPECS
from siyu.imports.validate import validate
from siyu.orgs import service as org_service

SUFFIXES = (".csv", ".parquet")


class ImportRefused(Exception):
    """The directory as a whole is refused before anything is stored."""


@dataclass
class FileResult:
    file: str
    read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    values_dropped: int = 0
    error: str | None = None

    @property
    def unchanged(self) -> int:
        return max(self.read - self.inserted - self.updated - self.rejected, 0)


@dataclass
class ImportSummary:
    files: list[FileResult] = field(default_factory=list)
    identity: identity_service.ResolutionResult | None = None
    events: dict[str, int] = field(default_factory=dict)  # domain events emitted, by type
    reject_report: Path | None = None

    @property
    def inserted(self) -> int:
        return sum(f.inserted for f in self.files)

    @property
    def updated(self) -> int:
        return sum(f.updated for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def failed_files(self) -> list[FileResult]:
        return [f for f in self.files if f.error]


def discover(directory: Path) -> list[tuple[str, Path]]:
    """The interchange files in `directory`, in the order they must be applied."""
    if not directory.is_dir():
        raise ImportRefused(f"{directory} is not a directory")
    found: dict[str, Path] = {}
    unknown: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        stem, suffix = path.stem, path.suffix.lower()
        if suffix not in SUFFIXES or stem not in BY_NAME:
            unknown.append(path.name)
            continue
        if stem in found:
            raise ImportRefused(
                f"both {found[stem].name} and {path.name} are present; keep one of them"
            )
        found[stem] = path
    if unknown:
        names = ", ".join(f"{s.name}.csv" for s in SPECS)
        raise ImportRefused(
            f"unknown file {unknown[0]!r} in {directory}; the interchange format has {names} "
            "(or .parquet). Nothing was imported."
        )
    return [(s.name, found[s.name]) for s in SPECS if s.name in found]


ProgressHook = Callable[[str, str], None]  # (file, stage)


def import_directory(
    engine: Engine,
    directory: Path,
    *,
    brand_id: int,
    timezone: str,
    k_guard: int,
    report_dir: Path,
    progress: ProgressHook | None = None,
) -> ImportSummary:
    files = discover(directory)
    duck = duckdb.connect()
    duck.execute(f"SET TimeZone = '{_safe_tz(timezone)}'")
    duck.execute("SET preserve_insertion_order = true")
    duck.execute(DUCKDB_MACROS)
    ring = pii.keyring(engine)
    duck.execute(ring.duckdb_macros())  # siyu_lookup_hash: phones and emails leave hashed
    summary = ImportSummary()
    now = datetime.now(UTC)
    for name, path in files:
        spec = BY_NAME[name]
        result = FileResult(path.name)
        summary.files.append(result)
        notify = progress or (lambda _f, _s: None)
        try:
            notify(path.name, "reading")
            loaded = load(duck, path, spec)
            result.read = loaded.rows + len(loaded.structural_rejects)
            with engine.begin() as conn:
                erased = loaders.load_ref_maps(duck, conn, brand_id)
                notify(path.name, "validating")
                checks = loaders.ref_checks(spec)
                if erased:  # no hashing of every value while the erasure list is empty
                    checks += loaders.erasure_checks(spec)
                ok = validate(duck, loaded, spec, checks, path.name)
                protect.hash_columns(duck, ok, spec)
                notify(path.name, "storing")
                applied = loaders.APPLY[name](
                    loaders.Context(
                        duck=duck,
                        conn=conn,
                        brand_id=brand_id,
                        now=now,
                        source=ok,
                        spec=spec,
                        ring=ring,
                    )  # fmt: skip
                )
                if name == "stores":
                    org_service.sync_org_tree(conn, brand_id=brand_id)
            for line, column, value, reason in applied.late_rejects:
                duck.execute(
                    "INSERT INTO siyu_import_rejects VALUES (?, ?, ?, ?, ?, 'row rejected')",
                    [path.name, line, column, value, reason],
                )
            result.inserted, result.updated = applied.inserted, applied.updated
        except FileUnreadable as e:
            result.error = str(e)
            continue
        counts = duck.execute(
            "SELECT count(DISTINCT line) FILTER (WHERE action = 'row rejected'), "
            "count(*) FILTER (WHERE action = 'value dropped') FROM siyu_import_rejects WHERE file = ?",
            [path.name],
        ).fetchone()
        assert counts is not None
        result.rejected, result.values_dropped = int(counts[0]), int(counts[1])
        notify(path.name, "done")
    notify = progress or (lambda _f, _s: None)
    notify("identity", "resolving")
    summary.identity = identity_service.resolve(engine, brand_id=brand_id, k_guard=k_guard)
    with engine.begin() as conn:  # order.paid, member.joined, referral.completed for SOPs
        summary.events = fact_events.emit(conn, brand_id=brand_id, since=now, now=now)
    summary.reject_report = _write_rejects(duck, report_dir, now)
    return summary


def _write_rejects(duck: duckdb.DuckDBPyConnection, report_dir: Path, now: datetime) -> Path | None:
    exists = duck.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'siyu_import_rejects'"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    rows = duck.execute(
        'SELECT file, line, "column", value, reason, action FROM siyu_import_rejects '
        "ORDER BY file, line"
    ).fetchall()
    if not rows:
        return None
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"rejects-{now.strftime('%Y%m%dT%H%M%SZ')}.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # BOM: opens right in Excel
        writer = csv.writer(f)
        writer.writerow(["file", "line", "column", "value", "reason", "action"])
        writer.writerows(rows)
    return path


def _safe_tz(tz: str) -> str:
    from zoneinfo import ZoneInfo

    ZoneInfo(tz)  # raises for an unknown zone before it reaches SQL
    return tz.replace("'", "")
