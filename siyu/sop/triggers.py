"""Triggers 触发: who an SOP enrolls now, and for which occurrence — SPEC §7.

- event: rows of the `event` table of the trigger's type after the SOP's cursor (on
  PostgreSQL also those recorded in the last minutes, since ids can commit out of order; the
  enrollment's unique key makes a second read harmless); occurrence = the event id.
- schedule: every cron instant (brand time) after the last one fired, up to now; occurrence =
  the instant. The last instant is stored with the enrollments, so a restart neither repeats
  nor loses one.
- relative dates: every brand-local day after the last one scanned, up to today: N days after a
  paid order (of a category), birthday, membership anniversary.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import Connection, text

from siyu.sop import lookup
from siyu.sop.definition import EVENTS, Definition, quiet_times
from siyu.sop.models import Sop

OVERLAP = timedelta(minutes=5)
MAX_FIRES = 200  # cron instants caught up in one tick
MAX_DAYS = 400  # relative-date days caught up in one tick
EVENT_BATCH = 50_000


@dataclass(frozen=True)
class Hit:
    """One subject for one occurrence; `at` is when its journey starts."""

    customer_id: int | None
    occurrence: str
    at: datetime
    chat_id: str | None = None


@dataclass
class Fired:
    hits: list[Hit] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)  # new cursor values for the Sop row
    fires: list[datetime] = field(default_factory=list)  # schedule instants (audience at each)
    unresolved: int = 0  # events naming nobody we know


def fire(conn: Connection, sop: Sop, defn: Definition, *, now: datetime, tz: str) -> Fired:
    kind = defn.trigger.kind
    if kind == "event":
        return _events(conn, sop, defn, now)
    if kind == "schedule":
        return _schedule(sop, defn, now, tz)
    return _dates(conn, sop, defn, now, tz)


# ----- events --------------------------------------------------------------------------------


def _events(conn: Connection, sop: Sop, defn: Definition, now: datetime) -> Fired:
    trig = defn.trigger.event
    assert trig is not None
    type_ = EVENTS[trig.type][0]
    overlap = now - OVERLAP
    if sop.activated_at is not None and sop.activated_at > overlap:
        overlap = sop.activated_at
    rows = conn.execute(
        text(
            "SELECT id, customer_id, payload FROM event WHERE brand_id = :b AND type = :t "
            "AND (id > :cursor OR recorded_at >= :overlap) ORDER BY id LIMIT :n"
        ),
        {
            "b": sop.brand_id,
            "t": type_,
            "cursor": sop.event_cursor,
            "overlap": lookup.ts(conn, overlap),
            "n": EVENT_BATCH,
        },  # fmt: skip
    ).all()
    out = Fired(state={"event_cursor": max([sop.event_cursor, *(int(r[0]) for r in rows)])})
    wanted = _filters(conn, sop.brand_id, trig.filter)
    picked = []
    for eid, cid, payload in rows:
        p = payload if isinstance(payload, dict) else _json(payload)
        if all(str(p.get(k)) == v for k, v in wanted.items()):
            picked.append((int(eid), cid, p))
    ext = lookup.resolve(
        conn, sop.brand_id, "external_userid",
        [p["external_userid"] for _, c, p in picked if c is None and p.get("external_userid")],
    )  # fmt: skip
    survivor = _survivors(conn, [int(c) for _, c, _ in picked if c is not None])
    for eid, cid, p in picked:
        customer = cid if cid is not None else ext.get(p.get("external_userid") or "")
        if customer is None:
            out.unresolved += 1
            continue
        out.hits.append(Hit(survivor.get(int(customer), int(customer)), f"event:{eid}", now))
    return out


def _survivors(conn: Connection, ids: list[int]) -> dict[int, int]:
    """Merged-away customer ids → the customer they were merged into (SPEC §4)."""
    if not ids:
        return {}
    lookup.stage_ids(conn, ids)
    rows = conn.execute(
        text(
            "SELECT id, merged_into_id FROM customer WHERE merged_into_id IS NOT NULL "
            "AND id IN (SELECT customer_id FROM sop_ids)"
        )
    ).all()
    return {int(a): int(b) for a, b in rows}


def _json(raw: Any) -> dict[str, Any]:
    import json

    return json.loads(raw) if raw else {}


def _filters(conn: Connection, brand_id: int, f: dict[str, str]) -> dict[str, str]:
    """Trigger filters as payload key → value (a channel code becomes its channel id)."""
    out: dict[str, str] = {}
    for k, v in f.items():
        if k == "channel":
            cid = conn.execute(
                text("SELECT id FROM channel WHERE brand_id = :b AND code = :c"),
                {"b": brand_id, "c": v},
            ).scalar()
            out["channel_id"] = str(cid) if cid is not None else "(unknown channel)"
        else:
            out[{"staff": "userid", "group": "chat_id"}.get(k, k)] = v
    return out


# ----- schedules -----------------------------------------------------------------------------


def _schedule(sop: Sop, defn: Definition, now: datetime, tz: str) -> Fired:
    zone = ZoneInfo(tz)
    start = (sop.last_fire_at or now).astimezone(zone)
    it = croniter(defn.trigger.schedule, start)
    out = Fired()
    last = sop.last_fire_at
    while len(out.fires) < MAX_FIRES:
        at = it.get_next(datetime)
        if at > now:
            break
        out.fires.append(at.astimezone(ZoneInfo("UTC")))
        last = at.astimezone(ZoneInfo("UTC"))
    out.state = {"last_fire_at": last}
    return out


def occurrence_of(at: datetime) -> str:
    return "at:" + at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%MZ")


# ----- relative dates ------------------------------------------------------------------------


def _dates(conn: Connection, sop: Sop, defn: Definition, now: datetime, tz: str) -> Fired:
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    first = (sop.scanned_day + timedelta(days=1)) if sop.scanned_day else (
        (sop.activated_at or now).astimezone(zone).date()
    )  # fmt: skip
    first = max(first, today - timedelta(days=MAX_DAYS))
    out = Fired(state={"scanned_day": max(today, sop.scanned_day or today)})
    t = defn.trigger
    spec = t.after_purchase or t.birthday or t.anniversary
    assert spec is not None
    at_time = quiet_times(spec.at)
    day = first
    while day <= today:
        at = datetime.combine(day, at_time, zone)
        if t.after_purchase is not None:
            out.hits += _after_purchase(conn, sop.brand_id, day, at, t.after_purchase, zone)
        elif t.birthday is not None:
            out.hits += _birthdays(conn, sop.brand_id, day, at)
        else:
            out.hits += _anniversaries(conn, sop.brand_id, day, at, zone)
        day += timedelta(days=1)
    return out


def _after_purchase(
    conn: Connection, brand_id: int, day: date, at: datetime, spec: Any, zone: ZoneInfo
) -> list[Hit]:
    bought = day - timedelta(days=spec.days)
    lo = datetime.combine(bought, time(), zone)
    hi = datetime.combine(bought + timedelta(days=1), time(), zone)
    params: dict[str, Any] = {"b": brand_id, "lo": lookup.ts(conn, lo), "hi": lookup.ts(conn, hi)}
    category = ""
    if spec.category:
        names = ", ".join(f":c{i}" for i in range(len(spec.category)))
        params.update({f"c{i}": c for i, c in enumerate(spec.category)})
        category = (
            "AND x.id IN (SELECT oi.order_id FROM order_item oi JOIN product p "
            f"ON p.brand_id = x.brand_id AND p.sku = oi.sku WHERE p.category IN ({names}))"
        )
    rows = conn.execute(
        text(
            f'SELECT x.order_key, i.customer_id FROM "order" x {lookup.RESOLVE} '
            "WHERE x.brand_id = :b AND x.status <> 'cancelled' AND x.refund_fen < x.amount_fen "
            f"AND x.created_at >= :lo AND x.created_at < :hi AND i.customer_id IS NOT NULL "
            f"{category} ORDER BY x.id"
        ),
        params,
    ).all()
    return [Hit(int(c), f"order:{k}", at) for k, c in rows]


def _same_day(d: date, day: date) -> bool:
    """d's month and day fall on `day` (29 February on 28 February in other years)."""
    if (d.month, d.day) == (day.month, day.day):
        return True
    return (
        d.month == 2 and d.day == 29 and day.month == 2 and day.day == 28
        and not calendar.isleap(day.year)
    )  # fmt: skip


def _birthdays(conn: Connection, brand_id: int, day: date, at: datetime) -> list[Hit]:
    rows = conn.execute(
        text(
            "SELECT id, birthday FROM customer WHERE brand_id = :b AND merged_into_id IS NULL "
            "AND birthday IS NOT NULL"
        ),
        {"b": brand_id},
    ).all()
    return [
        Hit(int(cid), f"birthday:{day.year}", at)
        for cid, b in rows
        if _same_day(b if isinstance(b, date) else date.fromisoformat(str(b)), day)
    ]


def _anniversaries(
    conn: Connection, brand_id: int, day: date, at: datetime, zone: ZoneInfo
) -> list[Hit]:
    rows = conn.execute(
        text(
            "SELECT m.member_no, m.joined_at, i.customer_id FROM membership m "
            "JOIN identifier i ON i.brand_id = m.brand_id AND i.id_type = 'member_no' "
            "AND i.value = m.member_no WHERE m.brand_id = :b AND i.customer_id IS NOT NULL"
        ),
        {"b": brand_id},
    ).all()
    out = []
    for no, joined, cid in rows:
        j = lookup.as_utc(joined).astimezone(zone).date()
        if j.year < day.year and _same_day(j, day):
            out.append(Hit(int(cid), f"anniversary:{no}:{day.year}", at))
    return out
