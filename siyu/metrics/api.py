"""`/api/v1/metrics`: the same report, comparison and cohorts as the CLI, as JSON."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from siyu.api_errors import ApiError
from siyu.app import AppContext, context, needs, not_found
from siyu.auth.principal import OutOfScope, Principal
from siyu.metrics import cohorts as cohort_tables
from siyu.metrics import compare as gmv_compare
from siyu.metrics.period import Period, PeriodError
from siyu.metrics.report import Runner, build
from siyu.metrics.scope import Scope, ScopeError, readable
from siyu.warehouse.service import synced

router = APIRouter(tags=["metrics"])

Day = Annotated[date, Query(description="YYYY-MM-DD, brand-local")]
Codes = Annotated[list[str] | None, Query()]


def _period(ctx: AppContext, start: date, end: date, prefix: str = "") -> Period:
    try:
        period = Period.parse(start.isoformat(), end.isoformat(), ctx.settings.timezone)
        period.check_started(datetime.now(ZoneInfo(ctx.settings.timezone)).date())
    except PeriodError as e:
        raise ApiError(422, "invalid", str(e).replace("--", prefix), prefix + e.field) from None
    return period


def _run(ctx: AppContext, who: Principal, stores: list[str] | None, regions: list[str] | None,
         channel: str | None, work: Any) -> Any:  # fmt: skip
    """Sync the warehouse, resolve the filters within the token's stores (a store or region
    outside them is 404, like one that does not exist), and run `work(con, scope)`."""
    with synced(ctx.settings, ctx.engine, ctx.brand_id) as con:
        try:
            scope = readable(con, who, ctx.settings.timezone, stores, regions, channel)
        except ScopeError as e:
            raise ApiError(422, "unknown", str(e), e.field) from None
        except OutOfScope as e:
            field = "region" if e.target.startswith("region:") else "store"
            raise not_found(ctx, who, e.target, str(e), field) from None
        return work(con, scope)


@router.get("/metrics", summary="The SPEC §5 metrics report (DATA_FORMAT.md)")
async def metrics(
    start: Annotated[date, Query(alias="from", description="First day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="Day after the last (exclusive)")],
    store: Codes = None,
    region: Codes = None,
    channel: str | None = None,
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    period = _period(ctx, start, end)
    constants = ctx.settings.metric_constants
    return await run_in_threadpool(
        _run, ctx, who, store, region, channel,
        lambda con, scope: build(con, scope, period, constants),
    )  # fmt: skip


@router.get("/metrics/compare", summary="GMV gap attribution between two periods (SPEC §5.6)")
async def compare(
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    vs_from: Annotated[date, Query(alias="vs_from")],
    vs_to: Annotated[date, Query(alias="vs_to")],
    store: Codes = None,
    region: Codes = None,
    channel: str | None = None,
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    current, baseline = _period(ctx, start, end), _period(ctx, vs_from, vs_to, "vs_")

    def work(con: Any, scope: Scope) -> dict[str, Any]:
        try:
            return gmv_compare.periods(con, scope, current, baseline, ("from/to", "vs_from/vs_to"))
        except gmv_compare.CompareError as e:
            raise ApiError(422, "not_comparable", str(e), None) from None

    return await run_in_threadpool(_run, ctx, who, store, region, channel, work)


@router.get("/cohorts", summary="First-connection cohort table (SPEC §5.3–5.5)")
async def cohorts(
    start: Annotated[date, Query(alias="from")],
    end: Annotated[date, Query(alias="to")],
    by: Annotated[str, Query(pattern="^(week|month)$")] = "month",
    metric: Annotated[str, Query(pattern="^(retention|conversion|repurchase)$")] = "retention",
    periods: Annotated[int, Query(ge=1, le=60)] = 12,
    store: Codes = None,
    region: Codes = None,
    channel: str | None = None,
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    period = _period(ctx, start, end)

    def work(con: Any, scope: Scope) -> dict[str, Any]:
        as_of_at = cohort_tables.data_end(con, ctx.brand_id)
        table = cohort_tables.build(
            Runner(con, scope, period), period, unit=by, metric=metric, periods=periods,
            as_of=as_of_at,
        )  # fmt: skip
        return table.as_json()

    return await run_in_threadpool(_run, ctx, who, store, region, channel, work)
