"""What the brand sends and hears back: deliveries, interactions, surveys and opt-outs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siyu.demo.commerce import PF_MP, Members, Orders
from siyu.demo.network import FRIEND, GROUP_MEMBER, OA_FOLLOW, Connections
from siyu.demo.people import People
from siyu.demo.util import DAY, Clock, first_of_runs

CHANNELS = ("wecom", "group", "sms", "oa")
WECOM, GROUP, SMS, OA = range(len(CHANNELS))
ID_TYPE = ("external_userid", "external_userid", "phone", "openid_oa")
EVERY_DAYS = (30, 30, 90, 45)  # one message per that many days of an open connection
FAILURE = (0.02, 0.01, 0.08, 0.03)
# The coffee playbook's four daily group pushes: commute, lunch flash coupon, snacks, e-commerce.
GROUP_PUSH_S = (8 * 3600 + 1800, 12 * 3600, 15 * 3600, 20 * 3600)
# Chance a delivered message draws a response, and which kinds.
RESPONSE = (0.25, 0.15, 0.05, 0.3)
RESPONSE_KINDS = (("reply", "click"), ("click", "view"), ("click",), ("view", "click"))
RESPONSE_MIX = ((0.6, 0.4), (0.7, 0.3), (1.0,), (0.8, 0.2))
OPT_OUT_MIX = {SMS: 0.5, WECOM: 0.3, OA: 0.2}
SURVEY_SHARE = 0.03
SCORE_MIX = (0.03, 0.05, 0.12, 0.35, 0.45)


@dataclass(frozen=True)
class Touches:
    """Rows that refer to a person through the identifier type their channel implies."""

    channel: np.ndarray
    person: np.ndarray
    created_s: np.ndarray
    label: np.ndarray  # status of a delivery, kind of an interaction

    def take(self, rows: np.ndarray) -> Touches:
        return Touches(
            self.channel[rows], self.person[rows], self.created_s[rows], self.label[rows]
        )


@dataclass(frozen=True)
class Messages:
    deliveries: Touches
    interactions: Touches
    opt_outs: Touches


def build_messages(
    rng: np.random.Generator,
    people: People,
    conns: Connections,
    members: Members,
    clock: Clock,
) -> Messages:
    deliveries = _deliveries(rng, people, conns, members, clock)
    n_opt = max(12, round(0.002 * people.n))
    opt_outs = _opt_outs(rng, deliveries, n_opt, people.n, clock)
    deliveries = _respect_opt_outs(deliveries, opt_outs, people.n)
    return Messages(deliveries, _interactions(rng, deliveries, people.n, clock), opt_outs)


def identity_key(channel: np.ndarray, person: np.ndarray, n_people: int) -> np.ndarray:
    """One integer per (identifier type, person): WeCom and group share the external_userid."""
    type_code = np.array([ID_TYPE.index(t) for t in ID_TYPE])[channel]
    return type_code * n_people + person


def _deliveries(
    rng: np.random.Generator,
    people: People,
    conns: Connections,
    members: Members,
    clock: Clock,
) -> Touches:
    stop = np.where(conns.ended_s >= 0, conns.ended_s, clock.end_s)
    sources = [
        (WECOM, conns.kind == FRIEND),
        (GROUP, conns.kind == GROUP_MEMBER),
        (OA, conns.kind == OA_FOLLOW),
    ]
    parts = [
        _spread(rng, ch, conns.person[m], conns.created_s[m], stop[m], clock) for ch, m in sources
    ]
    # SMS goes to members whose till phone is really theirs, from the day they joined.
    member, since = members.person, members.joined_s
    texting = people.pos_phone_ok[member]
    parts.append(
        _spread(
            rng,
            SMS,
            member[texting],
            np.maximum(since[texting], 0),
            np.full(int(texting.sum()), clock.end_s),
            clock,
        )  # fmt: skip
    )
    channel, person, secs = (np.concatenate(x) for x in zip(*parts, strict=True))
    failed = rng.random(len(channel)) < np.asarray(FAILURE)[channel]
    label = np.where(failed, "failed", "delivered")
    keep = first_of_runs(secs, channel, person)
    return Touches(channel[keep], person[keep], secs[keep], label[keep])


def _spread(
    rng: np.random.Generator,
    channel: int,
    person: np.ndarray,
    start: np.ndarray,
    stop: np.ndarray,
    clock: Clock,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Messages over each [start, stop) window at the channel's send times."""
    count = rng.poisson((stop - start) / DAY / EVERY_DAYS[channel])
    row = np.repeat(np.arange(len(person)), count)
    day = (start[row] + rng.random(len(row)) * (stop - start)[row]).astype(np.int64) // DAY
    n = len(row)
    if channel == GROUP:
        tod = np.asarray(GROUP_PUSH_S)[rng.integers(0, 4, n)] + rng.integers(0, 180, n)
    elif channel == SMS:
        tod = np.where(rng.random(n) < 0.5, 11 * 3600, 18 * 3600) + rng.integers(0, 600, n)
    elif channel == OA:
        tod = 20 * 3600 + rng.integers(0, 300, n)
    else:
        tod = rng.integers(10 * 3600, 21 * 3600, n)
    secs = day * DAY + tod
    inside = (secs >= start[row]) & (secs < stop[row])
    return np.full(int(inside.sum()), channel), person[row][inside], secs[inside]


def _opt_outs(
    rng: np.random.Generator, deliveries: Touches, n_opt: int, n_people: int, clock: Clock
) -> Touches:
    """A few dozen people reply 退订 to a text, block the guide or mute the account after a message."""
    chosen = []
    for channel, share in OPT_OUT_MIX.items():
        rows = rng.permutation(
            np.flatnonzero((deliveries.label == "delivered") & (deliveries.channel == channel))
        )
        # One opt-out per identifier, picked uniformly among identifiers, not among messages.
        _, first = np.unique(deliveries.person[rows], return_index=True)
        candidates = rows[np.sort(first)]
        k = min(len(candidates), round(share * n_opt))
        chosen.append(rng.choice(candidates, size=k, replace=False))
    picked = deliveries.take(np.concatenate(chosen))
    secs = np.minimum(
        picked.created_s + rng.integers(60, 7200, len(picked.person)), clock.end_s - 1
    )
    keep = first_of_runs(secs, identity_key(picked.channel, picked.person, n_people))
    return Touches(picked.channel[keep], picked.person[keep], secs[keep], picked.label[keep])


def _respect_opt_outs(deliveries: Touches, opt_outs: Touches, n_people: int) -> Touches:
    """Nothing is sent to an identifier after it opted out."""
    if len(opt_outs.person) == 0:
        return deliveries
    opted = identity_key(opt_outs.channel, opt_outs.person, n_people)
    by_key = np.argsort(opted)
    keys, times = opted[by_key], opt_outs.created_s[by_key]
    key = identity_key(deliveries.channel, deliveries.person, n_people)
    at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    blocked = (keys[at] == key) & (deliveries.created_s > times[at])
    return deliveries.take(np.flatnonzero(~blocked))


def _interactions(
    rng: np.random.Generator, deliveries: Touches, n_people: int, clock: Clock
) -> Touches:
    delivered = deliveries.take(np.flatnonzero(deliveries.label == "delivered"))
    responds = rng.random(len(delivered.channel)) < np.asarray(RESPONSE)[delivered.channel]
    d = delivered.take(np.flatnonzero(responds))
    kind = np.empty(len(d.channel), dtype="U8")
    for ch in range(len(CHANNELS)):
        rows = np.flatnonzero(d.channel == ch)
        kind[rows] = np.asarray(RESPONSE_KINDS[ch])[
            rng.choice(len(RESPONSE_KINDS[ch]), size=len(rows), p=RESPONSE_MIX[ch])
        ]
    secs = d.created_s + 10 + (rng.exponential(40 * 60, size=len(kind))).astype(np.int64)
    inside = secs < clock.end_s
    channel, person, secs, kind = d.channel[inside], d.person[inside], secs[inside], kind[inside]
    # WeCom and group rows share the external_userid: one row per identifier, kind and second.
    keep = first_of_runs(secs, identity_key(channel, person, n_people), kind)
    return Touches(channel[keep], person[keep], secs[keep], kind[keep])


@dataclass(frozen=True)
class Surveys:
    id_type: np.ndarray
    id_value: np.ndarray
    created_s: np.ndarray
    score: np.ndarray


def build_surveys(rng: np.random.Generator, orders: Orders, clock: Clock) -> Surveys:
    """After a store or mini-program order the customer may rate it, skewed to 4–5."""
    eligible = (
        (orders.person >= 0)
        & (orders.platform <= PF_MP)
        & (orders.status != "cancelled")
        & (orders.id_type != "")
    )
    rows = np.flatnonzero(eligible & (rng.random(len(eligible)) < SURVEY_SHARE))
    secs = orders.created_s[rows] + rng.integers(3600, 4 * 3600, size=len(rows))
    rows, secs = rows[secs < clock.end_s], secs[secs < clock.end_s]
    score = 1 + rng.choice(len(SCORE_MIX), size=len(rows), p=SCORE_MIX)
    keep = first_of_runs(secs, orders.id_value[rows])
    return Surveys(orders.id_type[rows][keep], orders.id_value[rows][keep], secs[keep], score[keep])
