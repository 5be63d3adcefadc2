"""`/api/v1/segments`: saved segments, live counts and members for integrations.

The same service and evaluation as `siyu segments` and the console's builder. Saved segments are
brand-wide definitions; who is counted is the caller's: a live count or member list runs the
rule within the customers the token's role and org unit may read (as the console does), and
a saved segment's `member_count` is the members at its last refresh among those customers
(the brand-wide count for an HQ token). Phones and names are masked unless the role has the
right and the token holds `pii`; every unmasked answer is audited as a `pii.read`. Defining,
changing and refreshing segments takes the `write` scope and a whole-brand (HQ) token.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from siyu.api_errors import ApiError
from siyu.apikit import Paging, paging
from siyu.app import AppContext, brand_wide_only, context, needs
from siyu.audit import service as audit
from siyu.auth.principal import Principal
from siyu.customers import service as customers
from siyu.metrics.scope import Scope
from siyu.segments import evaluate, service
from siyu.segments.models import Segment
from siyu.segments.rules import Node, RuleError, parse
from siyu.segments.service import SegmentError
from siyu.warehouse.service import synced

router = APIRouter(tags=["segments"])

# Days a rule can be evaluated as of (the start of, brand-local).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
MAX_SAMPLE = 100
AS_OF = "Evaluate as of the start of this day, YYYY-MM-DD, brand-local (default: now)"

Ref = Annotated[str, Path(min_length=1, max_length=200, description="Segment name or id")]
AsOf = Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description=AS_OF)]
Rule = Annotated[dict[str, Any], Field(description="A segment rule (`siyu segments fields`)")]


class CountRequest(BaseModel):
    rule: Rule
    as_of: date | None = Field(default=None, ge=FIRST_DAY, le=LAST_DAY, description=AS_OF)
    sample: int = Field(default=0, ge=0, le=MAX_SAMPLE, description="Members to show")


class NewSegment(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="Unique in the brand")
    rule: Rule
    description: str | None = Field(default=None, max_length=2000)


class NewRule(BaseModel):
    rule: Rule


def _parsed(rule: Any) -> Node:
    """The parsed rule; 422 naming the failing node (`rule.all[1].op`)."""
    try:
        return parse(rule)
    except RuleError as e:
        raise ApiError(422, "invalid", e.message, e.path) from None


def _segment(ctx: AppContext, ref: str) -> Segment:
    with ctx.engine.connect() as conn:
        try:
            return service.get_or_raise(conn, brand_id=ctx.brand_id, name_or_id=ref)
        except SegmentError as e:
            raise ApiError(404, "not_found", str(e), "segment") from None


def _as_json(seg: Segment, members: int | None) -> dict[str, Any]:
    return {
        "id": seg.id, "name": seg.name, "description": seg.description, "rule": seg.rule,
        "version": seg.version, "member_count": members, "refreshed_at": seg.refreshed_at,
        "updated_at": seg.updated_at,
    }  # fmt: skip


def _listed(ctx: AppContext, who: Principal, segs: list[Segment]) -> list[dict[str, Any]]:
    """Segments with their members at the last refresh that the caller may read."""
    within = customers.readable_customer_ids(who)
    if within is None:  # the whole brand: as recorded by the refresh
        return [_as_json(s, s.member_count if s.refreshed_at else None) for s in segs]
    with ctx.engine.connect() as conn:
        counts = service.current_members(conn, brand_id=ctx.brand_id, within=within)
    return [_as_json(s, counts.get(s.id, 0) if s.refreshed_at else None) for s in segs]


def _evaluate(
    ctx: AppContext, who: Principal, rule: Node, as_of: date | None, *, limit: int, offset: int,
    what: str,
) -> dict[str, Any]:  # fmt: skip
    """Count `rule` within the caller's customers and show `limit` of them after `offset`."""
    tz = ctx.settings.timezone
    at = datetime.now(ZoneInfo(tz)) if as_of is None else evaluate.day_start(as_of, tz)
    with ctx.engine.connect() as conn:
        ids = customers.readable_ids(conn, who)
    with synced(ctx.settings, ctx.engine, ctx.brand_id) as con:
        ev = evaluate.prepare(
            con, rule, scope=Scope(ctx.brand_id, tz), as_of=at,
            constants=ctx.settings.metric_constants,
        )  # fmt: skip
        ev = evaluate.within(con, ev, ids)
        n = evaluate.count(con, ev)
        rows = []
        if limit and offset < n:
            rows = evaluate.profiles(con, ev, limit=limit, offset=offset, pii=who.sees_pii)
    if rows and who.sees_pii:
        with ctx.engine.begin() as conn:
            audit.record(
                conn, brand_id=ctx.brand_id, user_id=who.audit_user_id, actor=who.actor,
                action="pii.read", target=what,
                detail={"api": what, "customers": [r["customer_id"] for r in rows]},
            )  # fmt: skip
    return {"count": n, "as_of": at.isoformat(), "snapshot": ev.snapshot, "members": rows}


@router.get("/segments", summary="Saved segments with their rule, version and members")
async def list_segments(
    page: Paging = Depends(paging),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    """`member_count`: the members at the last refresh among the customers the token may read
    (null before the first refresh)."""

    def work() -> dict[str, Any]:
        with ctx.engine.connect() as conn:
            segs = service.list_all(conn, brand_id=ctx.brand_id)
        shown = segs[page.offset : page.offset + page.limit]
        return page.page(_listed(ctx, who, shown), len(segs))

    return await run_in_threadpool(work)


@router.get("/segments/{segment}", summary="One saved segment")
async def get_segment(
    segment: Ref, ctx: AppContext = Depends(context), who: Principal = Depends(needs("read"))
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        return _listed(ctx, who, [_segment(ctx, segment)])[0]

    return await run_in_threadpool(work)


@router.post("/segments/count", summary="Count a rule live within the token's customers")
async def count(
    body: CountRequest, ctx: AppContext = Depends(context), who: Principal = Depends(needs("read"))
) -> dict[str, Any]:
    """Reads only; `sample` members (by customer id) are shown, masked without the PII right."""
    rule = _parsed(body.rule)

    def work() -> dict[str, Any]:
        found = _evaluate(ctx, who, rule, body.as_of, limit=body.sample, offset=0,
                          what="segment-preview")  # fmt: skip
        return {"count": found["count"], "as_of": found["as_of"], "snapshot": found["snapshot"],
                "sample": found["members"]}  # fmt: skip

    return await run_in_threadpool(work)


@router.get("/segments/{segment}/members", summary="A saved segment's members now, live")
async def members(
    segment: Ref,
    as_of: AsOf = None,
    page: Paging = Depends(paging),
    ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> dict[str, Any]:
    """The saved rule evaluated now (or as of a day) within the token's customers, by customer
    id — as `siyu segments preview NAME`; `refresh` records the same members."""

    def work() -> dict[str, Any]:
        seg = _segment(ctx, segment)
        found = _evaluate(ctx, who, _parsed(seg.rule), as_of, limit=page.limit,
                          offset=page.offset, what=f"segment:{seg.id}")  # fmt: skip
        return {**page.page(found["members"], found["count"]), "as_of": found["as_of"]}

    return await run_in_threadpool(work)


@router.post("/segments", status_code=201, summary="Save a rule as a new segment (HQ tokens)")
async def create(
    body: NewSegment, ctx: AppContext = Depends(context), who: Principal = Depends(needs("write"))
) -> dict[str, Any]:
    brand_wide_only(who, "segments")
    _parsed(body.rule)

    def work() -> dict[str, Any]:
        with ctx.engine.begin() as conn:
            if body.name in service.list_names(conn, brand_id=ctx.brand_id):
                raise ApiError(409, "conflict", f"a segment named {body.name!r} exists", "name")
            try:
                service.create(conn, brand_id=ctx.brand_id, name=body.name, rule=body.rule,
                               description=body.description)  # fmt: skip
            except SegmentError as e:  # a blank name
                raise ApiError(422, "invalid", str(e), "name") from None
        return _as_json(_segment(ctx, body.name), None)

    return await run_in_threadpool(work)


@router.put("/segments/{segment}", summary="Replace a segment's rule (HQ tokens)")
async def update_rule(
    segment: Ref, body: NewRule, ctx: AppContext = Depends(context),
    who: Principal = Depends(needs("write")),
) -> dict[str, Any]:  # fmt: skip
    """The version moves; members change at the next refresh."""
    brand_wide_only(who, "segments")
    _parsed(body.rule)

    def work() -> dict[str, Any]:
        seg = _segment(ctx, segment)
        with ctx.engine.begin() as conn:
            service.update_rule(conn, brand_id=ctx.brand_id, name=seg.name, rule=body.rule)
        return _listed(ctx, who, [_segment(ctx, str(seg.id))])[0]

    return await run_in_threadpool(work)


@router.post("/segments/{segment}/refresh", summary="Record a segment's members now (HQ tokens)")
async def refresh(
    segment: Ref, ctx: AppContext = Depends(context), who: Principal = Depends(needs("write"))
) -> dict[str, Any]:
    """As `siyu segments refresh NAME`: who entered and who left, with their events."""
    brand_wide_only(who, "segments")

    def work() -> dict[str, Any]:
        seg = _segment(ctx, segment)
        with synced(ctx.settings, ctx.engine, ctx.brand_id) as con:
            r = service.refresh(
                ctx.engine, con, scope=Scope(ctx.brand_id, ctx.settings.timezone),
                name=seg.name, constants=ctx.settings.metric_constants,
            )  # fmt: skip
        return {"segment": r.segment, "refresh": r.refresh_no, "members": r.members,
                "entered": r.entered, "exited": r.exited}  # fmt: skip

    return await run_in_threadpool(work)
