"""The brand's organisation and reach: staff, groups, referrals, connections, channel reach and cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siyu.demo import catalog
from siyu.demo.catalog import (
    CH_DOUYIN,
    CH_JD,
    CH_MOMENTS,
    CH_REFERRAL,
    CH_STORE_QR,
    CH_TMALL,
    CHANNELS,
)
from siyu.demo.people import ARCHETYPES, JD, MP, OA, TMALL, WECOM, People, chinese_names
from siyu.demo.util import DAY, Clock, cat, choice_rows, time_of_day, zpad

FRIEND, GROUP_MEMBER, OA_FOLLOW = range(3)
KINDS = ("wecom_friend", "group_member", "oa_follow")
KIND_ID_TYPE = ("external_userid", "external_userid", "openid_oa")
NONE = -1
REFERRAL_SHARE = 0.015  # of people invited by a friend
SUPER_SHARE = 0.3  # of invitees brought by the handful of enthusiasts


@dataclass(frozen=True)
class Org:
    staff_code: np.ndarray
    staff_name: np.ndarray
    staff_store: np.ndarray  # store index, -1 for HQ
    staff_persona: np.ndarray
    group_code: np.ndarray
    group_name: np.ndarray
    group_owner: np.ndarray  # staff index
    group_store: np.ndarray
    group_created_s: np.ndarray

    @property
    def welfare_officer(self) -> int:
        return int(np.flatnonzero(self.staff_persona == "brand")[0])

    @property
    def expert(self) -> int:
        return int(np.flatnonzero(self.staff_persona == "expert")[0])


def build_org(rng: np.random.Generator, clock: Clock) -> Org:
    n_stores = len(catalog.STORES)
    per = catalog.STAFF_PER_STORE
    names = np.r_[chinese_names(rng, n_stores * per), [name for name, _ in catalog.HQ_STAFF]]
    stores = np.r_[np.repeat(np.arange(n_stores), per), [NONE] * len(catalog.HQ_STAFF)]
    personas = np.r_[np.tile(catalog.STORE_PERSONAS, n_stores), [p for _, p in catalog.HQ_STAFF]]
    n_groups = rng.integers(1, 4, size=n_stores)
    group_store = np.repeat(np.arange(n_stores), n_groups)
    number = np.arange(len(group_store)) - np.repeat(np.cumsum(n_groups) - n_groups, n_groups) + 1
    hood = np.array([s.name.split("·")[1].removesuffix("店") for s in catalog.STORES])
    # The manager usually owns the group; sometimes the floor guide does.
    owner_slot = rng.choice(per, size=len(group_store), p=[0.6, 0.3, 0.1])
    created = rng.integers(0, 21, size=len(group_store)) * DAY + time_of_day(
        rng, len(group_store), {10: 1, 14: 1, 16: 1}
    )
    return Org(
        staff_code=cat("G", zpad(np.arange(1, len(names) + 1), 3)),
        staff_name=names,
        staff_store=stores,
        staff_persona=personas,
        group_code=cat("Q", zpad(np.arange(1, len(group_store) + 1), 3)),
        group_name=cat(hood[group_store], "店咖啡福利", number.astype("U"), "群"),
        group_owner=group_store * per + owner_slot,
        group_store=group_store,
        group_created_s=created,
    )


@dataclass(frozen=True)
class Referrals:
    referrer: np.ndarray  # person index
    invitee: np.ndarray
    created_s: np.ndarray
    referrer_type: np.ndarray  # openid_mp / external_userid — both sides are WeChat users
    invitee_type: np.ndarray


def plan_referrals(rng: np.random.Generator, people: People, clock: Clock) -> Referrals:
    """Pick referrer → invitee pairs: most referrers bring one friend, a handful bring many.

    Mutates `people` so the handful are super users (steady buyers who never churn) and
    invitees buy.
    """
    wechat = people.has[:, WECOM] & people.has[:, MP]
    acq_day = people.acq_s // DAY
    invitee_pool = np.flatnonzero(wechat & ~people.legacy & (acq_day >= 45))
    referrer_pool = np.flatnonzero(wechat & (people.legacy | (acq_day < 30)))
    n_inv = min(max(20, round(REFERRAL_SHARE * people.n)), len(invitee_pool))
    n_super = max(3, round(n_inv / 30))
    n_by_super = max(2 * n_super, round(SUPER_SHARE * n_inv))
    n_single = min(n_inv - n_by_super, len(referrer_pool) - n_super)
    if n_single < 0:
        empty = np.zeros(0, dtype=np.int64)
        return Referrals(empty, empty, empty, empty.astype("U"), empty.astype("U"))
    n_inv = n_by_super + n_single
    invitee = rng.choice(invitee_pool, size=n_inv, replace=False)
    referrers = rng.choice(referrer_pool, size=n_super + n_single, replace=False)
    supers, singles = referrers[:n_super], referrers[n_super:]
    # Every enthusiast brings at least two friends, the keenest many more.
    keen = rng.lognormal(0.0, 0.5, size=n_super)
    extra = supers[rng.choice(n_super, size=n_by_super - 2 * n_super, p=keen / keen.sum())]
    referrer = rng.permutation(np.r_[np.repeat(supers, 2), extra, singles])
    people.rate[supers] = np.maximum(people.rate[supers], 0.12)
    people.end_s[supers] = clock.end_s
    people.rate[invitee] = np.maximum(people.rate[invitee], 0.03)
    # The invite link is opened shortly before the friend request.
    created = people.acq_s[invitee] - rng.integers(60, 3600, size=n_inv)
    order = np.lexsort((invitee, created))
    return Referrals(
        referrer=referrer[order],
        invitee=invitee[order],
        created_s=created[order],
        referrer_type=np.where(rng.random(n_inv) < 0.6, "openid_mp", "external_userid")[order],
        invitee_type=np.where(rng.random(n_inv) < 0.5, "openid_mp", "external_userid")[order],
    )


@dataclass(frozen=True)
class Connections:
    kind: np.ndarray
    person: np.ndarray
    staff: np.ndarray  # -1 unless a friendship
    group: np.ndarray  # -1 unless a group membership
    channel: np.ndarray  # -1 when unattributed
    created_s: np.ndarray
    ended_s: np.ndarray  # -1 while active


def build_connections(
    rng: np.random.Generator, people: People, org: Org, referrals: Referrals, clock: Clock
) -> Connections:
    friends = _friendships(rng, people, org, referrals, clock)
    parts = [friends, _groups(rng, people, org, friends, clock), _follows(rng, people, clock)]
    merged = Connections(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))
    order = np.lexsort((merged.person, merged.kind, merged.created_s))
    return Connections(*(getattr(merged, f)[order] for f in _FIELDS))


_FIELDS = ("kind", "person", "staff", "group", "channel", "created_s", "ended_s")


def acquisition_channel(people: People, conns: Connections) -> np.ndarray:
    """Channel of each person's first WeCom friendship (-1 without one)."""
    out = np.full(people.n, NONE)
    first = conns.kind == FRIEND
    # Connections are in time order; writing in reverse leaves the earliest in place.
    idx = np.flatnonzero(first)[::-1]
    out[conns.person[idx]] = conns.channel[idx]
    return out


def _friendships(
    rng: np.random.Generator, people: People, org: Org, referrals: Referrals, clock: Clock
) -> Connections:
    who = np.flatnonzero(people.has[:, WECOM])
    n = len(who)
    created = np.where(people.legacy[who], _growth_times(rng, n, clock), people.acq_s[who])
    channel = _friend_channels(rng, people, who, referrals, created)
    staff = _friend_staff(rng, people, org, who)
    # About one friend in five deletes the guide, most within the first weeks (industry norm).
    ended = _endings(rng, created, 0.2, 30, clock)
    # Some store-side friends also add the welfare officer for the daily offers.
    extra = (org.staff_store[staff] != NONE) & (rng.random(n) < 0.12)
    extra_created = created + (rng.exponential(20, size=n) * DAY).astype(np.int64)
    extra &= extra_created < clock.end_s
    e = np.flatnonzero(extra)
    return Connections(
        kind=np.full(n + len(e), FRIEND),
        person=np.r_[who, who[e]],
        staff=np.r_[staff, np.full(len(e), org.welfare_officer)],
        group=np.full(n + len(e), NONE),
        channel=np.r_[channel, channel[e]],
        created_s=np.r_[created, extra_created[e]],
        ended_s=np.r_[ended, _endings(rng, extra_created[e], 0.06, 60, clock)],
    )


def _friend_channels(
    rng: np.random.Generator,
    people: People,
    who: np.ndarray,
    referrals: Referrals,
    created: np.ndarray,
) -> np.ndarray:
    weights = np.array([a.channel_w for a in ARCHETYPES], dtype=float)[people.arch[who]]
    # Package cards only reach people who bought on that platform.
    weights[:, CH_TMALL] *= people.has[who, TMALL]
    weights[:, CH_JD] *= people.has[who, JD]
    weights[weights.sum(axis=1) == 0, CH_STORE_QR] = 1.0
    channel = choice_rows(rng, weights)
    # Douyin ads run every other fortnight; between flights the same budget goes to Moments.
    channel = np.where((channel == CH_DOUYIN) & douyin_resting(created // DAY), CH_MOMENTS, channel)
    invited = np.isin(who, referrals.invitee)
    return np.where(invited, CH_REFERRAL, channel)


def _friend_staff(
    rng: np.random.Generator, people: People, org: Org, who: np.ndarray
) -> np.ndarray:
    n = len(who)
    per = catalog.STAFF_PER_STORE
    store_staff = people.store[who] * per + rng.choice(per, size=n, p=[0.4, 0.35, 0.25])
    online_fan = people.arch[who] == next(
        i for i, a in enumerate(ARCHETYPES) if a.name == "ecommerce_fan"
    )
    hq_share = np.where(online_fan, 0.7, 0.12)
    u = rng.random(n)
    staff = np.where(u < hq_share, org.welfare_officer, store_staff)
    return np.where((u >= hq_share) & (u < hq_share + 0.03), org.expert, staff)


def _groups(
    rng: np.random.Generator, people: People, org: Org, friends: Connections, clock: Clock
) -> Connections:
    # Store friends are invited into one of their home store's groups (LBS groups within 1 km).
    at_store = (org.staff_store[friends.staff] != NONE) & (rng.random(len(friends.staff)) < 0.35)
    rows = np.flatnonzero(at_store)
    person = friends.person[rows]
    store = people.store[person]
    counts = np.bincount(org.group_store, minlength=len(catalog.STORES))
    first_group = np.cumsum(counts) - counts
    group = first_group[store] + (rng.random(len(rows)) * counts[store]).astype(np.int64)
    earliest = np.maximum(friends.created_s[rows], org.group_created_s[group])
    created = earliest + (rng.exponential(5, size=len(rows)) * DAY).astype(np.int64) + 60
    keep = created < clock.end_s
    created, person, group = created[keep], person[keep], group[keep]
    n = len(person)
    return Connections(
        kind=np.full(n, GROUP_MEMBER),
        person=person,
        staff=np.full(n, NONE),
        group=group,
        channel=np.full(n, NONE),
        created_s=created,
        ended_s=_endings(rng, created, 0.15, 60, clock),
    )


def _follows(rng: np.random.Generator, people: People, clock: Clock) -> Connections:
    who = np.flatnonzero(people.has[:, OA])
    n = len(who)
    acq = people.acq_s[who]
    later = acq + (rng.exponential(15, size=n) * DAY).astype(np.int64)
    # Followers who would only follow after the range followed some time within it instead.
    within = acq + (rng.random(n) * (clock.end_s - acq)).astype(np.int64)
    created = np.where(later < clock.end_s, later, within)
    created = np.where(people.legacy[who], _growth_times(rng, n, clock), created)
    return Connections(
        kind=np.full(n, OA_FOLLOW),
        person=who,
        staff=np.full(n, NONE),
        group=np.full(n, NONE),
        channel=np.full(n, NONE),
        created_s=created,
        ended_s=_endings(rng, created, 0.12, 40, clock),
    )


def _growth_times(rng: np.random.Generator, n: int, clock: Clock) -> np.ndarray:
    growth = 0.5 + np.arange(clock.days) / clock.days
    day = rng.choice(clock.days, size=n, p=growth / growth.sum())
    return day * DAY + time_of_day(rng, n, {h: 1.0 for h in range(9, 22)})


def _endings(
    rng: np.random.Generator, created: np.ndarray, share: float, mean_days: float, clock: Clock
) -> np.ndarray:
    """Deleted friends, left groups, unfollows: an end time for `share` of rows, -1 otherwise."""
    n = len(created)
    ended = created + 600 + (rng.exponential(mean_days, size=n) * DAY).astype(np.int64)
    return np.where((rng.random(n) < share) & (ended < clock.end_s), ended, NONE)


# --- channel reach and cost -------------------------------------------------------------------


def douyin_resting(day: np.ndarray) -> np.ndarray:
    """Douyin ads run every other fortnight; views trickle on between flights, friends do not."""
    return (day // catalog.DOUYIN_FLIGHT_DAYS) % 2 == 1


def daily_connections(conns: Connections, clock: Clock) -> np.ndarray:
    """(channels, days) count of attributed connections created each day."""
    attributed = conns.channel != NONE
    flat = conns.channel[attributed] * clock.days + conns.created_s[attributed] // DAY
    return np.bincount(flat, minlength=len(CHANNELS) * clock.days).reshape(len(CHANNELS), -1)


def channel_reach(rng: np.random.Generator, conns: Connections, clock: Clock) -> np.ndarray:
    """(channels, days) reach counts, never below the connections made that day."""
    made = daily_connections(conns, clock)
    pass_rate = np.array([c.pass_rate for c in CHANNELS])[:, None]
    misses = rng.poisson(made * (1 / pass_rate - 1))
    # Scans and views that lead nowhere, also on days without a single new friend.
    typical = made.mean(axis=1, keepdims=True) / pass_rate
    background = rng.poisson(np.broadcast_to(0.05 * typical, made.shape))
    reach = made + misses + background
    off_flight = douyin_resting(np.arange(clock.days))
    reach[CH_DOUYIN, off_flight] = made[CH_DOUYIN, off_flight] + rng.poisson(
        0.3 * typical[CH_DOUYIN, 0], size=int(off_flight.sum())
    )
    return reach


def channel_costs(
    rng: np.random.Generator,
    conns: Connections,
    referrals: Referrals,
    parcels: dict[int, np.ndarray],
    clock: Clock,
) -> np.ndarray:
    """(channels, days) cost in fen; -1 marks "no cost row" (channels that are simply free)."""
    made = daily_connections(conns, clock)
    cost = np.full(made.shape, NONE, dtype=np.int64)
    cost[CH_STORE_QR] = 0  # QR standees are free: explicit zero-cost rows
    for channel, per_day in parcels.items():
        cost[channel] = np.where(per_day > 0, per_day * catalog.PACKAGE_CARD_FEN, NONE)
    # Paid ads: a cost per friend won plus a floor that scales with the brand's size.
    floor = 0.02 * max(made.sum() / clock.days, 1.0)
    for channel in (CH_DOUYIN, CH_MOMENTS):
        cac = CHANNELS[channel].cac_fen
        noise = rng.lognormal(0.0, 0.25, size=clock.days)
        cost[channel] = np.round((made[channel] * noise + floor) * cac).astype(np.int64)
    cost[CH_DOUYIN, douyin_resting(np.arange(clock.days))] = NONE
    rewards = np.bincount(referrals.created_s // DAY, minlength=clock.days)
    cost[CH_REFERRAL] = np.where(rewards > 0, rewards * catalog.REFERRAL_REWARD_FEN, NONE)
    return cost
