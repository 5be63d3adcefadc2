"""The PIPL requests as the CLI, the API and the console make them: resolve the customer,
do the work in one transaction, and write the audit log (SPEC §12) in the same one."""

from __future__ import annotations

from typing import Any

import duckdb
from sqlalchemy import Engine

from siyu.audit import service as audit
from siyu.customers.service import CustomerNotFound, resolve_key_or_raise
from siyu.privacy import erase as erasure
from siyu.privacy import export as exporter
from siyu.privacy.erase import Erased, ErasureError

__all__ = ["CustomerNotFound", "Erased", "ErasureError", "erase", "export"]


def export(
    engine: Engine, *, brand_id: int, key: str, actor: str, user_id: int | None = None,
    warehouse: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Everything held about the customer `key` names (an id or type:value); audited as an
    export. CustomerNotFound when the key names no one."""
    with engine.begin() as conn:
        customer_id, _ = resolve_key_or_raise(conn, brand_id=brand_id, key=key)
        doc = exporter.export(conn, brand_id=brand_id, customer_id=customer_id, warehouse=warehouse)
        audit.record(
            conn, brand_id=brand_id, user_id=user_id, actor=actor, action="export",
            target=f"customer:{customer_id}", detail={"what": "PIPL personal-data export"},
        )  # fmt: skip
    return doc


def erase(
    engine: Engine, *, brand_id: int, key: str, reason: str, actor: str,
    user_id: int | None = None,
) -> Erased:  # fmt: skip
    """Erase the customer `key` names, with the reason written to the audit log."""
    with engine.begin() as conn:
        customer_id, _ = resolve_key_or_raise(conn, brand_id=brand_id, key=key)
        done = erasure.erase(
            conn, brand_id=brand_id, customer_id=customer_id, reason=reason, actor=actor
        )
        audit.record(
            conn, brand_id=brand_id, user_id=user_id, actor=actor, action="erase",
            target=f"customer:{customer_id}",
            detail={"reason": reason.strip(), "counts": done.counts},
        )  # fmt: skip
    return done


def recollect(engine: Engine, *, brand_id: int, key: str, actor: str) -> int:
    """Lift the erasure block on `key` (fresh consent); audited."""
    from siyu.privacy import blocks

    with engine.begin() as conn:
        customer_id = blocks.recollect(conn, brand_id=brand_id, key=key)
        audit.record(
            conn, brand_id=brand_id, actor=actor, action="recollect",
            target=f"customer:{customer_id}", detail={"what": "erasure block lifted"},
        )  # fmt: skip
    return customer_id
