"""Reading one interchange file into DuckDB as text, with the file line of every row.

A file that cannot be read as a whole (encoding, header, a damaged Parquet file) raises
FileUnreadable and nothing of it is stored; row-level problems are left to validation.
"""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from siyu.imports.specs import FileSpec

CHUNK = 1 << 20


class FileUnreadable(Exception):
    """The whole file is refused; the message names the file and what to do."""


@dataclass(frozen=True)
class LoadedFile:
    table: str  # DuckDB table: _line BIGINT plus every column of the header as VARCHAR
    columns: tuple[str, ...]
    rows: int
    encoding: str  # utf-8, utf-8-sig, gb18030 or parquet
    structural_rejects: list[tuple[int, str, str]]  # (line, column, reason)


def detect_encoding(path: Path) -> str:
    """utf-8, utf-8-sig or gb18030; a file mixing UTF-8 and GB18030 lines is refused."""
    with path.open("rb") as f:
        head = f.read(3)
        if head == codecs.BOM_UTF8:
            return _check_utf8(path, skip=3, label="utf-8-sig")
    try:
        return _check_utf8(path, skip=0, label="utf-8")
    except UnicodeDecodeError:
        pass
    first_bad, saw_utf8_multibyte = _scan_lines(path)
    if saw_utf8_multibyte:
        raise FileUnreadable(
            f"{path.name}: mixed encodings — line {saw_utf8_multibyte} is UTF-8 but line "
            f"{first_bad} is not. Save the whole file in one encoding (UTF-8 preferred)."
        )
    try:
        with path.open("rb") as f:
            dec = codecs.getincrementaldecoder("gb18030")(errors="strict")
            while chunk := f.read(CHUNK):
                dec.decode(chunk)
            dec.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise FileUnreadable(
            f"{path.name}: neither UTF-8 nor GB18030 (line {first_bad}: {e.reason}). "
            "Save the file as UTF-8."
        ) from None
    return "gb18030"


def _check_utf8(path: Path, *, skip: int, label: str) -> str:
    dec = codecs.getincrementaldecoder("utf-8")(errors="strict")
    with path.open("rb") as f:
        f.seek(skip)
        while chunk := f.read(CHUNK):
            dec.decode(chunk)
        dec.decode(b"", final=True)
    return label


def _scan_lines(path: Path) -> tuple[int, int]:
    """(first line that is not UTF-8, first non-ASCII line that is UTF-8 or 0)."""
    first_bad = 0
    first_utf8 = 0
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
                first_utf8 = first_utf8 or number
            except UnicodeDecodeError:
                first_bad = first_bad or number
            if first_bad and first_utf8:
                break
    return first_bad, first_utf8


def read_header(path: Path, encoding: str) -> list[str]:
    with path.open(encoding=encoding, newline="") as f:
        first = f.readline()
    if not first.strip():
        raise FileUnreadable(f"{path.name}: the file is empty — expected a header row.")
    header = next(csv.reader(io.StringIO(first)))
    return [h.strip() for h in header]


def check_header(path: Path, header: list[str], spec: FileSpec) -> None:
    unknown = [h for h in header if h not in spec.column_names]
    if unknown:
        raise FileUnreadable(
            f"{path.name}: unknown column {unknown[0]!r} in the header; "
            f"{spec.name} takes {', '.join(spec.column_names)}."
        )
    seen: set[str] = set()
    for h in header:
        if h in seen:
            raise FileUnreadable(f"{path.name}: column {h!r} appears twice in the header.")
        seen.add(h)
    missing = [c for c in spec.required if c not in header]
    if missing:
        raise FileUnreadable(
            f"{path.name}: required column {missing[0]!r} is missing from the header."
        )


def load(con: duckdb.DuckDBPyConnection, path: Path, spec: FileSpec) -> LoadedFile:
    table = f"raw_{spec.name}"
    if path.suffix.lower() == ".parquet":
        return _load_parquet(con, path, spec, table)
    return _load_csv(con, path, spec, table)


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, spec: FileSpec, table: str) -> LoadedFile:
    if path.stat().st_size == 0:
        raise FileUnreadable(f"{path.name}: the file is empty — expected a header row.")
    encoding = detect_encoding(path)
    header = read_header(path, encoding)
    check_header(path, header, spec)
    source = path
    tmp: tempfile._TemporaryFileWrapper[bytes] | None = None
    if encoding == "gb18030":  # DuckDB reads UTF-8: transcode once, streaming
        tmp = tempfile.NamedTemporaryFile(suffix=".csv", delete=False)
        with (
            path.open(encoding="gb18030", newline="") as src,
            open(tmp.name, "w", encoding="utf-8", newline="") as dst,
        ):
            while chunk := src.read(CHUNK):
                dst.write(chunk)
        source = Path(tmp.name)
    columns = {h: "VARCHAR" for h in header}
    try:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("DROP TABLE IF EXISTS siyu_rejects; DROP TABLE IF EXISTS siyu_reject_scans")
        con.execute(
            f"CREATE TABLE {table}_in AS SELECT * FROM read_csv($path, header=true, "
            "auto_detect=false, delim=',', quote='\"', escape='\"', columns=$columns, "
            "store_rejects=true, rejects_table='siyu_rejects', rejects_scan='siyu_reject_scans')",
            {"path": str(source), "columns": columns},
        )
        rejects = con.execute(
            "SELECT line, coalesce(column_name, ''), error_type, error_message "
            "FROM siyu_rejects ORDER BY line"
        ).fetchall()
    except duckdb.Error as e:
        raise FileUnreadable(f"{path.name}: cannot be read as CSV ({_first_line(e)}).") from None
    finally:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)
    structural = [
        (int(line), col, _structural_reason(kind, msg)) for line, col, kind, msg in rejects
    ]
    _number_lines(con, table, sorted({r[0] for r in structural}))
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    return LoadedFile(table, tuple(header), rows, encoding, structural)


def _number_lines(con: duckdb.DuckDBPyConnection, table: str, reject_lines: list[int]) -> None:
    """Give each accepted row its file line: row index + 2, shifted past refused lines."""
    # Row i sits at line i + 2 + (refused lines before it). Build (first index, shift) segments.
    if not reject_lines:
        con.execute(f"CREATE TABLE {table} AS SELECT rowid + 2 AS _line, * FROM {table}_in")
        con.execute(f"DROP TABLE {table}_in")
        return
    segments: list[tuple[int, int]] = [(0, 0)]
    for shift, line in enumerate(reject_lines, start=1):
        segments.append((line - 2 - shift + 1, shift))
    con.execute("DROP TABLE IF EXISTS siyu_line_shift")
    con.execute(
        "CREATE TEMP TABLE siyu_line_shift AS SELECT unnest($f::BIGINT[]) AS first_idx, "
        "unnest($s::BIGINT[]) AS shift",
        {"f": [f for f, _ in segments], "s": [s for _, s in segments]},
    )
    # Each row takes the shift of the last segment starting at or before it (an as-of join).
    con.execute(
        f"CREATE TABLE {table} AS SELECT r.rowid + 2 + s.shift AS _line, r.* "
        f"FROM {table}_in r ASOF JOIN siyu_line_shift s ON r.rowid >= s.first_idx "
        "ORDER BY r.rowid"
    )
    con.execute(f"DROP TABLE {table}_in")


def _structural_reason(kind: str, message: str) -> str:
    return {
        "MISSING COLUMNS": "too few fields on this line",
        "TOO MANY COLUMNS": "too many fields on this line",
        "UNQUOTED VALUE": "a quote in an unquoted field",
        "LINE SIZE OVER MAXIMUM": "line too long",
        "INVALID UNICODE": "not valid UTF-8",
    }.get(kind, message)


def _load_parquet(
    con: duckdb.DuckDBPyConnection, path: Path, spec: FileSpec, table: str
) -> LoadedFile:
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT name FROM parquet_schema($p) WHERE num_children IS NULL", {"p": str(path)}
            ).fetchall()
        ]
        check_header(path, names, spec)
        casts = ", ".join(f'CAST("{n}" AS VARCHAR) AS "{n}"' for n in names)
        con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(
            f"CREATE TABLE {table} AS SELECT row_number() OVER () AS _line, {casts} "
            "FROM read_parquet($p)",
            {"p": str(path)},
        )
    except duckdb.Error as e:
        raise FileUnreadable(
            f"{path.name}: not a readable Parquet file ({_first_line(e)}); re-export it."
        ) from None
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
    return LoadedFile(table, tuple(names), rows, "parquet", [])


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]
