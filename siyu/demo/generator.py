"""The demo coffee brand 朝暮咖啡: a year of private-domain data in the interchange format v1.

`generate(out_dir)` writes all 17 files of DATA_FORMAT.md as UTF-8 CSV, deterministic for a seed:
24 stores in 上海 / 北京 / 杭州, their guides and community groups, eight acquisition channels with
daily reach and cost, ~`persons` people seen through 1–4 source records each (with the overlaps,
gaps, placeholder and invalid phones of real exports), their WeCom / group / official-account
connections, orders with items, memberships, referrals, messages, surveys and opt-outs.

    python -m siyu.demo.generator OUT_DIR [--persons N] [--seed S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from siyu.demo import catalog
from siyu.demo.catalog import CH_JD, CH_TMALL, CHANNELS, PRODUCTS, STORES
from siyu.demo.columns import FILE_COLUMNS
from siyu.demo.commerce import PF_JD, PF_TMALL, PLATFORMS, Commerce, build_commerce
from siyu.demo.messages import CHANNELS as MESSAGE_CHANNELS
from siyu.demo.messages import ID_TYPE as MESSAGE_ID_TYPE
from siyu.demo.messages import Surveys, Touches, build_messages, build_surveys
from siyu.demo.network import (
    KIND_ID_TYPE,
    KINDS,
    NONE,
    Connections,
    Org,
    Referrals,
    acquisition_channel,
    build_connections,
    build_org,
    channel_costs,
    channel_reach,
    plan_referrals,
)
from siyu.demo.people import People, build_people, records
from siyu.demo.util import DAY, Clock, stream, write_csv

Columns = dict[str, np.ndarray | list]


@dataclass(frozen=True)
class DemoSummary:
    out_dir: Path
    seed: int
    persons: int
    start: date
    end: date  # exclusive: the last day with data is the day before
    rows: dict[str, int] = field(default_factory=dict)  # data rows per file, format order
    placeholder_phone: str = catalog.PLACEHOLDER_PHONE

    @property
    def orders(self) -> int:
        return self.rows.get("orders", 0)

    def format(self) -> str:
        head = (
            f"{catalog.BRAND} demo → {self.out_dir}  seed={self.seed} persons={self.persons} "
            f"range=[{self.start}, {self.end})"
        )
        width = max(len(name) for name in self.rows)
        lines = [f"  {name:<{width}}  {count:>10,}" for name, count in self.rows.items()]
        return "\n".join([head, *lines])


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    persons: int = 20_000,
    start: date = date(2024, 10, 1),
    days: int = 396,
) -> DemoSummary:
    """Write the demo brand's interchange files into `out_dir` (created if missing)."""
    if persons < 1 or days < 1:
        raise ValueError("persons and days must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock(start, days)
    rows = {
        name: write_csv(out / f"{name}.csv", _check(name, cols))
        for name, cols in _tables(seed, persons, clock)
    }
    return DemoSummary(out, seed, persons, start, start + timedelta(days=days), rows)


def _check(name: str, columns: Columns) -> Columns:
    if tuple(columns) != FILE_COLUMNS[name]:
        raise AssertionError(f"{name}: columns {tuple(columns)} differ from the format")
    return columns


def _tables(seed: int, persons: int, clock: Clock) -> Iterator[tuple[str, Columns]]:
    """Build the world stage by stage (each with its own random stream) and yield the files."""
    people = build_people(stream(seed, 1), persons, clock)
    referrals = plan_referrals(stream(seed, 2), people, clock)
    org = build_org(stream(seed, 3), clock)
    conns = build_connections(stream(seed, 4), people, org, referrals, clock)
    commerce = build_commerce(stream(seed, 5), people, acquisition_channel(people, conns), clock)
    yield "stores", _stores()
    yield "staff", _staff(org)
    yield "groups", _groups(org, clock)
    yield "channels", _channels()
    yield "channel_costs", _channel_costs(stream(seed, 6), conns, referrals, commerce, clock)
    yield "channel_reach", _channel_reach(stream(seed, 7), conns, clock)
    yield "records", records(stream(seed, 8), people)
    yield "connections", _connections(people, org, conns, clock)
    yield "orders", _orders(commerce, clock)
    yield "order_items", _order_items(commerce)
    yield "products", _products()
    yield "memberships", _memberships(people, commerce, clock)
    yield "referrals", _referrals(people, referrals, clock)
    messages = build_messages(stream(seed, 9), people, conns, commerce.members, clock)
    yield "deliveries", _touches(people, messages.deliveries, "channel", clock)
    yield "interactions", _touches(people, messages.interactions, "kind", clock)
    yield "surveys", _surveys(build_surveys(stream(seed, 10), commerce.orders, clock), clock)
    yield "opt_outs", _touches(people, messages.opt_outs, None, clock)


def _codes(codes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """codes[index], empty where index is -1."""
    return np.where(index >= 0, codes[np.maximum(index, 0)], "")


def _stores() -> Columns:
    return {
        "store_id": [s.code for s in STORES],
        "name": [s.name for s in STORES],
        "region": [s.region for s in STORES],
        "city": [s.city for s in STORES],
        "lat": [s.lat for s in STORES],
        "lon": [s.lon for s in STORES],
        "radius_m": [catalog.STORE_RADIUS_M] * len(STORES),
    }


STORE_CODES = np.array([s.code for s in STORES])
CHANNEL_CODES = np.array([c.code for c in CHANNELS])
SKU_CODES = np.array([p.sku for p in PRODUCTS])


def _staff(org: Org) -> Columns:
    return {
        "staff_id": org.staff_code,
        "name": org.staff_name,
        "store_id": _codes(STORE_CODES, org.staff_store),
        "persona": org.staff_persona,
    }


def _groups(org: Org, clock: Clock) -> Columns:
    return {
        "group_id": org.group_code,
        "name": org.group_name,
        "owner_staff_id": org.staff_code[org.group_owner],
        "store_id": STORE_CODES[org.group_store],
        "created_at": clock.timestamps(org.group_created_s),
    }


def _channels() -> Columns:
    return {
        "channel_id": CHANNEL_CODES,
        "name": [c.name for c in CHANNELS],
        "type": [c.type for c in CHANNELS],
    }


def _channel_costs(
    rng: np.random.Generator,
    conns: Connections,
    referrals: Referrals,
    commerce: Commerce,
    clock: Clock,
) -> Columns:
    o = commerce.orders
    parcels = {
        channel: np.bincount(o.created_s[o.platform == pf] // DAY, minlength=clock.days)
        for channel, pf in ((CH_TMALL, PF_TMALL), (CH_JD, PF_JD))
    }
    cost = channel_costs(rng, conns, referrals, parcels, clock)
    channel, day = np.nonzero(cost >= 0)
    return {
        "channel_id": CHANNEL_CODES[channel],
        "date": clock.dates(day),
        "cost_fen": cost[channel, day],
    }


def _channel_reach(rng: np.random.Generator, conns: Connections, clock: Clock) -> Columns:
    reach = channel_reach(rng, conns, clock)
    channel, day = np.nonzero(reach > 0)
    return {
        "channel_id": CHANNEL_CODES[channel],
        "date": clock.dates(day),
        "count": reach[channel, day],
    }


def person_ids(people: People, id_type: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The value of identifier `id_type` of each person, as their record carries it."""
    sources = {
        "external_userid": people.external_userid,
        "openid_mp": people.openid_mp,
        "openid_oa": people.openid_oa,
        "member_no": people.member_no,
        "phone": people.pos_phone,  # only people whose till phone is theirs are referred to by it
    }
    out = np.full(len(person), "", dtype="U40")
    for name, values in sources.items():
        rows = np.flatnonzero(id_type == name)
        out[rows] = values[person[rows]]
    return out


def _connections(people: People, org: Org, conns: Connections, clock: Clock) -> Columns:
    id_type = np.asarray(KIND_ID_TYPE)[conns.kind]
    return {
        "kind": np.asarray(KINDS)[conns.kind],
        "id_type": id_type,
        "id_value": person_ids(people, id_type, conns.person),
        "staff_id": _codes(org.staff_code, conns.staff),
        "group_id": _codes(org.group_code, conns.group),
        "channel_id": _codes(CHANNEL_CODES, conns.channel),
        "created_at": clock.timestamps(conns.created_s),
        "ended_at": clock.timestamps(conns.ended_s, missing=conns.ended_s == NONE),
    }


def _orders(commerce: Commerce, clock: Clock) -> Columns:
    """One row per order; a late refund repeats the row later with status and refund updated."""
    o = commerce.orders
    n = len(o.order_id)
    late = np.flatnonzero(o.late_refund)
    order = np.r_[np.arange(n), late]
    is_refund_row = np.r_[np.zeros(n, dtype=bool), np.ones(len(late), dtype=bool)]
    event = np.r_[o.created_s, o.refund_s[late]]
    seq = np.lexsort((order, is_refund_row, event))
    order, is_refund_row = order[seq], is_refund_row[seq]
    before_refund = o.late_refund[order] & ~is_refund_row
    return {
        "order_id": o.order_id[order],
        "platform": np.asarray(PLATFORMS)[o.platform[order]],
        "store_id": _codes(STORE_CODES, o.store[order]),
        "id_type": o.id_type[order],
        "id_value": o.id_value[order],
        "created_at": clock.timestamps(o.created_s[order]),
        "amount_fen": o.amount[order],
        "status": np.where(before_refund, "paid", o.status[order]),
        "refund_fen": np.where(before_refund, 0, o.refund[order]),
    }


def _order_items(commerce: Commerce) -> Columns:
    items = commerce.items
    return {
        "order_id": commerce.orders.order_id[items.order],
        "sku": SKU_CODES[items.sku],
        "qty": items.qty,
        "amount_fen": items.amount,
    }


def _products() -> Columns:
    return {
        "sku": SKU_CODES,
        "name": [p.name for p in PRODUCTS],
        "category": [p.category for p in PRODUCTS],
        "price_fen": [p.price_fen for p in PRODUCTS],
        "ladder_role": [p.ladder_role for p in PRODUCTS],
    }


def _memberships(people: People, commerce: Commerce, clock: Clock) -> Columns:
    m = commerce.members
    return {
        "member_no": people.member_no[m.person],
        "joined_at": clock.timestamps(m.joined_s),
        "level": m.level,
        "points": m.points,
    }


def _referrals(people: People, referrals: Referrals, clock: Clock) -> Columns:
    return {
        "referrer_id_type": referrals.referrer_type,
        "referrer_id_value": person_ids(people, referrals.referrer_type, referrals.referrer),
        "invitee_id_type": referrals.invitee_type,
        "invitee_id_value": person_ids(people, referrals.invitee_type, referrals.invitee),
        "created_at": clock.timestamps(referrals.created_s),
    }


def _touches(people: People, touches: Touches, label: str | None, clock: Clock) -> Columns:
    """deliveries (label = channel … status), interactions (kind) and opt_outs (no label)."""
    id_type = np.asarray(MESSAGE_ID_TYPE)[touches.channel]
    columns: Columns = {
        "id_type": id_type,
        "id_value": person_ids(people, id_type, touches.person),
    }
    created = clock.timestamps(touches.created_s)
    if label == "channel":
        columns |= {
            "channel": np.asarray(MESSAGE_CHANNELS)[touches.channel],
            "created_at": created,
            "status": touches.label,
        }
    elif label == "kind":
        columns |= {"kind": touches.label, "created_at": created}
    else:
        columns["created_at"] = created
    return columns


def _surveys(surveys: Surveys, clock: Clock) -> Columns:
    return {
        "id_type": surveys.id_type,
        "id_value": surveys.id_value,
        "created_at": clock.timestamps(surveys.created_s),
        "score": surveys.score,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m siyu.demo.generator",
        description=f"Write the {catalog.BRAND} demo data set (interchange format v1) to OUT_DIR.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 10, 1))
    parser.add_argument("--days", type=int, default=396)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    summary = generate(
        args.out_dir, seed=args.seed, persons=args.persons, start=args.start, days=args.days
    )
    print(summary.format())
    print(f"elapsed {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
