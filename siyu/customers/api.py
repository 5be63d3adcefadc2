"""`/api/v1/customers`: search and the customer 360 for integrations (a CRM screen, a POS member
lookup). The same service functions and the same scoping as the console: a token reads the
customers its role and org unit may read (others are 404, audited), with phones and names
masked unless its role has the right and it holds the `pii` scope; every unmasked answer is
written to the audit log as read by the token's integration."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool

from siyu import pii
from siyu.api_errors import ApiError
from siyu.app import AppContext, context, needs, not_found
from siyu.audit import service as audit
from siyu.auth.principal import OutOfScope, Principal
from siyu.customers import service as customers

router = APIRouter(tags=["customers"])


@router.get("/customers", summary="Find customers by phone, name, identifier or id")
async def search(
    q: Annotated[str, Query(min_length=1, max_length=200,
                            description="Phone (whole or last 4+ digits), name, type:value or id")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ctx: AppContext = Depends(context),
    me: Principal = Depends(needs("read")),
) -> dict[str, Any]:  # fmt: skip
    def work() -> dict[str, Any]:
        with ctx.engine.begin() as conn:
            hits = customers.search(conn, principal=me, query=q, limit=limit)
            if hits and me.sees_pii:
                audit.record(
                    conn, brand_id=ctx.brand_id, actor=me.actor, action="pii.read",
                    target="customer-search",
                    detail={"query": pii.redact(q), "customers": [h.id for h in hits]},
                )  # fmt: skip
        items = [asdict(h) for h in hits]
        if not me.sees_pii:
            for h in items:
                h["phone"], h["name"] = pii.mask_phone(h["phone"]), pii.mask_name(h["name"])
        return {"items": items, "total": len(hits), "limit": limit}

    return await run_in_threadpool(work)


@router.get("/customers/{key}", summary="One customer's 360: identities and why they merged, "
            "connections, order totals and latest orders")  # fmt: skip
async def customer_360(
    key: Annotated[str, Path(description="Customer id or type:value, e.g. phone:13800138000")],
    orders: Annotated[int, Query(ge=0, le=200, description="Latest orders to include")] = 20,
    ctx: AppContext = Depends(context),
    me: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with ctx.engine.begin() as conn:
            try:
                view = customers.get_readable_view_or_raise(conn, principal=me, key=key)
            except customers.CustomerNotFound as e:
                raise ApiError(404, "not_found", str(e), "key") from None
            except OutOfScope as e:
                conn.rollback()
                raise not_found(ctx, me, e.target, str(e), "key") from None
            latest = customers.orders(
                conn, brand_id=ctx.brand_id, customer_id=view.id, store_ids=me.store_ids,
                limit=orders,
            )  # fmt: skip
            if me.sees_pii:
                audit.record(
                    conn, brand_id=ctx.brand_id, actor=me.actor, action="pii.read",
                    target=f"customer:{view.id}", detail={"api": "customer-360"},
                )  # fmt: skip
        return _as_json(view, latest, unmasked=me.sees_pii)

    return await run_in_threadpool(work)


def _shown(id_type: str, value: str, unmasked: bool) -> str:
    """An identifier value as the caller may see it: phones masked without the right."""
    if unmasked or id_type != "phone":
        return value
    return pii.mask_phone(value) or value


def _as_json(
    view: customers.CustomerView, latest: list[dict[str, Any]], *, unmasked: bool
) -> dict[str, Any]:
    totals = asdict(view.orders)

    def via(key: str) -> str:
        ty, _, value = key.partition(":")
        return f"{ty}:{_shown(ty, value, unmasked)}"

    return {
        "id": view.id,
        "redirected_from": view.redirected_from,
        "erased_at": view.erased_at,
        "profile": {
            "name": view.name if unmasked else pii.mask_name(view.name),
            "gender": view.gender,
            "city": view.city,
        },  # fmt: skip
        "records": [
            {
                "id": r.id,
                # a reference record's key is its identifier (`ref:phone:+86…`)
                "key": "ref:" + via(r.key[4:]) if r.key.startswith("ref:") else r.key,
                "source": r.source,
                "identifiers": [
                    {"type": t, "value": _shown(t, v, unmasked), "status": s}
                    for t, v, s in r.identifiers
                ],
            }
            for r in view.records
        ],  # fmt: skip
        "why_merged": [
            {"record": link.to, "shares": via(link.via), "with_record": link.frm}
            for link in view.links
        ],  # fmt: skip
        "not_merging": [
            {"identifier": via(f"{t}:{v}"), "why": why} for t, v, why in view.not_merging
        ],  # fmt: skip
        "connections": view.connections,
        "orders": {**totals, "latest": latest},
    }
