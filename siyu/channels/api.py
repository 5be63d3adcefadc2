"""`/api/v1/channels`: acquisition channels (SPEC §3, §5.2); their figures are in /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from siyu.apikit import Paging, listing, paging
from siyu.app import AppContext, context, needs
from siyu.channels.models import Channel

router = APIRouter(tags=["directory"], dependencies=[Depends(needs("read"))])


@router.get("/channels", summary="Channels: code, name, type")
async def channels(
    page: Paging = Depends(paging), ctx: AppContext = Depends(context)
) -> dict[str, Any]:
    c = Channel.__table__.c
    stmt = select(c.code, c.name, c.type).where(c.brand_id == ctx.brand_id).order_by(c.code)
    return await run_in_threadpool(listing, ctx.engine, stmt, page)
