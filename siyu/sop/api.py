"""`/api/v1/sops`: the brand's SOPs with their delivery and conversion figures (SPEC §7, §5.16).

As the console's SOP list: definitions are the brand's, the figures count the journeys of the
customers the token may read (a store's or a guide's own, every journey for an HQ token).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection

from siyu.api_errors import ApiError
from siyu.apikit import Paging, paging
from siyu.app import AppContext, context, needs
from siyu.auth.principal import Principal
from siyu.sop import report as sop_report
from siyu.sop import service
from siyu.sop.definition import Definition, dump
from siyu.sop.models import Sop

router = APIRouter(tags=["sops"])

Key = Annotated[str, Path(min_length=1, max_length=64, description="The SOP's key")]


def _figures(r: sop_report.Report) -> dict[str, Any]:
    uplift = r.uplift
    return {
        "conversion_days": r.conversion_days, "enrolled": r.enrolled, "reached": r.reached,
        "delivered": r.delivered, "treated": r.treated, "treated_converted": r.treated_converted,
        "conversion": r.conversion, "holdout": r.holdout,
        "holdout_converted": r.holdout_converted, "holdout_conversion": r.holdout_conversion,
        "uplift": None if uplift is None else dict(zip(("value", "low", "high"), uplift,
                                                       strict=True)),
    }  # fmt: skip


def _as_json(
    conn: Connection, brand_id: int, sop: Sop, defn: Definition, within: set[int] | None
) -> dict[str, Any]:
    r = sop_report.report(conn, brand_id=brand_id, key=sop.key, within=within)
    return {
        "key": sop.key, "name": sop.name, "status": sop.status, "version": sop.version,
        "trigger": service.trigger_label(defn), "steps": len(defn.steps),
        "activated_at": sop.activated_at, "report": _figures(r),
    }  # fmt: skip


@router.get("/sops", summary="SOPs: trigger, steps, status, delivery and conversion")
async def list_sops(
    page: Paging = Depends(paging),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    """Figures over the journeys of the customers the token may read."""

    def work() -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            sops = service.list_all(conn, brand_id=ctx.brand_id)
            within = sop_report.readable_within(conn, who)
            items = [
                _as_json(
                    conn, ctx.brand_id, s, service.definition_of(conn, s.id, s.version), within
                )  # fmt: skip
                for s in sops[page.offset : page.offset + page.limit]
            ]
        return page.page(items, len(sops))

    return await run_in_threadpool(work)


@router.get("/sops/{key}", summary="One SOP: its current definition and its figures")
async def get_sop(
    key: Key, ctx: AppContext = Depends(context), who: Principal = Depends(needs("read"))
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            try:
                cur = service.get(conn, brand_id=ctx.brand_id, key=key)
            except service.SopError as e:
                raise ApiError(404, "not_found", str(e), "key") from None
            found = _as_json(
                conn, ctx.brand_id, cur.sop, cur.definition, sop_report.readable_within(conn, who)
            )
        return {**found, "definition": dump(cur.definition)}

    return await run_in_threadpool(work)
