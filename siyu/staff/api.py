"""`/api/v1/staff`: guides, store managers and persona accounts (SPEC §3, §11)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from siyu.apikit import Paging, listing, paging
from siyu.app import AppContext, context, needs
from siyu.auth.principal import Principal
from siyu.orgs.models import Store
from siyu.staff.models import Staff

router = APIRouter(tags=["directory"])


@router.get("/staff", summary="Staff: code, name, store, persona, WeCom userid")
async def staff(
    store: Annotated[str | None, Query(description="Only this store's staff (store code)")] = None,
    page: Paging = Depends(paging),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    """Staff of the stores the token's org unit covers (a store outside them lists nobody,
    exactly like a store code that does not exist)."""
    t, s = Staff.__table__.c, Store.__table__.c
    stmt = (
        select(t.code, t.name, s.code.label("store"), t.persona, t.wecom_userid)
        .select_from(Staff.__table__.outerjoin(Store.__table__, s.id == t.store_id))
        .where(t.brand_id == ctx.brand_id)
        .order_by(t.code)
    )
    if store is not None:
        stmt = stmt.where(s.code == store)
    if who.store_ids is not None:
        stmt = stmt.where(t.store_id.in_(who.store_ids))
    return await run_in_threadpool(listing, ctx.engine, stmt, page)
