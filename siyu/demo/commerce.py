"""Orders, order items and memberships: who buys what, where, when and under which identifier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from siyu.demo import catalog
from siyu.demo.catalog import CH_MP_PAGE, CH_STORE_QR, PRODUCTS
from siyu.demo.people import JD, MP, POS, TMALL, People
from siyu.demo.util import DAY, Clock, cat, run_rank, time_of_day, zpad

PLATFORMS = ("pos", "mp", "tmall", "jd")
PF_POS, PF_MP, PF_TMALL, PF_JD = range(len(PLATFORMS))
PLATFORM_SOURCE = (POS, MP, TMALL, JD)
PLATFORM_WEIGHT = np.array([1.0, 0.8, 0.22, 0.18])
PLATFORM_ID_TYPE = ("", "openid_mp", "tmall_nick", "jd_pin")
STORE_WEEKDAY = (0.95, 0.95, 1.0, 1.0, 1.35, 1.1, 1.0)  # Friday is member day
ONLINE_WEEKDAY = (1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1)
# Sales festivals on Tmall / JD, each with a ten-day presale ramp.
ONLINE_PEAKS = (
    (date(2024, 11, 11), 5.0),
    (date(2024, 12, 12), 2.0),
    (date(2025, 6, 18), 4.0),
    (date(2025, 11, 11), 5.0),
)
PRESALE_DAYS, PRESALE_LIFT = 10, 1.5
SHOP_HOURS = {7: 0.5, 8: 1.6, 9: 1.3, 10: 0.8, 11: 0.7, 12: 1.2, 13: 1.1, 14: 0.9, 15: 1.0,
              16: 0.7, 17: 0.7, 18: 0.6, 19: 0.5, 20: 0.4, 21: 0.2}  # fmt: skip
MP_HOURS = {7: 0.9, 8: 1.8, 9: 1.2, 10: 0.7, 11: 1.0, 12: 1.1, 13: 0.9, 14: 0.8, 15: 0.9,
            16: 0.6, 17: 0.5, 18: 0.4, 19: 0.3, 20: 0.2}  # fmt: skip
ONLINE_HOURS = dict(enumerate((0.3, 0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.5, 0.7, 0.8, 0.8,
                               1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.9, 1.1, 1.4, 1.6, 1.4, 0.8)))  # fmt: skip
HOURS = (SHOP_HOURS, MP_HOURS, ONLINE_HOURS, ONLINE_HOURS)

ANONYMOUS_SHARE = 0.25  # of POS orders, walk-ins plus members not yet recognised
PLACEHOLDER_SHARE = 0.06  # walk-ins for whom the cashier typed the placeholder phone
SAME_DAY_JOIN = 0.45  # new members who sign up at the till right after their first order
WELCOME_ORDER = 0.5  # QR / order-page friends who redeem the welcome coupon on the spot
CANCEL_SHARE, REFUND_SHARE = 0.03, 0.02
PARTIAL_REFUND, LATE_REFUND_ROW = 0.35, 0.18
# Ladder stage by how many orders the person placed before: 0 | 1–2 | 3–7 | 8+.
STAGE_EDGES = (1, 3, 8)
# P(role) per stage, LADDER order (traffic, trust, profit, extension): buyers climb the ladder.
ROLE_MIX = {
    "store": ((0.55, 0.36, 0.01, 0.08), (0.35, 0.52, 0.03, 0.10),
              (0.25, 0.57, 0.06, 0.12), (0.18, 0.60, 0.09, 0.13)),
    "online": ((0.50, 0.0, 0.38, 0.12), (0.20, 0.0, 0.65, 0.15),
               (0.10, 0.0, 0.72, 0.18), (0.05, 0.0, 0.78, 0.17)),
}  # fmt: skip
DISCOUNTS = np.array([100, 90, 80, 70])  # percent of list price: none, member, coupon, flash sale
DISCOUNT_MIX = {"store": (0.45, 0.25, 0.2, 0.1), "member_day": (0.25, 0.2, 0.45, 0.1),
                "online": (0.5, 0.2, 0.2, 0.1)}  # fmt: skip
INF = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Orders:
    """One row per order in time order; `late_refund` rows get a second, later row."""

    order_id: np.ndarray
    platform: np.ndarray
    store: np.ndarray  # -1 online
    person: np.ndarray  # -1 walk-in
    id_type: np.ndarray
    id_value: np.ndarray
    created_s: np.ndarray
    amount: np.ndarray
    status: np.ndarray
    refund: np.ndarray
    late_refund: np.ndarray  # bool: the first row says paid, a later row says refunded
    refund_s: np.ndarray


@dataclass(frozen=True)
class Items:
    order: np.ndarray  # index into Orders
    sku: np.ndarray  # index into PRODUCTS
    qty: np.ndarray
    amount: np.ndarray


@dataclass(frozen=True)
class Members:
    person: np.ndarray
    joined_s: np.ndarray
    level: np.ndarray
    points: np.ndarray


@dataclass(frozen=True)
class Commerce:
    orders: Orders
    items: Items
    members: Members


@dataclass(frozen=True)
class _Draft:
    """Orders before baskets, statuses and ids: who, where, when and under which identifier."""

    person: np.ndarray  # -1 walk-in
    platform: np.ndarray
    store: np.ndarray
    secs: np.ndarray
    id_type: np.ndarray
    id_value: np.ndarray
    stage: np.ndarray  # ladder stage of the basket

    def __add__(self, other: _Draft) -> _Draft:
        return _Draft(*(np.r_[getattr(self, f), getattr(other, f)] for f in _DRAFT_FIELDS))

    def in_time_order(self) -> _Draft:
        order = np.lexsort((self.person, self.store, self.platform, self.secs))
        return _Draft(*(getattr(self, f)[order] for f in _DRAFT_FIELDS))


_DRAFT_FIELDS = ("person", "platform", "store", "secs", "id_type", "id_value", "stage")


def build_commerce(
    rng: np.random.Generator, people: People, acq_channel: np.ndarray, clock: Clock
) -> Commerce:
    known, joined = _known_orders(rng, people, acq_channel, clock)
    draft = (known + _walk_ins(rng, known, clock)).in_time_order()
    items, amount, first_line, lines = _items(rng, draft.platform, draft.stage, draft.secs, clock)
    status, refund, late, refund_s = _statuses(rng, amount, first_line, lines, draft.secs, clock)
    orders = Orders(
        order_id=_order_ids(rng, draft.platform, draft.store, draft.secs, clock),
        platform=draft.platform,
        store=draft.store,
        person=draft.person,
        id_type=draft.id_type,
        id_value=draft.id_value,
        created_s=draft.secs,
        amount=amount,
        status=status,
        refund=refund,
        late_refund=late,
        refund_s=refund_s,
    )
    return Commerce(orders, items, _members(rng, people, joined, orders))


def _known_orders(
    rng: np.random.Generator, people: People, acq_channel: np.ndarray, clock: Clock
) -> tuple[_Draft, np.ndarray]:
    """Orders of the generated people, and each person's membership join time (INF: none)."""
    person, platform, secs = (
        np.concatenate(parts)
        for parts in zip(
            _repeat_orders(rng, people, clock),
            _welcome_orders(rng, people, acq_channel, clock),
            strict=True,
        )
    )
    first_pos = np.full(people.n, INF)
    np.minimum.at(first_pos, person[platform == PF_POS], secs[platform == PF_POS])
    joined, joins_at_till = _join_times(rng, people, first_pos, clock)
    joining = joins_at_till[person] & (secs == first_pos[person])
    id_type, id_value = _customer_refs(rng, people, person, platform, secs, joined, joining)
    store = _order_stores(rng, people, person, platform)
    stage = _ladder_stage(person, secs)
    return _Draft(person, platform, store, secs, id_type, id_value, stage), joined


def daily_weight(clock: Clock, platform: int) -> np.ndarray:
    day = np.arange(clock.days)
    if platform in (PF_POS, PF_MP):
        return np.asarray(STORE_WEEKDAY)[clock.weekday(day)]
    weight = np.asarray(ONLINE_WEEKDAY)[clock.weekday(day)]
    for when, lift in ONLINE_PEAKS:
        peak = clock.day_of(when)
        presale = (day >= peak - PRESALE_DAYS) & (day < peak)
        weight = np.where(presale, weight * PRESALE_LIFT, weight)
        weight = np.where(day == peak, weight * lift, weight)
    return weight


def _repeat_orders(
    rng: np.random.Generator, people: People, clock: Clock
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson orders over each person's active span, per platform they have an account on."""
    jitter = rng.gamma(2.0, 0.5, size=(people.n, len(PLATFORMS)))
    share = people.has[:, PLATFORM_SOURCE] * PLATFORM_WEIGHT * jitter
    total = share.sum(axis=1, keepdims=True)
    share = share / np.where(total > 0, total, 1.0)
    span = people.end_s - people.acq_s
    persons, platforms, times = [], [], []
    for pf in range(len(PLATFORMS)):
        # Draw at the busiest day's rate, then thin by each day's weight (weekday, festivals).
        weight = daily_weight(clock, pf)
        lam = people.rate * share[:, pf] * span / DAY * (weight.max() / weight.mean())
        person = np.repeat(np.arange(people.n), rng.poisson(lam))
        moment = people.acq_s[person] + (rng.random(len(person)) * span[person]).astype(np.int64)
        day = moment // DAY
        keep = rng.random(len(person)) < weight[day] / weight.max()
        person, day = person[keep], day[keep]
        secs = day * DAY + time_of_day(rng, len(person), HOURS[pf])
        # On the day of first contact, nothing is bought before that contact.
        early = secs < people.acq_s[person]
        secs = np.where(early, people.acq_s[person] + rng.integers(300, 3600, len(person)), secs)
        persons.append(person)
        platforms.append(np.full(len(person), pf))
        times.append(np.minimum(secs, clock.end_s - 1))
    return np.concatenate(persons), np.concatenate(platforms), np.concatenate(times)


def _welcome_orders(
    rng: np.random.Generator, people: People, acq_channel: np.ndarray, clock: Clock
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A first order minutes after scanning the store QR or the order page's friend code."""
    can_buy = people.has[:, POS] | people.has[:, MP]
    eligible = (
        ~people.legacy
        & can_buy
        & (people.rate > 0)
        & np.isin(acq_channel, (CH_STORE_QR, CH_MP_PAGE))
        & (rng.random(people.n) < WELCOME_ORDER)
    )
    person = np.flatnonzero(eligible)
    at_till = (acq_channel[person] == CH_STORE_QR) & people.has[person, POS]
    platform = np.where(at_till | ~people.has[person, MP], PF_POS, PF_MP)
    secs = people.acq_s[person] + rng.integers(120, 1200, size=len(person))
    keep = secs < clock.end_s
    return person[keep], platform[keep], secs[keep]


def _ladder_stage(person: np.ndarray, secs: np.ndarray) -> np.ndarray:
    by_person = np.lexsort((secs, person))
    rank = np.empty(len(person), dtype=np.int64)
    rank[by_person] = run_rank(person[by_person])
    return np.searchsorted(STAGE_EDGES, rank, side="right")


def _join_times(
    rng: np.random.Generator, people: People, first_pos: np.ndarray, clock: Clock
) -> tuple[np.ndarray, np.ndarray]:
    """Membership join time per person (INF for non-members) and who joined at their first order."""
    members = np.flatnonzero(people.has[:, POS])
    m = len(members)
    legacy = people.legacy[members]
    first = first_pos[members]
    long_ago = -rng.integers(30, 900, size=m) * DAY + time_of_day(
        rng, m, {h: 1 for h in range(9, 22)}
    )
    at_till = np.where(first < INF, first, 0) + rng.integers(60, 900, size=m)
    later = people.acq_s[members] + (rng.exponential(10, size=m) * DAY).astype(np.int64)
    same_day = ~legacy & (first < INF) & (rng.random(m) < SAME_DAY_JOIN)
    joined = np.full(people.n, INF)
    joined[members] = np.minimum(
        np.where(legacy, long_ago, np.where(same_day, at_till, later)), clock.end_s - 3600
    )
    joins_at_till = np.zeros(people.n, dtype=bool)
    joins_at_till[members] = same_day
    return joined, joins_at_till


def _order_stores(
    rng: np.random.Generator, people: People, person: np.ndarray, platform: np.ndarray
) -> np.ndarray:
    """Mostly the home store, sometimes another store of the same city; -1 online."""
    home = people.store[person]
    city = np.array([catalog.CITIES.index(s.city) for s in catalog.STORES])
    other = home.copy()
    for c in range(len(catalog.CITIES)):
        rows = np.flatnonzero(city[home] == c)
        in_city = np.flatnonzero(city == c)
        other[rows] = in_city[rng.integers(0, len(in_city), size=len(rows))]
    stays = rng.random(len(person)) < np.where(platform == PF_POS, 0.88, 0.92)
    return np.where(platform >= PF_TMALL, -1, np.where(stays, home, other))


def _customer_refs(
    rng: np.random.Generator,
    people: People,
    person: np.ndarray,
    platform: np.ndarray,
    secs: np.ndarray,
    joined: np.ndarray,
    joining: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(id_type, id_value) per order: the identifier the platform's export carries."""
    n = len(person)
    id_type = np.full(n, "", dtype="U16")
    id_value = np.full(n, "", dtype="U40")
    pos = np.flatnonzero(platform == PF_POS)
    p = person[pos]
    before_joining = secs[pos] < joined[p]
    # Members give their card or phone; before joining most are just anonymous at the till,
    # and those joining today gave their phone to sign up.
    phone_p = np.where(joining[pos], 0.7, np.where(before_joining, 0.2, 0.25))
    use_phone = people.pos_phone_ok[p] & (rng.random(len(p)) < phone_p)
    by_card = ~before_joining & ~use_phone
    id_type[pos] = np.select([use_phone, by_card], ["phone", "member_no"], "")
    id_value[pos] = np.select([use_phone, by_card], [people.pos_phone[p], people.member_no[p]], "")
    ids = {PF_MP: people.openid_mp, PF_TMALL: people.tmall_nick, PF_JD: people.jd_pin}
    for pf, values in ids.items():
        rows = np.flatnonzero(platform == pf)
        id_type[rows] = PLATFORM_ID_TYPE[pf]
        id_value[rows] = values[person[rows]]
    return id_type, id_value


def _walk_ins(rng: np.random.Generator, known: _Draft, clock: Clock) -> _Draft:
    """Unrecognised till orders, enough that ANONYMOUS_SHARE of POS orders are anonymous."""
    pos = known.platform == PF_POS
    n_pos, n_anon = int(pos.sum()), int((pos & (known.id_type == "")).sum())
    n = max(0, round((ANONYMOUS_SHARE * n_pos - n_anon) / (1 - ANONYMOUS_SHARE)))
    traffic = np.bincount(known.store[pos], minlength=len(catalog.STORES)) + 1.0
    store = rng.choice(len(catalog.STORES), size=n, p=traffic / traffic.sum())
    daily = daily_weight(clock, PF_POS) * (0.6 + np.arange(clock.days) / clock.days)
    day = rng.choice(clock.days, size=n, p=daily / daily.sum())
    secs = day * DAY + time_of_day(rng, n, SHOP_HOURS)
    placeholder = rng.random(n) < PLACEHOLDER_SHARE
    # Strangers' baskets: a mix of ladder stages.
    stage = rng.choice(len(STAGE_EDGES) + 1, size=n, p=[0.4, 0.3, 0.2, 0.1])
    return _Draft(
        person=np.full(n, -1),
        platform=np.full(n, PF_POS),
        store=store,
        secs=secs,
        id_type=np.where(placeholder, "phone", ""),
        id_value=np.where(placeholder, catalog.PLACEHOLDER_PHONE, ""),
        stage=stage,
    )


def _sku_weights(sold_online: bool, stage: int) -> np.ndarray:
    where = "online" if sold_online else "store"
    mix = ROLE_MIX[where][stage]
    weights = np.zeros(len(PRODUCTS))
    for role_idx, role in enumerate(catalog.LADDER):
        fits = [
            i for i, p in enumerate(PRODUCTS) if p.ladder_role == role and p.sold in (where, "both")
        ]
        if fits:
            weights[fits] = mix[role_idx] / len(fits)
    return weights / weights.sum()


def _items(
    rng: np.random.Generator,
    platform: np.ndarray,
    stage: np.ndarray,
    secs: np.ndarray,
    clock: Clock,
) -> tuple[Items, np.ndarray, np.ndarray, np.ndarray]:
    """Basket lines (duplicate SKUs merged), order amounts, first line amount, lines per order."""
    n = len(platform)
    online = platform >= PF_TMALL
    n_lines = 1 + np.where(
        online,
        rng.choice(3, size=n, p=[0.55, 0.3, 0.15]),
        rng.choice(3, size=n, p=[0.65, 0.28, 0.07]),
    )
    order = np.repeat(np.arange(n), n_lines)
    sku = np.empty(len(order), dtype=np.int64)
    for sold_online in (False, True):
        for s in range(len(STAGE_EDGES) + 1):
            rows = np.flatnonzero((online[order] == sold_online) & (stage[order] == s))
            sku[rows] = rng.choice(len(PRODUCTS), size=len(rows), p=_sku_weights(sold_online, s))
    qty = np.where(
        online[order],
        rng.choice([1, 2, 3], size=len(order), p=[0.75, 0.2, 0.05]),
        np.where(rng.random(len(order)) < 0.9, 1, 2),
    )
    price = np.array([p.price_fen for p in PRODUCTS])[sku]
    amount = qty * price * _discounts(rng, online, secs, clock)[order] // 100
    # Two lines of the same SKU become one: (order_id, sku) is the natural key.
    key, inverse = np.unique(order * len(PRODUCTS) + sku, return_inverse=True)
    items = Items(
        order=key // len(PRODUCTS),
        sku=key % len(PRODUCTS),
        qty=np.bincount(inverse, weights=qty).astype(np.int64),
        amount=np.bincount(inverse, weights=amount).astype(np.int64),
    )
    order_amount = np.bincount(items.order, weights=items.amount, minlength=n).astype(np.int64)
    lines = np.bincount(items.order, minlength=n)
    first_line = items.amount[np.searchsorted(items.order, np.arange(n))]
    return items, order_amount, first_line, lines


def _discounts(rng: np.random.Generator, online: np.ndarray, secs: np.ndarray, clock: Clock):
    n = len(online)
    member_day = clock.weekday(secs // DAY) == 4
    picks = {k: DISCOUNTS[rng.choice(len(DISCOUNTS), size=n, p=p)] for k, p in DISCOUNT_MIX.items()}
    return np.where(
        online, picks["online"], np.where(member_day, picks["member_day"], picks["store"])
    )


def _statuses(
    rng: np.random.Generator,
    amount: np.ndarray,
    first_line: np.ndarray,
    lines: np.ndarray,
    secs: np.ndarray,
    clock: Clock,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(amount)
    u = rng.random(n)
    cancelled = u < CANCEL_SHARE
    refunded = (u >= CANCEL_SHARE) & (u < CANCEL_SHARE + REFUND_SHARE)
    # A partial refund returns one line of a basket, or half of a single-line order.
    partial = refunded & (rng.random(n) < PARTIAL_REFUND)
    partial_fen = np.where(lines > 1, first_line, amount // 2)
    refund = np.where(refunded, np.where(partial, partial_fen, amount), 0)
    status = np.select([cancelled, refunded], ["cancelled", "refunded"], "paid")
    late = refunded & (rng.random(n) < LATE_REFUND_ROW)
    refund_s = np.minimum(secs + rng.integers(3600, 10 * DAY, size=n), clock.end_s - 1)
    return status, refund, late, refund_s


def _order_ids(
    rng: np.random.Generator,
    platform: np.ndarray,
    store: np.ndarray,
    secs: np.ndarray,
    clock: Clock,
) -> np.ndarray:
    """Ids as each platform writes them: till `S001-20250701-0042`, `MP…`, Tmall / JD numbers."""
    day = secs // DAY
    ymd = np.strings.replace(clock.dates(np.arange(clock.days)), "-", "")
    ids = np.empty(len(platform), dtype="U24")
    store_codes = np.array([s.code for s in catalog.STORES])

    def seq_within(rows: np.ndarray, key: np.ndarray) -> np.ndarray:
        by_key = np.argsort(key, kind="stable")  # rows are in time order already
        seq = np.empty(len(rows), dtype=np.int64)
        seq[by_key] = run_rank(key[by_key]) + 1
        return seq

    pos = np.flatnonzero(platform == PF_POS)
    seq = seq_within(pos, store[pos] * clock.days + day[pos])
    ids[pos] = cat(store_codes[store[pos]], "-", ymd[day[pos]], "-", zpad(seq, 4))
    mp = np.flatnonzero(platform == PF_MP)
    ids[mp] = cat("MP", ymd[day[mp]], zpad(seq_within(mp, day[mp]), 6))
    for pf, base, step in (
        (PF_TMALL, 2_400_000_000_000_000_000, 1_000_003),
        (PF_JD, 300_000_000_000, 97),
    ):
        rows = np.flatnonzero(platform == pf)
        numbers = (
            base + np.arange(len(rows), dtype=np.int64) * step + rng.integers(0, step, len(rows))
        )
        ids[rows] = numbers.astype("U")
    return ids


def _members(
    rng: np.random.Generator, people: People, joined: np.ndarray, orders: Orders
) -> Members:
    """Every POS record's membership; points = net yuan spent in store and mini-program since joining."""
    members = np.flatnonzero(people.has[:, POS])
    p = orders.person
    earns = (
        (p >= 0)
        & (orders.platform <= PF_MP)
        & (orders.status != "cancelled")
        & (orders.created_s >= joined[np.maximum(p, 0)])
    )
    net = np.bincount(p[earns], weights=(orders.amount - orders.refund)[earns], minlength=people.n)
    carried = np.where(people.legacy[members], rng.integers(0, 3000, size=len(members)), 0)
    points = (net[members] // 100).astype(np.int64) + carried
    silver, gold, black = catalog.MEMBER_LEVELS
    gold_points, black_points = catalog.MEMBER_LEVEL_POINTS
    level = np.select([points >= black_points, points >= gold_points], [black, gold], silver)
    order = np.lexsort((people.member_no[members], joined[members]))
    return Members(members[order], joined[members][order], level[order], points[order])
