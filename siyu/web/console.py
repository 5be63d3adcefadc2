"""Console pages: login, overview dashboard, cohorts, channels, customer search and 360,
segment builder.

Routes stay thin: each page asks the principal's readable scope of its domain
(siyu.metrics.scope.readable, siyu.customers.service.readable_customer_ids) and renders what
the domain services return. Something outside the scope is answered exactly like something
that does not exist (404) and written to the audit log; every display of unmasked personal
data is audited too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import duckdb
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from siyu import pii
from siyu.api_errors import error_body
from siyu.app import AppContext, context
from siyu.audit import service as audit
from siyu.auth import users
from siyu.auth.principal import OutOfScope, Principal
from siyu.customers import service as customers
from siyu.lifecycle import service as lifecycle
from siyu.metrics import cohorts as cohort_tables
from siyu.metrics import compare as gmv_compare
from siyu.metrics.period import Period, PeriodError
from siyu.metrics.report import LIFECYCLE_STAGES, Runner, build
from siyu.metrics.scope import Scope, ScopeError, readable
from siyu.orgs import service as orgs
from siyu.privacy import service as privacy
from siyu.privacy.export import dumps
from siyu.segments import evaluate
from siyu.segments.rules import FIELDS, RuleError, parse
from siyu.sop import report as sop_report
from siyu.sop import service as sop_service
from siyu.tags import service as tags
from siyu.warehouse import duck
from siyu.warehouse.service import held, synced
from siyu.web.i18n import LANGS, translate

HERE = Path(__file__).parent
COOKIE = "siyu_session"
LANG_COOKIE = "siyu_lang"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

EXAMPLE_RULES = {
    "dormant_buyers": {"all": [{"field": "lifecycle", "op": "eq", "value": "dormant"}]},
    "loyal_or_super": {
        "any": [
            {"field": "loyal", "op": "is", "value": True},
            {"field": "super_user", "op": "is", "value": True},
        ]
    },
    "shanghai_not_member": {
        "all": [
            {"field": "city", "op": "eq", "value": "上海"},
            {"not": {"field": "member", "op": "is", "value": True}},
        ]
    },
}


class LoginRequired(Exception):
    pass


class CsrfRejected(Exception):
    pass


def csrf_token(session: str) -> str:
    """The token every state-changing request of a session must carry (form field `csrf` or
    header X-CSRF-Token). It is derived from the session cookie, which is httponly: a page on
    another site can neither read the cookie nor compute the token."""
    return hashlib.sha256(b"siyu-csrf:" + session.encode()).hexdigest()[:40]


async def csrf_checked(request: Request) -> None:
    """Dependency of every POST made with a session (SameSite=Lax is the first line)."""
    session = request.cookies.get(COOKIE)
    if not session:
        return  # `current` answers with the login page
    sent = request.headers.get("X-CSRF-Token") or _form(await request.body()).get("csrf", "")
    if not hmac.compare_digest(sent, csrf_token(session)):
        raise CsrfRejected()


def _same_origin(request: Request) -> bool:
    """A login POST from another site (login CSRF) carries that site's Origin."""
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


def warehouse(ctx: AppContext) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The synced warehouse, opened for this request and closed after it."""
    return synced(ctx.settings, ctx.engine, ctx.brand_id)


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "zh")
    return lang if lang in LANGS else "zh"


def current(request: Request) -> Principal:
    """The logged-in user; a page without a live session sends the browser to /login."""
    token = request.cookies.get(COOKIE)
    if token:
        ctx = context(request)
        with ctx.engine.begin() as conn:
            user_id = users.session_user(conn, brand_id=ctx.brand_id, token=token)
            if user_id is not None:
                return users.principal(conn, user_id=user_id)
    raise LoginRequired()


def render(
    request: Request, template: str, principal: Principal | None, status: int = 200, **values: Any
) -> HTMLResponse:
    lang = lang_of(request)

    def t(key: str) -> str:
        return translate(lang, key)

    session = request.cookies.get(COOKIE)
    return templates.TemplateResponse(
        request,
        template,
        {"t": t, "lang": lang, "me": principal, "path": request.url.path,
         "csrf": csrf_token(session) if session and principal else "", **values},
        status_code=status,
    )  # fmt: skip


def deny(request: Request, principal: Principal, target: str) -> HTMLResponse:
    """Out of scope: audited, and answered as a plain 404 that reveals nothing."""
    ctx = context(request)
    with ctx.engine.begin() as conn:
        audit.record(
            conn, brand_id=ctx.brand_id, user_id=principal.user_id, actor=principal.actor,
            action="denied", target=target, detail={"path": request.url.path},
        )  # fmt: skip
    return render(request, "not_found.html", principal, status=404)


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/") and not value.startswith("//") else "/"


# --- login ----------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", None, next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    if not _same_origin(request):
        raise CsrfRejected()
    form = _form(await request.body())
    ctx = context(request)
    target = _safe_next(form.get("next"))

    def check() -> str | None:
        with ctx.engine.begin() as conn:
            user_id = users.authenticate(
                conn,
                brand_id=ctx.brand_id,
                username=form.get("username", "").strip(),
                password=form.get("password", ""),
            )
            return None if user_id is None else users.open_session(conn, user_id=user_id)

    token = await run_in_threadpool(check)
    if token is None:
        return render(
            request, "login.html", None, status=401, next=target, error="login_failed",
            username=form.get("username", ""),
        )  # fmt: skip
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="lax", max_age=users.SESSION_HOURS * 3600
    )
    return response


@router.post("/logout", dependencies=[Depends(csrf_checked)])
def logout(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        ctx = context(request)
        with ctx.engine.begin() as conn:
            users.close_session(conn, token=token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/lang/{code}")
def switch_language(code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(LANG_COOKIE, code if code in LANGS else "zh", samesite="lax")
    return response


# --- overview -------------------------------------------------------------------------------


def _default_period(con: duckdb.DuckDBPyConnection, ctx: AppContext) -> tuple[date, date]:
    """The 30 days up to the last order (or today, whichever is earlier): the pages are about
    sales, and a brand whose orders arrive late (or the demo, whose history ended before its
    live WeCom day today) would otherwise open on an empty month. Without orders: up to the
    end of the data."""
    tz = ZoneInfo(ctx.settings.timezone)
    today = datetime.now(tz).date()
    row = con.execute(
        "SELECT epoch_us(max(created_at)) FROM orders WHERE brand_id = $b", {"b": ctx.brand_id}
    ).fetchone()
    if row and row[0] is not None:
        end_at = datetime.fromtimestamp(row[0] / 1e6, UTC)
    else:
        end_at = cohort_tables.data_end(con, ctx.brand_id)
    last = end_at.astimezone(tz).date()
    end = min(today, last) + timedelta(days=1)
    return end - timedelta(days=30), end


@dataclass(frozen=True)
class Filters:
    """The period / region / store filter of the dashboard pages, as the query string gave it."""

    start: str | None
    end: str | None
    region: str | None
    store: str | None


def filters(
    start: str | None = Query(None, alias="from"),
    end: str | None = Query(None, alias="to"),
    region: str | None = None,
    store: str | None = None,
) -> Filters:
    return Filters(start, end, region, store)


def _filter_values(ctx: AppContext, me: Principal, f: Filters) -> dict[str, Any]:
    """What the period / region / store filter form (_filters.html) shows."""
    region, store = f.region, f.store
    with ctx.engine.begin() as conn:
        stores = orgs.list_stores(conn, brand_id=ctx.brand_id, store_ids=me.store_ids)
    regions = sorted({s["region"] for s in stores if s["region"]})
    return {"stores": stores, "regions": regions, "region": region or None,
            "store": store or None, "error": None}  # fmt: skip


def _period_and_scope(
    request: Request, me: Principal, con: duckdb.DuckDBPyConnection, page: str,
    values: dict[str, Any], f: Filters,
) -> tuple[Period, Scope] | HTMLResponse:  # fmt: skip
    """The filters' period (default: the 30 days up to the end of the data) and the principal's
    readable scope narrowed to the chosen region / store; or the page answering the bad input
    (422 naming the field) or the out-of-scope choice (404, audited)."""
    ctx = context(request)
    tz = ctx.settings.timezone
    default_start, default_end = _default_period(con, ctx)
    start, end = f.start, f.end
    try:
        period = Period.parse(start or default_start.isoformat(),
                              end or default_end.isoformat(), tz)  # fmt: skip
        period.check_started(datetime.now(ZoneInfo(tz)).date())
    except PeriodError as e:
        values.update(error=str(e).replace("--", ""), start=start, end=end)
        return render(request, page, me, status=422, **values)
    store, region = values["store"], values["region"]
    try:
        scope = readable(con, me, tz, [store] if store else None, [region] if region else None)
    except OutOfScope as e:
        return deny(request, me, e.target)
    except ScopeError as e:
        values.update(error=str(e), start=period.start_day, end=period.end_day)
        return render(request, page, me, status=422, **values)
    values.update(start=period.start_day, end=period.end_day)
    return period, scope


@router.get("/")
def overview(
    request: Request,
    f: Filters = Depends(filters),
    me: Principal = Depends(current),
) -> HTMLResponse:
    ctx = context(request)
    values = _filter_values(ctx, me, f) | {"report": None}
    with warehouse(ctx) as con:
        got = _period_and_scope(request, me, con, "overview.html", values, f)
        if isinstance(got, Response):
            return got
        period, scope = got
        report = build(con, scope, period, ctx.settings.metric_constants)
        length = period.end_day - period.start_day
        previous = Period(period.start_day - length, period.start_day, ctx.settings.timezone)
        comparison = _compare(con, scope, period, previous)
    values.update(
        previous=previous, report=report, comparison=comparison, stages=LIFECYCLE_STAGES,
        charts=json.dumps(_charts(report, comparison, lang_of(request)), ensure_ascii=False),
    )  # fmt: skip
    return render(request, "overview.html", me, **values)


CHANNEL_COLUMNS = ("channel", "reach", "connections", "rate", "acquired", "cost", "revenue",
                   "cac", "roi")  # fmt: skip


@router.get("/channels")
def channels(
    request: Request,
    f: Filters = Depends(filters),
    me: Principal = Depends(current),
) -> HTMLResponse:
    """Acquisition channels: reach and pass rate (SPEC §5.2), acquired, cost, attributed
    revenue, CAC and ROI (§5.7), from the same SQL files as the report."""
    ctx = context(request)
    values = _filter_values(ctx, me, f) | {"rows": None}
    with warehouse(ctx) as con:
        got = _period_and_scope(request, me, con, "channels.html", values, f)
        if isinstance(got, Response):
            return got
        runner = Runner(con, got[1], got[0], ctx.settings.metric_constants)
        names = dict(con.execute("SELECT code, name FROM v_channels").fetchall())
        by_code: dict[str, dict[str, Any]] = {}
        for row in runner.rows("pass_rate") + runner.rows("roi"):
            by_code.setdefault(row["channel"], dict.fromkeys(CHANNEL_COLUMNS)).update(row)
    values["rows"] = [{"name": names.get(code, code), **by_code[code]} for code in sorted(by_code)]
    return render(request, "channels.html", me, **values)


@router.get("/cohorts")
def cohorts(
    request: Request,
    f: Filters = Depends(filters),
    by: str = "month",
    metric: str = "retention",
    me: Principal = Depends(current),
) -> HTMLResponse:
    """First-connection cohorts × period offset (SPEC §5.3–5.5) as a heatmap; cells not yet
    observable stay blank."""
    ctx = context(request)
    values = _filter_values(ctx, me, f) | {
        "table": None, "by": by, "metric": metric, "units": cohort_tables.UNITS,
        "metrics": cohort_tables.METRICS,
    }  # fmt: skip
    with warehouse(ctx) as con:
        data_end = cohort_tables.data_end(con, ctx.brand_id)
        if not (f.start or f.end):  # default: the last six monthly / twelve weekly cohorts
            last = _default_period(con, ctx)[1]
            first = _unit_start(last - timedelta(days=1), by, back=5 if by == "month" else 11)
            f = replace(f, start=first.isoformat(), end=last.isoformat())
        got = _period_and_scope(request, me, con, "cohorts.html", values, f)
        if isinstance(got, Response):
            return got
        period, scope = got
        try:
            table = cohort_tables.build(
                Runner(con, scope, period, ctx.settings.metric_constants), period, unit=by,
                metric=metric, periods=_offsets(period.start_day, data_end, by, ctx),
                as_of=data_end,
            )  # fmt: skip
        except ValueError as e:
            values["error"] = str(e).replace("--", "")
            return render(request, "cohorts.html", me, status=422, **values)
    heatmap = table.as_json()
    for c in heatmap["cohorts"]:  # the cells' text, formatted exactly as the table's pct()
        c["labels"] = [None if v is None else "%.1f" % (v * 100) for v in c["values"]]
    values.update(table=table, charts=json.dumps({"heatmap": heatmap}))
    return render(request, "cohorts.html", me, **values)


def _compare(
    con: duckdb.DuckDBPyConnection, scope: Scope, current: Period, previous: Period
) -> dict[str, Any]:
    try:
        return gmv_compare.periods(
            con, scope, current, previous, ("this period", "previous period")
        )
    except gmv_compare.CompareError as e:
        return {"error": str(e)}


def _charts(report: dict[str, Any], comparison: dict[str, Any], lang: str) -> dict[str, Any]:
    """What siyu.js draws: the GMV waterfall and the lifecycle distribution."""
    out: dict[str, Any] = {
        "lifecycle": {
            "labels": [translate(lang, f"stage.{s}") for s in report["lifecycle"]],
            "values": list(report["lifecycle"].values()),
        }
    }
    if "factors" in comparison:
        steps = [(translate(lang, "previous_gmv"), comparison["gmv"]["baseline"] / 100)]
        for name, part in comparison["factors"].items():
            steps.append((translate(lang, name), part["contribution"] / 100))
        out["waterfall"] = {
            "steps": [{"label": label, "value": round(v, 2)} for label, v in steps],
            "total": {"label": translate(lang, "current_gmv"),
                      "value": round(comparison["gmv"]["current"] / 100, 2)},
        }  # fmt: skip
    return out


def _unit_start(day: date, unit: str, *, back: int = 0) -> date:
    """The first day of the week (Monday) or month holding `day`, `back` units earlier."""
    if unit == "week":
        return day - timedelta(days=day.weekday(), weeks=back)
    months = day.year * 12 + day.month - 1 - back
    return date(months // 12, months % 12 + 1, 1)


def _offsets(first: date, data_end: datetime, unit: str, ctx: AppContext) -> int:
    """Columns worth showing: offsets the earliest cohort can have observed (1–24)."""
    last = data_end.astimezone(ZoneInfo(ctx.settings.timezone)).date()
    if unit == "week":
        span = (last - first).days // 7
    else:
        span = (last.year - first.year) * 12 + last.month - first.month
    return max(1, min(24, span + 1))


# --- customers ------------------------------------------------------------------------------


def _shown(me: Principal, phone: str | None, name: str | None) -> tuple[str | None, str | None]:
    if me.sees_pii:
        return (phone[3:] if phone and phone.startswith("+86") else phone), name
    return pii.mask_phone(phone), pii.mask_name(name)


@router.get("/customers")
def customer_search(
    request: Request, q: str = "", me: Principal = Depends(current)
) -> HTMLResponse:
    ctx = context(request)
    hits: list[dict[str, Any]] = []
    if q.strip():
        with ctx.engine.begin() as conn:
            found = customers.search(conn, principal=me, query=q[:200])
            for h in found:
                phone, name = _shown(me, h.phone, h.name)
                hits.append({"id": h.id, "name": name, "phone": phone, "city": h.city,
                             "matched": h.matched})  # fmt: skip
            if found and me.sees_pii:
                audit.record(
                    conn, brand_id=ctx.brand_id, user_id=me.user_id, actor=me.actor,
                    action="pii.read", target="customer-search",
                    detail={"query": pii.redact(q[:200]), "customers": [h.id for h in found]},
                )  # fmt: skip
    page = "_search_results.html" if request.headers.get("HX-Request") else "customers.html"
    return render(request, page, me, q=q, hits=hits)


@router.get("/customers/{key}")
def customer_360(request: Request, key: str, me: Principal = Depends(current)) -> HTMLResponse:
    ctx = context(request)
    with ctx.engine.begin() as conn:
        try:
            view = customers.get_readable_view_or_raise(conn, principal=me, key=key)
        except customers.CustomerNotFound:
            return render(request, "not_found.html", me, status=404)
        except OutOfScope as e:
            conn.rollback()
            return deny(request, me, e.target)
        if not me.sees_pii:  # phones, emails, names and reference-record keys, masked
            view = customers.masked(view)
        order_rows = customers.orders(
            conn, brand_id=ctx.brand_id, customer_id=view.id, store_ids=me.store_ids, limit=20
        )
        tag_rows = tags.customer_tags(conn, customer_id=view.id)
        if me.sees_pii:
            audit.record(
                conn, brand_id=ctx.brand_id, user_id=me.user_id, actor=me.actor,
                action="pii.read", target=f"customer:{view.id}", detail={"page": "customer-360"},
            )  # fmt: skip
    identities = []
    for rec in view.records:
        for ty, val, status in rec.identifiers:
            shown = val
            if ty == "phone":
                shown = _shown(me, val, None)[0]
            identities.append({"record": _record_key(me, rec.key), "source": rec.source, "type": ty,
                               "value": shown, "status": status})  # fmt: skip
    masked_links = [
        {"frm": link.frm, "to": link.to, "via": _mask_via(me, link.via)} for link in view.links
    ]
    records = {r.id: _record_key(me, r.key) for r in view.records}
    with warehouse(ctx) as con:
        attributes = _lifecycle_of(con, ctx, view.id)
    return render(
        request, "customer.html", me, c=view, name=_shown(me, None, view.name)[1],
        identities=identities, links=masked_links, records=records, order_rows=order_rows,
        attributes=attributes, tag_rows=tag_rows, tz=ZoneInfo(ctx.settings.timezone),
        pipl=_answers_pipl(me),
    )  # fmt: skip


# --- PIPL: export and erase one customer (HQ admin only) ------------------------------------


def _answers_pipl(me: Principal) -> bool:
    """Who answers a person's PIPL request: the HQ admin (everyone else gets a 404)."""
    return me.role == "hq_admin" and me.kind == "user"


def _pipl_customer(request: Request, me: Principal, key: str) -> int | HTMLResponse:
    """The live customer `key` names, for an HQ admin; otherwise the page answering (404,
    audited for another role)."""
    if not _answers_pipl(me):
        return deny(request, me, f"pipl:{key}")
    ctx = context(request)
    with ctx.engine.begin() as conn:
        try:
            return customers.resolve_key_or_raise(conn, brand_id=ctx.brand_id, key=key)[0]
        except customers.CustomerNotFound:
            return render(request, "not_found.html", me, status=404)


@router.get("/customers/{key}/export")
def customer_export(request: Request, key: str, me: Principal = Depends(current)) -> Response:
    """Everything held about the customer as a JSON download (audited as an export)."""
    found = _pipl_customer(request, me, key)
    if isinstance(found, Response):
        return found
    ctx = context(request)
    with held(ctx.settings) as con:
        doc = privacy.export(
            ctx.engine, brand_id=ctx.brand_id, key=str(found), actor=me.actor,
            user_id=me.user_id, warehouse=con,
        )  # fmt: skip
    return Response(
        dumps(doc), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="customer-{found}.json"'},
    )  # fmt: skip


@router.get("/customers/{key}/erase")
def customer_erase_page(request: Request, key: str, me: Principal = Depends(current)) -> Response:
    """The confirmation page: what goes, what stays, the reason."""
    found = _pipl_customer(request, me, key)
    if isinstance(found, Response):
        return found
    return render(request, "erase.html", me, customer_id=found, error=None, reason="")


@router.post("/customers/{key}/erase", dependencies=[Depends(csrf_checked)])
async def customer_erase(request: Request, key: str, me: Principal = Depends(current)) -> Response:
    found = _pipl_customer(request, me, key)
    if isinstance(found, Response):
        return found
    form = _form(await request.body())
    reason = form.get("reason", "").strip()
    lang = lang_of(request)
    error = None
    if not reason:
        error = translate(lang, "erase_reason_required")
    elif form.get("confirm") != "yes":
        error = translate(lang, "erase_confirm_required")
    if error is None:
        ctx = context(request)
        try:
            await run_in_threadpool(
                privacy.erase, ctx.engine, brand_id=ctx.brand_id, key=str(found), reason=reason,
                actor=me.actor, user_id=me.user_id,
            )  # fmt: skip
        except privacy.ErasureError as e:
            error = str(e)
    if error is not None:
        return render(request, "erase.html", me, status=422, customer_id=found, error=error,
                      reason=reason)  # fmt: skip
    return RedirectResponse(f"/customers/{found}", status_code=303)


def _record_key(me: Principal, key: str) -> str:
    """A reference record's key is the identifier it stands for (`ref:phone:+86…`): masked
    like that identifier."""
    return "ref:" + _mask_via(me, key[4:]) if key.startswith("ref:") else key


def _mask_via(me: Principal, via: str) -> str:
    ty, _, value = via.partition(":")
    return f"{ty}:{_shown(me, value, None)[0]}" if ty == "phone" else via


def _lifecycle_of(
    con: duckdb.DuckDBPyConnection, ctx: AppContext, customer_id: int
) -> dict[str, Any] | None:
    """The customer's lifecycle stage, layer and RFM class as of the end of the data (as_of, for
    a live brand): from the daily pass's snapshot of that day, or computed for the brand now
    with the same SQL as `siyu lifecycle`."""
    as_of = _default_period(con, ctx)[1]
    lifecycle.ensure_table(con)
    row = con.execute(
        f"SELECT as_of, stage, value_layer, rfm_class, days_since FROM {lifecycle.SNAPSHOT} "
        "WHERE brand_id = ? AND customer_id = ? ORDER BY as_of DESC LIMIT 1",
        [ctx.brand_id, customer_id],
    ).fetchone()
    if row is None or row[0] != as_of:
        lifecycle.write_snapshot(
            con, scope=Scope(ctx.brand_id, ctx.settings.timezone), as_of=as_of,
            constants=ctx.settings.metric_constants,
        )  # fmt: skip
        row = con.execute(
            f"SELECT as_of, stage, value_layer, rfm_class, days_since FROM {lifecycle.SNAPSHOT} "
            "WHERE brand_id = ? AND customer_id = ? AND as_of = ?",
            [ctx.brand_id, customer_id, as_of],
        ).fetchone()
    if row is None:
        return None
    keys = ("as_of", "stage", "value_layer", "rfm_class", "days_since")
    # as_of is the start of the day after the data: shown as the last day it includes, as the
    # overview shows its period's end.
    return {**dict(zip(keys, row, strict=True)), "through": row[0] - timedelta(days=1)}


# --- SOPs -----------------------------------------------------------------------------------


@router.get("/sops")
def sop_list(request: Request, me: Principal = Depends(current)) -> HTMLResponse:
    """Every SOP with its delivery and conversion figures (SPEC §7, §5.16) — for a store or a
    guide, over the journeys of the customers they may read."""
    ctx = context(request)
    rows = []
    with ctx.engine.connect() as conn:
        within = sop_report.readable_within(conn, me)
        for sop in sop_service.list_all(conn, brand_id=ctx.brand_id):
            defn = sop_service.definition_of(conn, sop.id, sop.version)
            rows.append({"sop": sop, "trigger": sop_service.trigger_label(defn), "steps": len(defn.steps),
                         "r": sop_report.report(conn, brand_id=ctx.brand_id, key=sop.key,
                                                within=within)})  # fmt: skip
    return render(request, "sops.html", me, rows=rows)


# --- segments -------------------------------------------------------------------------------


def _data_through(con: duckdb.DuckDBPyConnection, ctx: AppContext) -> date:
    """The last day of the brand's data (today for a live brand): what the segment builder
    counts through by default, as the 360 page's lifecycle and the dashboards' period do."""
    return _default_period(con, ctx)[1] - timedelta(days=1)


def _through_instant(day: date, ctx: AppContext) -> datetime:
    """The instant a count "through `day`" is taken: the end of that day in the brand's zone,
    or now while that day is still running."""
    tz = ctx.settings.timezone
    return min(evaluate.day_start(day + timedelta(days=1), tz), datetime.now(ZoneInfo(tz)))


@router.get("/segments")
def segment_builder(request: Request, me: Principal = Depends(current)) -> HTMLResponse:
    ctx = context(request)
    examples = {k: json.dumps(v, ensure_ascii=False, indent=2) for k, v in EXAMPLE_RULES.items()}
    with warehouse(ctx) as con:
        through = _data_through(con, ctx)
    today = datetime.now(ZoneInfo(ctx.settings.timezone)).date()
    return render(
        request, "segments.html", me, examples=examples, fields=FIELDS,
        rule=examples["dormant_buyers"], through=through, today=today,
    )  # fmt: skip


@router.post("/segments/count", dependencies=[Depends(csrf_checked)])
async def segment_count(request: Request, me: Principal = Depends(current)) -> HTMLResponse:
    form = _form(await request.body())
    ctx = context(request)
    raw = form.get("rule", "")
    try:
        rule = parse(json.loads(raw))
    except json.JSONDecodeError as e:
        return render(request, "_count.html", me, status=422,
                      error=f"rule: not JSON — {e.msg} (line {e.lineno}, column {e.colno})")  # fmt: skip
    except RuleError as e:
        return render(request, "_count.html", me, status=422, error=str(e))
    day: date | None = None
    if form.get("through"):
        try:
            day = date.fromisoformat(form["through"])
        except ValueError:
            return render(request, "_count.html", me, status=422, error_key="bad_input",
                          error=f"through: {form['through']!r} is not a date (YYYY-MM-DD)")  # fmt: skip

    def work() -> dict[str, Any]:
        with ctx.engine.begin() as conn:
            ids = customers.readable_ids(conn, me)
        with warehouse(ctx) as con:
            through = day or _data_through(con, ctx)
            at = _through_instant(through, ctx)
            ev = evaluate.prepare(
                con, rule, scope=Scope(ctx.brand_id, ctx.settings.timezone), as_of=at,
                constants=ctx.settings.metric_constants,
            )  # fmt: skip
            ev = evaluate.within(con, ev, ids)
            n = evaluate.count(con, ev)
            sample = evaluate.profiles(con, ev, limit=10, pii=me.sees_pii)
        if sample and me.sees_pii:
            with ctx.engine.begin() as conn:
                audit.record(
                    conn, brand_id=ctx.brand_id, user_id=me.user_id, actor=me.actor,
                    action="pii.read", target="segment-preview",
                    detail={"customers": [r["customer_id"] for r in sample]},
                )  # fmt: skip
        for r in sample:
            if me.sees_pii and r["phone"] and str(r["phone"]).startswith("+86"):
                r["phone"] = str(r["phone"])[3:]
        # a day still running is counted as of now, and says so
        label = at.strftime("%Y-%m-%d %H:%M") if at.time() != dtime() else through.isoformat()
        return {"count": n, "sample": sample, "through": label}

    result = await run_in_threadpool(work)
    return render(request, "_count.html", me, error=None, **result)


# --- wiring ---------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _: LoginRequired) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(duck.WarehouseBusy)
    async def busy(request: Request, e: duck.WarehouseBusy) -> Response:
        """A command at a terminal holds the warehouse file past the wait: 503, retry later —
        the API's error shape under /api, a page for the console."""
        headers = {"Retry-After": "10"}
        if request.url.path.startswith("/api/"):
            message = "the warehouse is in use by another Siyu process; retry in a moment"
            return JSONResponse(error_body("busy", message, None), 503, headers)
        return HTMLResponse(translate(lang_of(request), "warehouse_busy"), 503, headers)

    @app.exception_handler(CsrfRejected)
    async def forbidden(request: Request, _: CsrfRejected) -> Response:
        return HTMLResponse(translate(lang_of(request), "csrf_rejected"), status_code=403)
