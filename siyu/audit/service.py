"""Writing and reading the audit log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select

from siyu.audit.models import ACTIONS, AuditLog


def record(
    conn: Connection,
    *,
    brand_id: int,
    actor: str,
    action: str,
    target: str,
    user_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry; `detail` is kept as JSON."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute(
        insert(AuditLog).values(
            brand_id=brand_id,
            user_id=user_id,
            actor=actor,
            action=action,
            target=target,
            detail=None if detail is None else json.dumps(detail, ensure_ascii=False),
        )
    )


def recent(conn: Connection, *, brand_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The latest entries, newest first."""
    rows = conn.execute(
        select(AuditLog.__table__)
        .where(AuditLog.brand_id == brand_id)
        .order_by(AuditLog.id.desc())
        .limit(limit)
    )
    return [
        {
            "at": r.created_at,
            "actor": r.actor,
            "action": r.action,
            "target": r.target,
            "detail": json.loads(r.detail) if r.detail else None,
        }
        for r in rows
    ]
