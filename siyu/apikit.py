"""What every list endpoint of /api/v1 shares: limit/offset paging with the total."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Engine, Select, func, select


@dataclass(frozen=True)
class Paging:
    limit: int
    offset: int

    def page(self, items: list[Any], total: int) -> dict[str, Any]:
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


def paging(
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page")] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9, description="Items to skip")] = 0,
) -> Paging:
    return Paging(limit, offset)


def listing(engine: Engine, stmt: Select[Any], paging: Paging) -> dict[str, Any]:
    """One page of `stmt`'s rows (as objects keyed by column label) and its total."""
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = conn.execute(stmt.limit(paging.limit).offset(paging.offset)).mappings().all()
    return paging.page([dict(r) for r in rows], int(total))
