"""`/api/v1/stores`: the brand's stores with their location and LBS radius (SPEC §3, §10)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from siyu.apikit import Paging, listing, paging
from siyu.app import AppContext, context, needs
from siyu.auth.principal import Principal
from siyu.orgs.models import Store

router = APIRouter(tags=["directory"])


@router.get("/stores", summary="Stores: code, name, region, city, lat/lon, radius")
async def stores(
    page: Paging = Depends(paging),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    """The stores the token's org unit covers (every store for an HQ role)."""
    s = Store.__table__.c
    stmt = (
        select(s.code, s.name, s.region, s.city, s.lat, s.lon, s.radius_m)
        .where(s.brand_id == ctx.brand_id)
        .order_by(s.code)
    )
    if who.store_ids is not None:
        stmt = stmt.where(s.id.in_(who.store_ids))
    return await run_in_threadpool(listing, ctx.engine, stmt, page)
