"""`POST /api/v1/ingest`: rows of the interchange format (DATA_FORMAT.md) from an integration —
a POS or mini-program mall sending its orders, a CRM sending records — through exactly the path
of `siyu import`: the same validation and rejects, the same upsert by natural key (so a retried
batch changes nothing, and a refund row updates its order), and the identity pass after it."""

from __future__ import annotations

import csv
import tempfile
import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends
from fastapi.concurrency import run_in_threadpool

from siyu.api_errors import ApiError
from siyu.app import AppContext, context, needs
from siyu.auth.principal import Principal
from siyu.imports import service as import_service
from siyu.imports.reader import FileUnreadable
from siyu.imports.specs import BY_NAME

router = APIRouter(tags=["ingest"])

MAX_ROWS = 10_000  # per file per request
_one_at_a_time = threading.Lock()  # one import at a time per process, as the CLI does

EXAMPLE = {
    "orders": [
        {"order_id": "POS-20251101-0001", "platform": "pos", "store_id": "S001",
         "id_type": "phone", "id_value": "13800138000", "created_at": "2025-11-01 08:31:00",
         "amount_fen": 2800, "status": "paid"},
    ],
    "order_items": [
        {"order_id": "POS-20251101-0001", "sku": "LATTE-M", "qty": 1, "amount_fen": 2800},
    ],
}  # fmt: skip


def _check(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The request's shape, refused as a whole (nothing stored) with the field named."""
    if not isinstance(body, dict) or not body:
        raise ApiError(422, "invalid", "send an object of file name → list of rows")
    for name, rows in body.items():
        spec = BY_NAME.get(name)
        if spec is None:
            raise ApiError(422, "invalid", f"unknown file {name!r}; one of {', '.join(BY_NAME)}",
                           name)  # fmt: skip
        if not isinstance(rows, list) or not rows:
            raise ApiError(422, "invalid", "a non-empty list of rows", name)
        if len(rows) > MAX_ROWS:
            raise ApiError(413, "too_large", f"at most {MAX_ROWS} rows per file per request",
                           name)  # fmt: skip
        known = set(spec.column_names)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise ApiError(422, "invalid", "each row is an object", f"{name}[{i}]")
            for col, value in row.items():
                if col not in known:
                    raise ApiError(422, "invalid", f"unknown column {col!r}; columns are "
                                   f"{', '.join(spec.column_names)}", f"{name}[{i}].{col}")  # fmt: skip
                if isinstance(value, dict | list):
                    raise ApiError(422, "invalid", "a column holds a string, number or null",
                                   f"{name}[{i}].{col}")  # fmt: skip
    return body


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ingest_rows(ctx: AppContext, body: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Write the rows as interchange files in a scratch directory and import it."""
    with tempfile.TemporaryDirectory(prefix="siyu-ingest-") as tmp, _one_at_a_time:
        folder = Path(tmp)
        for name, rows in body.items():
            columns = BY_NAME[name].column_names
            with (folder / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
                out = csv.writer(f)
                out.writerow(columns)
                out.writerows([_cell(r.get(c)) for c in columns] for r in rows)
        try:
            summary = import_service.import_directory(
                ctx.engine, folder, brand_id=ctx.brand_id, timezone=ctx.settings.timezone,
                k_guard=ctx.settings.k_guard, report_dir=folder / "rejects",
            )  # fmt: skip
        except (import_service.ImportRefused, FileUnreadable) as e:
            raise ApiError(422, "invalid", str(e)) from None
        rejects = []
        if summary.reject_report is not None:
            with summary.reject_report.open(encoding="utf-8-sig", newline="") as f:
                for r in csv.DictReader(f):
                    rejects.append({
                        "file": r["file"].removesuffix(".csv"), "row": int(r["line"]) - 2,
                        "column": r["column"] or None, "value": r["value"] or None,
                        "reason": r["reason"], "action": r["action"],
                    })  # fmt: skip
    identity = summary.identity
    return {
        "files": {
            f.file.removesuffix(".csv"): {"received": f.read, "inserted": f.inserted,
                                          "updated": f.updated, "unchanged": f.unchanged,
                                          "rejected": f.rejected}  # fmt: skip
            for f in summary.files
        },
        "rejects": rejects,
        "events": summary.events,
        "customers": None if identity is None else {
            "created": identity.created, "merged": identity.merged, "live": identity.customers,
        },
    }  # fmt: skip


@router.post(
    "/ingest",
    summary="Rows of the interchange format, imported exactly like `siyu import`",
    description=(
        "The body maps interchange file names (DATA_FORMAT.md: orders, order_items, records, "
        "connections, memberships, interactions, …) to lists of rows, at most 10,000 per file. "
        "Files are applied in dependency order, then identity resolution runs. Re-sending a "
        "batch is safe: rows are upserted by their natural key, so a retry reports them "
        "unchanged. A bad row is rejected alone (`rejects[]`: file, row index, column, reason); "
        "the good rows are kept."
    ),
)
async def ingest(
    body: dict[str, Any] = Body(..., examples=[EXAMPLE]),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("ingest")),
) -> dict[str, Any]:
    if not who.whole_brand:
        # Interchange rows name stores, staff and records brand-wide; a store's token would
        # need row-by-row checks this endpoint does not make.
        raise ApiError(403, "forbidden", f"a {who.role} token of {who.org_unit} cannot ingest "
                       "interchange rows; issue a brand-wide (HQ role) token", "role")  # fmt: skip
    return await run_in_threadpool(ingest_rows, ctx, _check(body))
