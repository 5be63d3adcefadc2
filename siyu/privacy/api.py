"""`GET /api/v1/customers/{key}/export` and `DELETE /api/v1/customers/{key}`: the PIPL export
and erasure of one customer, for an hq_admin token with the `pii` scope (and `write` to erase).
Any other role is answered as if the customer did not exist (404), and the refusal audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.concurrency import run_in_threadpool

from siyu.api_errors import ApiError
from siyu.app import AppContext, context, needs, not_found
from siyu.auth.principal import Principal
from siyu.privacy import service
from siyu.privacy.export import dumps
from siyu.warehouse.service import held

router = APIRouter(tags=["customers"])

Key = Annotated[str, Path(description="Customer id or type:value, e.g. phone:13800138000")]
PIPL_ROLE = "hq_admin"  # who answers PIPL requests (siyu.auth.principal.PII_ROLES)


@router.get(
    "/customers/{key}/export",
    summary="Everything held about one customer, as one JSON document (PIPL)",
    description="Identities and their sources, connections, orders and items, memberships, "
    "referrals, tags and their history, opt-outs, messages, events, segment stays and "
    "lifecycle snapshots. hq_admin tokens with the `read` and `pii` scopes; audited.",
)
async def export(
    key: Key, ctx: AppContext = Depends(context), who: Principal = Depends(needs("read", "pii"))
) -> Response:
    def work() -> str:
        if who.role != PIPL_ROLE:
            raise not_found(ctx, who, f"export:{key}", f"no customer {key}", "key")
        try:
            with held(ctx.settings) as con:
                doc = service.export(
                    ctx.engine, brand_id=ctx.brand_id, key=key, actor=who.actor, warehouse=con
                )
        except service.CustomerNotFound as e:
            raise ApiError(404, "not_found", str(e), "key") from None
        return dumps(doc)

    body = await run_in_threadpool(work)
    return Response(body, media_type="application/json")


@router.delete(
    "/customers/{key}",
    summary="Erase one customer's personal data (PIPL); their orders stay, anonymous",
    description="Deletes identities and personal fields, message contents and addresses, and "
    "blocks a re-import of the erased identifiers; every figure (GMV, retention, cohorts, "
    "repurchase) stays as it was. hq_admin tokens with the `write` and `pii` scopes; audited "
    "with the reason.",
)
async def erase(
    key: Key,
    reason: Annotated[str, Query(min_length=1, max_length=1000,
                                 description="Why, e.g. the person's request of 2025-11-01")],
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("write", "pii")),
) -> dict[str, Any]:  # fmt: skip
    def work() -> dict[str, Any]:
        if who.role != PIPL_ROLE:
            raise not_found(ctx, who, f"erase:{key}", f"no customer {key}", "key")
        try:
            done = service.erase(
                ctx.engine, brand_id=ctx.brand_id, key=key, reason=reason, actor=who.actor
            )
        except service.CustomerNotFound as e:
            raise ApiError(404, "not_found", str(e), "key") from None
        except service.ErasureError as e:
            status = 409 if e.field == "customer" else 422
            raise ApiError(
                status,
                "conflict" if status == 409 else "invalid",
                str(e).partition(": ")[2],
                "key" if status == 409 else e.field,
            ) from None
        return {
            "customer_id": done.customer_id,
            "erased_at": done.erased_at.isoformat(),
            "counts": done.counts,
        }

    return await run_in_threadpool(work)
