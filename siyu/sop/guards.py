"""Guards 护栏 on every send (SPEC §7, §12): opt-out per channel, per-customer marketing caps,
quiet hours (held until morning, never dropped) and a stable random holdout.

Defaults come from the brand's settings (`[sop]` in siyu.toml, e.g. `holdout = 0.1`,
`daily_cap = 2`, `quiet_start = "21:30"`) and each SOP's `guards:` overrides them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from siyu.bulk import temp_table
from siyu.sop.definition import Guards, quiet_times
from siyu.sop.lookup import as_utc, ts

CAPPED_ADAPTERS = ("wecom", "sms")


@dataclass(frozen=True)
class Effective:
    kind: str
    holdout: float
    daily_cap: int
    weekly_cap: int
    quiet_start: time
    quiet_end: time


def effective(brand: dict[str, Any], sop: Guards) -> Effective:
    """The guards one SOP runs with: its overrides over the brand's defaults over SPEC's."""

    def pick(name: str, default: Any) -> Any:
        value = getattr(sop, name)
        return value if value is not None else brand.get(name, default)

    return Effective(
        kind=sop.kind,
        holdout=float(pick("holdout", 0.05)),
        daily_cap=int(pick("daily_cap", 1)),
        weekly_cap=int(pick("weekly_cap", 4)),
        quiet_start=quiet_times(str(pick("quiet_start", "22:00"))),
        quiet_end=quiet_times(str(pick("quiet_end", "08:00"))),
    )


def in_holdout(sop_key: str, customer_id: int, share: float) -> bool:
    """Stable per (SOP, customer): the same customer is always in or out of this SOP's holdout."""
    if share <= 0:
        return False
    h = hashlib.sha256(f"holdout:{sop_key}:{customer_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < share


def release_at(at: datetime, g: Effective, tz: str) -> datetime:
    """`at`, or — inside quiet hours — the end of the quiet hours that follow (brand time)."""
    local = at.astimezone(ZoneInfo(tz))
    t = local.time()
    start, end = g.quiet_start, g.quiet_end
    if start == end:
        return at
    quiet = (start <= t or t < end) if start > end else (start <= t < end)
    if not quiet:
        return at
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, ZoneInfo(tz))


def capped(
    conn: Connection,
    brand_id: int,
    planned: dict[int, tuple[str, datetime]],
    g: Effective,
    tz: str,
) -> set[int]:
    """Customers who already have their day's or week's marketing messages (brand-local
    calendar day and Monday-to-Sunday week of the planned send), counting every enqueued row
    not failed — pending ones included — other than the one being planned."""
    if g.kind != "marketing" or not planned:
        return set()
    zone = ZoneInfo(tz)
    earliest = min(at for _, at in planned.values()).astimezone(zone).date()
    since = datetime.combine(earliest - timedelta(days=7), time(), zone)
    temp_table(conn, "sop_ids", [("customer_id", "BIGINT")], [(c,) for c in planned])
    kind = (
        "payload->>'kind'"
        if conn.dialect.name == "postgresql"
        else "json_extract(payload, '$.kind')"
    )
    rows = conn.execute(
        text(
            "SELECT customer_id, dedup_key, not_before FROM outbox WHERE brand_id = :b "
            "AND customer_id IN (SELECT customer_id FROM sop_ids) AND status <> 'failed' "
            f"AND adapter IN ('wecom', 'sms') AND {kind} = 'marketing' AND not_before >= :since"
        ),
        {"b": brand_id, "since": ts(conn, since)},
    ).all()
    day: dict[int, int] = {}
    week: dict[int, int] = {}
    for cid, key, nb in rows:
        cid = int(cid)
        mine, at = planned[cid]
        if key == mine:
            continue
        d, target = as_utc(nb).astimezone(zone).date(), at.astimezone(zone).date()
        if d == target:
            day[cid] = day.get(cid, 0) + 1
        if d.isocalendar()[:2] == target.isocalendar()[:2]:
            week[cid] = week.get(cid, 0) + 1
    return {c for c in planned if day.get(c, 0) >= g.daily_cap or week.get(c, 0) >= g.weekly_cap}
