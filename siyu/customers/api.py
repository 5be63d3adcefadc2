"""`/api/v1/customers`: search and the customer 360 for integrations (a CRM screen, a POS member
lookup). The same service functions as the console; every answer holding personal data is
written to the audit log as read by the token's integration."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool

from siyu import pii
from siyu.api_errors import ApiError
from siyu.app import AppContext, Caller, caller, context
from siyu.audit import service as audit
from siyu.customers import service as customers

router = APIRouter(tags=["customers"])


@router.get("/customers", summary="Find customers by phone, name, identifier or id")
async def search(
    q: Annotated[str, Query(min_length=1, max_length=200,
                            description="Phone (whole or last 4+ digits), name, type:value or id")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ctx: AppContext = Depends(context),
    who: Caller = Depends(caller),
) -> dict[str, Any]:  # fmt: skip
    def work() -> dict[str, Any]:
        me = who.principal
        with ctx.engine.begin() as conn:
            hits = customers.search(conn, principal=me, query=q, limit=limit)
            if hits:
                audit.record(
                    conn, brand_id=ctx.brand_id, actor=me.actor, action="pii.read",
                    target="customer-search",
                    detail={"query": pii.redact(q), "customers": [h.id for h in hits]},
                )  # fmt: skip
        return {"items": [asdict(h) for h in hits], "total": len(hits), "limit": limit}

    return await run_in_threadpool(work)


@router.get("/customers/{key}", summary="One customer's 360: identities and why they merged, "
            "connections, order totals and latest orders")  # fmt: skip
async def customer_360(
    key: Annotated[str, Path(description="Customer id or type:value, e.g. phone:13800138000")],
    orders: Annotated[int, Query(ge=0, le=200, description="Latest orders to include")] = 20,
    ctx: AppContext = Depends(context),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        me = who.principal
        with ctx.engine.begin() as conn:
            try:
                view = customers.get_readable_view_or_raise(conn, principal=me, key=key)
            except customers.CustomerNotFound as e:
                raise ApiError(404, "not_found", str(e), "key") from None
            latest = customers.orders(
                conn, brand_id=ctx.brand_id, customer_id=view.id, store_ids=None, limit=orders
            )
            audit.record(
                conn, brand_id=ctx.brand_id, actor=me.actor, action="pii.read",
                target=f"customer:{view.id}", detail={"api": "customer-360"},
            )  # fmt: skip
        return _as_json(view, latest)

    return await run_in_threadpool(work)


def _as_json(view: customers.CustomerView, latest: list[dict[str, Any]]) -> dict[str, Any]:
    totals = asdict(view.orders)
    return {
        "id": view.id,
        "redirected_from": view.redirected_from,
        "profile": {"name": view.name, "gender": view.gender, "city": view.city},
        "records": [
            {
                "id": r.id,
                "key": r.key,
                "source": r.source,
                "identifiers": [{"type": t, "value": v, "status": s} for t, v, s in r.identifiers],
            }
            for r in view.records
        ],  # fmt: skip
        "why_merged": [
            {"record": link.to, "shares": link.via, "with_record": link.frm} for link in view.links
        ],  # fmt: skip
        "not_merging": [{"identifier": f"{t}:{v}", "why": why} for t, v, why in view.not_merging],
        "connections": view.connections,
        "orders": {**totals, "latest": latest},
    }
