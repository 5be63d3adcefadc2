"""`/api/v1/stores`: the brand's stores with their location and LBS radius (SPEC §3, §10)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from siyu.apikit import Paging, listing, paging
from siyu.app import AppContext, context
from siyu.orgs.models import Store

router = APIRouter(tags=["directory"])


@router.get("/stores", summary="Stores: code, name, region, city, lat/lon, radius")
async def stores(
    page: Paging = Depends(paging), ctx: AppContext = Depends(context)
) -> dict[str, Any]:
    s = Store.__table__.c
    stmt = (
        select(s.code, s.name, s.region, s.city, s.lat, s.lon, s.radius_m)
        .where(s.brand_id == ctx.brand_id)
        .order_by(s.code)
    )
    return await run_in_threadpool(listing, ctx.engine, stmt, page)
