"""Set-based validation of one loaded file in DuckDB: typed rows out, every problem reported.

Each check is a SQL condition with the column it blames and a sentence; a row with any failing
check is rejected (all its reasons reported), a bad identifier on a `records` row drops only
that value. Nothing here loops over rows in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from siyu.imports.reader import LoadedFile
from siyu.imports.specs import Col, FileSpec

ISO_TS = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?"
ISO_DATE = r"\d{4}-\d{2}-\d{2}"
WHOLE = r"[+-]?\d+"

REJECTS_DDL = """
CREATE TABLE IF NOT EXISTS siyu_import_rejects (
    file VARCHAR, line BIGINT, "column" VARCHAR, value VARCHAR, reason VARCHAR, action VARCHAR
)"""


@dataclass(frozen=True)
class Check:
    column: str
    condition: str  # SQL over the raw row: true when the value is bad
    reason: str  # SQL expression giving the sentence
    row_level: bool = True  # False: only the value is dropped, the row is kept
    shown: str | None = None  # SQL for the value the reject report shows; None: the raw value


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def raw(col: str) -> str:
    return f"nullif(trim({_q(col)}), '')"


def typed_expr(col: Col) -> str:
    t = raw(col.name)
    match col.kind:
        case "text" | "enum" | "id_type":
            return f"lower({t})" if col.kind in ("enum", "id_type") else t
        case "int" | "count" | "money" | "score":
            return f"TRY_CAST({t} AS BIGINT)"
        case "float":
            return f"TRY_CAST({t} AS DOUBLE)"
        case "timestamp":
            return f"(TRY_CAST(replace({t}, 'Z', '+00:00') AS TIMESTAMPTZ) AT TIME ZONE 'UTC')"
        case "date":
            return f"TRY_CAST({t} AS DATE)"
        case "identifier":
            return f"siyu_normalize_identifier({_lit(col.name)}, {t})"
    raise ValueError(f"unknown column kind {col.kind}")


def column_checks(col: Col) -> list[Check]:
    t = raw(col.name)
    checks: list[Check] = []
    if col.required:
        checks.append(Check(col.name, f"{t} IS NULL", _lit(f"{col.name} is required")))
    present = f"{t} IS NOT NULL AND "
    match col.kind:
        case "int" | "count" | "money" | "score":
            unit = " of fen" if col.kind == "money" else ""
            checks.append(
                Check(
                    col.name,
                    present + f"NOT regexp_full_match({t}, {_lit(WHOLE)})",
                    _lit(f"{col.name} is not a whole number{unit}"),
                )
            )
            if col.kind in ("count", "money"):
                checks.append(
                    Check(
                        col.name,
                        present + f"TRY_CAST({t} AS BIGINT) < 0",
                        _lit(f"{col.name} must not be negative"),
                    )
                )
            if col.kind == "score":
                checks.append(
                    Check(
                        col.name,
                        present + f"TRY_CAST({t} AS BIGINT) NOT BETWEEN 1 AND 5",
                        _lit(f"{col.name} must be between 1 and 5"),
                    )
                )
        case "float":
            checks.append(
                Check(
                    col.name,
                    present + f"TRY_CAST({t} AS DOUBLE) IS NULL",
                    _lit(f"{col.name} is not a number"),
                )
            )
            if col.lo is not None:
                checks.append(
                    Check(
                        col.name,
                        present + f"TRY_CAST({t} AS DOUBLE) NOT BETWEEN {col.lo} AND {col.hi}",
                        _lit(f"{col.name} must be between {col.lo:g} and {col.hi:g}"),
                    )
                )
        case "timestamp":
            checks.append(
                Check(
                    col.name,
                    present
                    + f"(NOT regexp_full_match({t}, {_lit(ISO_TS)}) OR {typed_expr(col)} IS NULL)",
                    _lit(
                        f"{col.name} is not an ISO 8601 timestamp (e.g. 2025-07-01T08:30:00+08:00)"
                    ),
                )
            )
        case "date":
            checks.append(
                Check(
                    col.name,
                    present
                    + f"(NOT regexp_full_match({t}, {_lit(ISO_DATE)}) OR {typed_expr(col)} IS NULL)",
                    _lit(f"{col.name} is not a date (YYYY-MM-DD)"),
                )
            )
        case "enum" | "id_type":
            allowed = ", ".join(_lit(v) for v in col.values)
            checks.append(
                Check(
                    col.name,
                    present + f"lower({t}) NOT IN ({allowed})",
                    _lit(f"{col.name} must be one of {' / '.join(col.values)}"),
                )
            )
        case "identifier":
            what = {"phone": "phone number", "email": "email address"}.get(col.name, col.name)
            checks.append(
                Check(
                    col.name,
                    present + f"{typed_expr(col)} IS NULL",
                    _lit(f"not a valid {what}; the record is kept without it"),
                    row_level=False,
                )
            )
    return checks


def ref_pair_checks(spec: FileSpec, prefix: str) -> list[Check]:
    """Checks of a (id_type, id_value) customer reference."""
    ty, va = raw(f"{prefix}id_type"), raw(f"{prefix}id_value")
    checks = [
        Check(
            f"{prefix}id_value",
            f"{ty} IS NOT NULL AND {va} IS NULL",
            _lit(f"{prefix}id_value is required when {prefix}id_type is given"),
        ),
        Check(
            f"{prefix}id_type",
            f"{ty} IS NULL AND {va} IS NOT NULL",
            _lit(f"{prefix}id_type is required when {prefix}id_value is given"),
        ),
        Check(
            f"{prefix}id_value",
            f"{ty} IS NOT NULL AND {va} IS NOT NULL "
            f"AND siyu_normalize_identifier(lower({ty}), {va}) IS NULL",
            f"'not a valid ' || lower({ty}) || ' value'",
        ),
    ]
    return checks


def ref_value(prefix: str) -> str:
    return (
        f"siyu_normalize_identifier(lower({raw(prefix + 'id_type')}), {raw(prefix + 'id_value')})"
    )


def validate(
    con: duckdb.DuckDBPyConnection,
    loaded: LoadedFile,
    spec: FileSpec,
    extra_checks: list[Check],
    file_label: str,
) -> str:
    """Create table ok_<file> of typed valid rows; append problems to siyu_import_rejects."""
    present = set(loaded.columns)
    missing = [c.name for c in spec.columns if c.name not in present]
    src = loaded.table
    if missing:  # absent optional columns read as empty
        adds = ", ".join(f"NULL::VARCHAR AS {_q(m)}" for m in missing)
        con.execute(f"CREATE OR REPLACE TABLE {src} AS SELECT *, {adds} FROM {src}")
    checks = [c for col in spec.columns for c in column_checks(col)]
    for prefix in spec.customer_refs:
        checks += ref_pair_checks(spec, prefix)
    checks += extra_checks

    def problem_list(row_level: bool) -> str:
        items = [
            f"CASE WHEN {c.condition} THEN struct_pack(col := {_lit(c.column)}, "
            f"val := CAST({c.shown or _q(c.column)} AS VARCHAR), why := {c.reason}) END"
            for c in checks
            if c.row_level == row_level
        ]
        if not items:
            return "[]::STRUCT(col VARCHAR, val VARCHAR, why VARCHAR)[]"
        return f"list_filter([{', '.join(items)}], lambda x: x IS NOT NULL)"

    typed = [f"{typed_expr(c)} AS {_q(c.name)}" for c in spec.columns]
    for prefix in spec.customer_refs:
        typed.append(f"{ref_value(prefix)} AS {_q(prefix + 'ref_value')}")
    con.execute(
        f"CREATE OR REPLACE TABLE chk_{spec.name} AS SELECT _line, {', '.join(typed)}, "
        f"{problem_list(True)} AS _errs, {problem_list(False)} AS _warns FROM {src}"
    )
    con.execute(REJECTS_DDL)
    con.execute(
        "INSERT INTO siyu_import_rejects SELECT $f, _line, e.col, e.val, e.why, 'row rejected' "
        f"FROM (SELECT _line, unnest(_errs) AS e FROM chk_{spec.name}) ORDER BY _line",
        {"f": file_label},
    )
    con.execute(
        "INSERT INTO siyu_import_rejects SELECT $f, _line, e.col, e.val, e.why, 'value dropped' "
        f"FROM (SELECT _line, unnest(_warns) AS e FROM chk_{spec.name} WHERE len(_errs) = 0) "
        "ORDER BY _line",
        {"f": file_label},
    )
    for line, col, why in loaded.structural_rejects:
        con.execute(
            "INSERT INTO siyu_import_rejects VALUES ($f, $l, $c, NULL, $w, 'row rejected')",
            {"f": file_label, "l": line, "c": col, "w": why},
        )
    con.execute(
        f"CREATE OR REPLACE TABLE ok_{spec.name} AS SELECT * EXCLUDE (_errs, _warns) "
        f"FROM chk_{spec.name} WHERE len(_errs) = 0"
    )
    reject_duplicates(con, spec, file_label)
    return f"ok_{spec.name}"


def key_expr(spec: FileSpec) -> list[str]:
    """The natural key as typed columns; a customer reference keys on its normalised value."""
    cols: list[str] = []
    for k in spec.key_columns:
        for prefix in spec.customer_refs:
            if k == f"{prefix}id_value":
                k = f"{prefix}ref_value"
        cols.append(_q(k))
    return cols


def reject_duplicates(con: duckdb.DuckDBPyConnection, spec: FileSpec, file_label: str) -> None:
    """A natural key twice in one file: later rows are rejected, naming the first line.

    Two documented exceptions (DATA_FORMAT.md): an order's later row may change only its
    status and refund (a refund arriving later), and a referral keeps the earliest touch.
    """
    table = f"ok_{spec.name}"
    key = ", ".join(key_expr(spec))
    if spec.name == "orders":
        _fold_order_updates(con, table, key, file_label)
        return
    order = "created_at, _line" if spec.name == "referrals" else "_line"
    reason = (
        "'not the first touch for this invitee (kept line ' || first_line || ')'"
        if spec.name == "referrals"
        else "'duplicate key, first at line ' || first_line"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE dup AS SELECT _line, "
        f"first_value(_line) OVER w AS first_line, row_number() OVER w AS rn "
        f"FROM {table} WINDOW w AS (PARTITION BY {key} ORDER BY {order})"
    )
    con.execute(
        f"INSERT INTO siyu_import_rejects SELECT $f, _line, {_lit(spec.key_columns[0])}, NULL, "
        f"{reason}, 'row rejected' FROM dup WHERE rn > 1 ORDER BY _line",
        {"f": file_label},
    )
    con.execute(f"DELETE FROM {table} WHERE _line IN (SELECT _line FROM dup WHERE rn > 1)")


def _fold_order_updates(
    con: duckdb.DuckDBPyConnection, table: str, key: str, file_label: str
) -> None:
    fixed = ["platform", "store_id", "id_type", "ref_value", "created_at", "amount_fen"]
    same = " AND ".join(f"{_q(c)} IS NOT DISTINCT FROM first_value({_q(c)}) OVER w" for c in fixed)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE dup AS SELECT _line, first_value(_line) OVER w AS first_line,"
        f" row_number() OVER w AS rn, count(*) OVER (PARTITION BY {key}) AS n, ({same}) AS same "
        f"FROM {table} WINDOW w AS (PARTITION BY {key} ORDER BY _line)"
    )
    con.execute(
        "INSERT INTO siyu_import_rejects SELECT $f, _line, 'order_id', NULL, "
        "'order_id repeats line ' || first_line || ' with different order details; a later row "
        "may only change status and refund_fen', 'row rejected' FROM dup WHERE rn > 1 AND NOT same",
        {"f": file_label},
    )
    con.execute(
        f"DELETE FROM {table} WHERE _line IN (SELECT _line FROM dup WHERE rn > 1 AND NOT same)"
    )
    # Keep the latest status of each order: the last remaining row per key.
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table} "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY _line DESC) = 1"
    )
