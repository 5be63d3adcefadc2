"""`siyu sop dry-run` (who would get what, sending nothing) and `siyu sop report` (reach,
delivery, conversion and uplift against the holdout — SPEC §5.16)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from siyu.auth.principal import Principal
from siyu.bulk import temp_table
from siyu.config import Settings
from siyu.customers import service as customers
from siyu.sop import guards, lookup, send, service
from siyu.sop.engine import Runtime, _everyone, choose_variants
from siyu.sop.models import SopEnrollment

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile


@dataclass
class DryRun:
    key: str
    version: int
    funnel: list[tuple[str, int]] = field(default_factory=list)
    samples: list[tuple[str, str]] = field(default_factory=list)  # (variant, rendered text)
    held_until: datetime | None = None
    step: int | None = None


def dry_run(settings: Settings, engine: Any, brand_id: int, key: str, now: datetime) -> DryRun:
    """The audience now, the first send step's guard funnel and one sample per variant."""
    with engine.connect() as conn:
        cur = service.get(conn, brand_id=brand_id, key=key)
    defn, version = cur.definition, cur.sop.version
    out = DryRun(key, version)
    rt = Runtime(settings, engine, brand_id, now)
    try:
        g = rt.guards(defn)
        step = next((i for i, s in enumerate(defn.steps) if s.send is not None), None)
        out.step = step
        if defn.for_groups:
            assert defn.audience.groups is not None
            with engine.connect() as conn:
                grps = lookup.groups(conn, brand_id, defn.audience.groups.stores)
            out.funnel.append(("groups 群", len(grps)))
            journeys = [send.Journey(i, None, x["chat_id"], "dry-run") for i, x in enumerate(grps)]
            if step is not None:
                with engine.connect() as conn:
                    plan = send.plan_groups(conn, brand_id=brand_id, tz=rt.tz, defn=defn,
                                            version=version, step=step, journeys=journeys,
                                            g=g, now=now)  # fmt: skip
                out.funnel.append(("sent 发送", plan.counts["sent"]))
                _samples(out, defn, step, plan)
                out.held_until = plan.items[0].not_before if plan.held else None
            return out
        rule = rt.audience_rule(defn)
        ids = sorted(rt.members(rule, now) if rule is not None else _everyone(rt))
        out.funnel.append(("audience 受众", len(ids)))
        ids = [c for c in ids if not guards.in_holdout(defn.key, c, g.holdout)]
        out.funnel.append((f"after holdout 对照组 ({g.holdout:.0%})", len(ids)))
        if step is None:
            return out
        s = defn.steps[step].send
        assert s is not None
        journeys = [send.Journey(c, c, None, "dry-run") for c in ids]
        with engine.connect() as conn:
            plan = send.plan_customers(conn, brand_id=brand_id, tz=rt.tz, defn=defn,
                                       version=version, step=step, journeys=journeys,
                                       variant_of=choose_variants(rt, s, ids), g=g, now=now)  # fmt: skip
        labels = {"after opt-out": "after opt-out 退订", "reachable": "reachable 可触达",
                  "under caps": "under caps 频控", "sent": "would send 将发送"}  # fmt: skip
        for k, label in labels.items():
            out.funnel.append((label, plan.counts[k]))
        out.held_until = plan.items[0].not_before if plan.held and plan.items else None
        _samples(out, defn, step, plan)
    finally:
        rt.close()
    return out


def _samples(out: DryRun, defn: Any, step: int, plan: send.Planned) -> None:
    s = defn.steps[step].send
    for i, v in enumerate(s.variants):
        label = "default" if v.when is None else _when_label(v.when)
        out.samples.append((label, plan.samples.get(i, "(no recipient in this variant)")))


def _when_label(rule: dict[str, Any]) -> str:
    if "field" in rule:
        return f"{rule['field']} {rule['op']} {rule.get('value')}"
    return "rule"


# ----- report --------------------------------------------------------------------------------


@dataclass
class Report:
    key: str
    conversion_days: int
    enrolled: int
    reached: int
    delivered: int
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int

    @property
    def conversion(self) -> float | None:
        return self.treated_converted / self.treated if self.treated else None

    @property
    def holdout_conversion(self) -> float | None:
        return self.holdout_converted / self.holdout if self.holdout else None

    @property
    def uplift(self) -> tuple[float, float, float] | None:
        """(uplift, low, high): difference of the two conversion rates with its 95 % Wald
        interval, d ± 1.96·√(p₁(1−p₁)/n₁ + p₀(1−p₀)/n₀); None without a holdout."""
        p1, p0 = self.conversion, self.holdout_conversion
        if p1 is None or p0 is None:
            return None
        d = p1 - p0
        se = math.sqrt(p1 * (1 - p1) / self.treated + p0 * (1 - p0) / self.holdout)
        return d, d - Z95 * se, d + Z95 * se


def readable_within(conn: Connection, who: Principal) -> set[int] | None:
    """The customers whose journeys `who`'s figures cover: `report`'s `within` (None: the
    whole brand)."""
    ids = customers.readable_ids(conn, who)
    return None if ids is None else set(ids)


def report(conn: Connection, *, brand_id: int, key: str, within: set[int] | None = None) -> Report:
    """The SOP's figures; with `within`, only those customers' journeys (a store's view)."""
    cur = service.get(conn, brand_id=brand_id, key=key)
    days = cur.definition.conversion_days
    e = SopEnrollment.__table__
    rows = conn.execute(
        e.select()
        .with_only_columns(e.c.customer_id, e.c.enrolled_at, e.c.holdout, e.c.chat_id)
        .where(e.c.sop_id == cur.sop.id)
    ).all()
    if within is not None:
        rows = [r for r in rows if r.customer_id is not None and int(r.customer_id) in within]
    people = [r for r in rows if r.customer_id is not None]
    orders = _paid_orders(conn, brand_id, sorted({int(r.customer_id) for r in people}))
    n = {True: 0, False: 0}
    conv = {True: 0, False: 0}
    for r in people:
        held = bool(r.holdout)
        n[held] += 1
        lo, hi = r.enrolled_at, r.enrolled_at + timedelta(days=days)
        if any(lo <= t < hi for t in orders.get(int(r.customer_id), ())):
            conv[held] += 1
    reached, delivered = _reach(conn, brand_id, key, within)
    return Report(key, days, len(rows), reached, delivered, n[False], conv[False], n[True],
                  conv[True])  # fmt: skip


def _paid_orders(conn: Connection, brand_id: int, ids: list[int]) -> dict[int, list[datetime]]:
    temp_table(conn, "sop_ids", [("customer_id", "BIGINT")], [(c,) for c in ids])
    out: dict[int, list[datetime]] = {}
    for cid, at in conn.execute(
        text(
            f'SELECT i.customer_id, x.created_at FROM "order" x {lookup.RESOLVE} '
            "WHERE x.brand_id = :b AND x.status <> 'cancelled' AND x.refund_fen < x.amount_fen "
            "AND i.customer_id IN (SELECT customer_id FROM sop_ids)"
        ),
        {"b": brand_id},
    ):
        out.setdefault(int(cid), []).append(lookup.as_utc(at))
    return out


def _reach(
    conn: Connection, brand_id: int, key: str, within: set[int] | None = None
) -> tuple[int, int]:
    """(journeys with an outbox row, journeys with a row sent) — a subject per occurrence."""
    reached: set[tuple[str, str]] = set()
    delivered: set[tuple[str, str]] = set()
    prefix = f"sop:{key}:"
    for dk, status in conn.execute(
        text("SELECT dedup_key, status FROM outbox WHERE brand_id = :b AND dedup_key LIKE :p"),
        {"b": brand_id, "p": prefix + "%"},
    ):
        if not dk.startswith(prefix):  # LIKE's "_" matches any character
            continue
        _, _, rest = dk[len(prefix) :].split(":", 2)
        if rest.startswith("group:"):
            _, chat, occ = rest.split(":", 2)
            who = f"group:{chat}"
        else:
            who, occ = rest.split(":", 1)
        if within is not None and (not (who.isascii() and who.isdigit()) or int(who) not in within):
            continue
        reached.add((who, occ))
        if status == "sent":
            delivered.add((who, occ))
    return len(reached), len(delivered)
