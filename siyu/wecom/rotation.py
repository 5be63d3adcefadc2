"""Load balancing a channel live code (渠道活码) over a staff list with a daily add cap per staff.

A contact way configured with several staff (`user_ids`) and a `daily_cap` answers with every
staff member still under the cap today (brand-local day): one who has added `daily_cap`
customers through this code today is taken off it in WeCom (update_contact_way), and put back
the next day. WeCom itself spreads the scans over the staff it lists. When everyone is at the
cap, the code keeps the whole list (a code with nobody on it would turn customers away).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from siyu.connections.models import Connection as ConnectionRow
from siyu.orgs.models import Brand
from siyu.staff.models import Staff
from siyu.wecom.client import WeComClient
from siyu.wecom.models import WeComContactWay


@dataclass(frozen=True)
class Rotation:
    config_id: str
    state: str
    adds_today: dict[str, int]
    live: list[str]  # the staff the code now answers with
    changed: bool


def start_of_day(engine: Engine, brand_id: int, now: datetime) -> datetime:
    """Midnight of the brand-local day containing `now`, in UTC."""
    with engine.connect() as conn:
        tz = conn.execute(select(Brand.timezone).where(Brand.id == brand_id)).scalar_one()
    local = now.astimezone(ZoneInfo(tz))
    return datetime.combine(local.date(), time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def rotate(
    engine: Engine, client: WeComClient, *, brand_id: int, now: datetime | None = None
) -> list[Rotation]:
    """One pass over the brand's capped contact ways; WeCom is updated only where it differs."""
    now = now or datetime.now(UTC)
    since = start_of_day(engine, brand_id, now)
    w, c = WeComContactWay, ConnectionRow
    with engine.connect() as conn:
        ways = conn.execute(
            select(w.config_id, w.state, w.user_ids, w.daily_cap).where(
                w.brand_id == brand_id, w.daily_cap.is_not(None), w.deleted_at.is_(None)
            )
        ).all()
        adds = {
            (state, userid): n
            for state, userid, n in conn.execute(
                select(c.state, Staff.wecom_userid, func.count())
                .join(Staff, Staff.id == c.staff_id)
                .where(
                    c.brand_id == brand_id,
                    c.kind == "wecom_friend",
                    c.state.in_([way.state for way in ways] or [""]),
                    c.created_at >= since,
                    c.created_at <= now,
                )
                .group_by(c.state, Staff.wecom_userid)
            )
        }
    out = []
    for way in ways:
        counts = {u: adds.get((way.state, u), 0) for u in way.user_ids}
        under = [u for u in way.user_ids if counts[u] < way.daily_cap]
        wanted = under or list(way.user_ids)
        current = list(client.get_contact_way(config_id=way.config_id).get("user") or [])
        changed = sorted(current) != sorted(wanted)
        if changed:
            client.update_contact_way(config_id=way.config_id, user=wanted)
        out.append(Rotation(way.config_id, way.state, counts, wanted, changed))
    return out
