"""The demo's people and the source records through which the brand sees them.

A person is the ground truth the platform should reconstruct; each person is seen through 1–4
records of different source systems (WeCom, mini-program, official account, POS membership,
Tmall, JD). Overlaps come from shared identifiers — unionid across the WeChat sources, phone
across POS / mini-program / e-commerce — and gaps from records that carry neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from siyu.demo import catalog
from siyu.demo.columns import FILE_COLUMNS
from siyu.demo.util import (
    DAY,
    LOWER_ALNUM,
    WECHAT_ID,
    Clock,
    cat,
    pick,
    time_of_day,
    tokens,
    unique_ints,
    zpad,
)

SOURCES = ("wecom", "mp", "oa", "pos", "tmall", "jd")
WECOM, MP, OA, POS, TMALL, JD = range(len(SOURCES))
MAX_RECORDS = 4
RECORD_PREFIX = ("WC", "MP", "OA", "POS", "TM", "JD")


@dataclass(frozen=True)
class Archetype:
    name: str
    share: float
    source_p: tuple[float, ...]  # chance of a record per SOURCES entry
    anchors: tuple[int, ...]  # at least one of these sources is always present
    rate: float  # mean orders per active day, before the heavy-tailed personal factor
    channel_w: tuple[float, ...]  # how their WeCom friendship started, in CHANNELS order


# fmt: off
ARCHETYPES = (
    # name, share, P(record) for (wecom, mp, oa, pos, tmall, jd), anchors, rate,
    # then the channel weights of their first WeCom friendship
    Archetype("regular",        0.30, (0.8, 0.85, 0.35, 1, 0.04, 0.03), (POS,),        0.040,
              (0.60, 0.18, 0.10, 0, 0, 0.05, 0.07, 0)),
    Archetype("mini_program",   0.20, (0.6, 1,    0.3,  0, 0.05, 0.03), (MP,),         0.032,
              (0.15, 0.40, 0.15, 0, 0, 0.12, 0.18, 0)),
    Archetype("till_member",    0.14, (0,   0,    0.25, 1, 0,    0),    (POS,),        0.034,
              (0.70, 0.10, 0.10, 0, 0, 0.05, 0.05, 0)),
    Archetype("lead",           0.12, (0.85, 0,   0.4,  0, 0,    0),    (WECOM, OA),   0.0,
              (0.15, 0.05, 0.15, 0, 0, 0.33, 0.32, 0)),
    Archetype("ecommerce_fan",  0.08, (1,   0.3,  0.2,  0, 0.65, 0.45), (TMALL, JD),   0.015,
              (0.05, 0.05, 0.05, 0.40, 0.30, 0.08, 0.07, 0)),
    Archetype("ecommerce_only", 0.11, (0,   0,    0,    0, 0.7,  0.45), (TMALL, JD),   0.013,
              (1, 0, 0, 0, 0, 0, 0, 0)),
    Archetype("omnichannel",    0.05, (0.5, 0.4,  0.2,  1, 0.6,  0.4),  (POS,),        0.047,
              (0.45, 0.10, 0.05, 0.15, 0.10, 0.05, 0.10, 0)),
)
# fmt: on
LEGACY_ARCHETYPES = ("regular", "till_member", "omnichannel")
LEGACY_SHARE = 0.35  # members who joined before the data range
NON_BUYER_SHARE = 0.2
CHURN_SHARE = 0.45
CHURN_MEAN_DAYS = 180
MAX_RATE = 0.45  # orders per day; the heaviest regulars buy most days
PHONE_FORMATS = ("plain", "dashed", "intl")  # 13800138000 / +86 138-0013-8000 / 008613800138000


@dataclass
class People:
    """One row per person; identifier arrays are filled for everyone, used where `has` says."""

    arch: np.ndarray
    store: np.ndarray  # home store index
    has: np.ndarray  # (n, len(SOURCES)) bool
    legacy: np.ndarray  # bool
    acq_s: np.ndarray  # first contact, seconds since the start (0 for legacy members)
    end_s: np.ndarray  # when they stop buying (churn) or the end of the range
    rate: np.ndarray  # orders per active day
    unionid: np.ndarray
    external_userid: np.ndarray
    openid_mp: np.ndarray
    openid_oa: np.ndarray
    member_no: np.ndarray
    tmall_nick: np.ndarray
    jd_pin: np.ndarray
    phone: np.ndarray  # int64 true mobile number
    pos_phone: np.ndarray  # the phone as typed on the POS record ("" without a POS record)
    pos_phone_ok: np.ndarray  # bool: pos_phone is the person's own valid number
    name: np.ndarray
    gender: np.ndarray
    birthday: np.ndarray
    city: np.ndarray

    @property
    def n(self) -> int:
        return len(self.arch)


def build_people(rng: np.random.Generator, n: int, clock: Clock) -> People:
    arch = rng.choice(len(ARCHETYPES), size=n, p=[a.share for a in ARCHETYPES])
    store = _home_stores(rng, n)
    has = _sources(rng, arch)
    legacy_arch = np.isin(arch, [_arch_index(a) for a in LEGACY_ARCHETYPES])
    legacy = legacy_arch & (rng.random(n) < LEGACY_SHARE)
    acq_s = np.where(legacy, 0, _acquisition_times(rng, n, clock))
    end_s = _churn(rng, acq_s, clock)
    rate = _rates(rng, arch)
    phone = (
        np.asarray(catalog.MOBILE_PREFIXES)[rng.integers(0, len(catalog.MOBILE_PREFIXES), n)]
        * 10**8
        + unique_ints(rng, n, 10**6, 10**8)
    ).astype(np.int64)
    nick_no = unique_ints(rng, n, 1000, 10**8)
    tmall_nick = np.where(
        rng.random(n) < 0.45,
        cat("tb", zpad(nick_no, 10)),
        cat(pick(rng, catalog.NICK_STEMS, n), "_", nick_no.astype("U")),
    )
    pos_phone, pos_phone_ok = _pos_phones(rng, phone, has[:, POS])
    return People(
        arch=arch,
        store=store,
        has=has,
        legacy=legacy,
        acq_s=acq_s,
        end_s=end_s,
        rate=rate,
        unionid=tokens(rng, n, "o6_bm", 23, WECHAT_ID),
        external_userid=tokens(rng, n, "wm", 30, WECHAT_ID),
        openid_mp=tokens(rng, n, "oXk3T", 23, WECHAT_ID),
        openid_oa=tokens(rng, n, "o9aBw", 23, WECHAT_ID),
        member_no=cat("88", zpad(unique_ints(rng, n, 0, 10**8), 8)),
        tmall_nick=tmall_nick,
        jd_pin=tokens(rng, n, "jd_", 12, LOWER_ALNUM),
        phone=phone,
        pos_phone=pos_phone,
        pos_phone_ok=pos_phone_ok,
        name=chinese_names(rng, n),
        gender=np.where(rng.random(n) < 0.6, "女", "男"),
        birthday=_birthdays(rng, n),
        city=np.array([s.city for s in catalog.STORES])[store],
    )


def _arch_index(name: str) -> int:
    return next(i for i, a in enumerate(ARCHETYPES) if a.name == name)


def _home_stores(rng: np.random.Generator, n: int) -> np.ndarray:
    # Flagship districts draw more people; lognormal popularity keeps every store alive.
    popularity = rng.lognormal(0.0, 0.35, size=len(catalog.STORES))
    return rng.choice(len(catalog.STORES), size=n, p=popularity / popularity.sum())


def _sources(rng: np.random.Generator, arch: np.ndarray) -> np.ndarray:
    probs = np.array([a.source_p for a in ARCHETYPES])[arch]
    has = rng.random(probs.shape) < probs
    for a_idx, a in enumerate(ARCHETYPES):
        rows = np.flatnonzero((arch == a_idx) & ~has[:, list(a.anchors)].any(axis=1))
        weights = np.array([a.source_p[s] for s in a.anchors])
        chosen = np.asarray(a.anchors)[
            rng.choice(len(a.anchors), len(rows), p=weights / weights.sum())
        ]
        has[rows, chosen] = True
    # At most four records per person: the least identifying sources give way first.
    for s in (OA, JD, TMALL):
        too_many = has.sum(axis=1) > MAX_RECORDS
        has[too_many, s] = False
    return has


def _acquisition_times(rng: np.random.Generator, n: int, clock: Clock) -> np.ndarray:
    # The private domain grows: later days see more first contacts than earlier ones.
    growth = 0.5 + np.arange(clock.days) / clock.days
    day = rng.choice(clock.days, size=n, p=growth / growth.sum())
    tod = time_of_day(rng, n, {h: 1.0 + (h in (8, 12, 13, 18, 20)) for h in range(8, 22)})
    return day * DAY + tod


def _churn(rng: np.random.Generator, acq_s: np.ndarray, clock: Clock) -> np.ndarray:
    churns = rng.random(len(acq_s)) < CHURN_SHARE
    lifetime = (rng.exponential(CHURN_MEAN_DAYS, size=len(acq_s)) * DAY).astype(np.int64)
    return np.where(churns, np.minimum(acq_s + lifetime, clock.end_s), clock.end_s)


def _rates(rng: np.random.Generator, arch: np.ndarray) -> np.ndarray:
    # Gamma with shape < 1: most people buy now and then, a few regulars buy nearly daily.
    base = np.array([a.rate for a in ARCHETYPES])[arch]
    factor = rng.gamma(0.7, 1 / 0.7, size=len(arch))
    buyer = rng.random(len(arch)) >= NON_BUYER_SHARE
    return np.minimum(base * factor, MAX_RATE) * buyer


def chinese_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Surname plus one or two given-name characters."""
    given = pick(rng, catalog.GIVEN_CHARS, n)
    second = np.where(rng.random(n) < 0.6, pick(rng, catalog.GIVEN_CHARS, n), "")
    return cat(pick(rng, catalog.SURNAMES, n), given, second)


def _birthdays(rng: np.random.Generator, n: int) -> np.ndarray:
    first = np.datetime64("1968-01-01", "D")
    days = rng.integers(0, (np.datetime64("2006-12-31", "D") - first).astype(int), size=n)
    return np.datetime_as_string(first + days.astype("timedelta64[D]"))


def format_phones(digits: np.ndarray, fmt: np.ndarray) -> np.ndarray:
    """Render mobiles in the PHONE_FORMATS style of each row; all normalise to +86…."""
    plain = digits.astype("U")
    dashed = cat("+86 ", (digits // 10**8).astype("U"), "-", zpad(digits // 10**4 % 10**4, 4), "-",
                 zpad(digits % 10**4, 4))  # fmt: skip
    intl = cat("0086", plain)
    dashed_fmt, intl_fmt = PHONE_FORMATS.index("dashed"), PHONE_FORMATS.index("intl")
    return np.select([fmt == dashed_fmt, fmt == intl_fmt], [dashed, intl], plain)


def _pos_phones(
    rng: np.random.Generator, phone: np.ndarray, has_pos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The phone typed on each POS record: mostly the person's own, some placeholders, a few typos."""
    fmt = rng.choice(3, size=len(phone), p=[0.8, 0.1, 0.1])
    typed = np.where(has_pos, format_phones(phone, fmt), "").astype("U32")
    pos_rows = np.flatnonzero(has_pos)
    # Enough placeholder records that the K-guard (> 5 per source) must quarantine the value.
    n_placeholder = min(len(pos_rows), max(32, round(0.002 * len(pos_rows))))
    n_invalid = min(len(pos_rows) - n_placeholder, 6)
    odd = rng.choice(pos_rows, size=n_placeholder + n_invalid, replace=False)
    typed[odd[:n_placeholder]] = catalog.PLACEHOLDER_PHONE
    typed[odd[n_placeholder:]] = catalog.INVALID_PHONES[:n_invalid]
    ok = has_pos.copy()
    ok[odd] = False
    return typed, ok


def records(rng: np.random.Generator, people: People) -> dict[str, np.ndarray]:
    """The `records` file: one block per source, columns in DATA_FORMAT.md order."""
    blocks = [_source_block(rng, people, s) for s in range(len(SOURCES))]
    _spoil_ecommerce_phones(rng, blocks)
    return {col: np.concatenate([b[col] for b in blocks]) for col in RECORD_COLUMNS}


RECORD_COLUMNS = FILE_COLUMNS["records"]


def _source_block(rng: np.random.Generator, people: People, source: int) -> dict[str, np.ndarray]:
    who = np.flatnonzero(people.has[:, source])
    n = len(who)

    def some(values: np.ndarray, p: float) -> np.ndarray:
        return np.where(rng.random(n) < p, values[who], "")

    def phones(p: float, fmt_p: tuple[float, float, float]) -> np.ndarray:
        fmt = rng.choice(3, size=n, p=fmt_p)
        return np.where(rng.random(n) < p, format_phones(people.phone[who], fmt), "")

    empty = np.full(n, "", dtype="U1")
    block = {c: empty for c in RECORD_COLUMNS}
    block["record_id"] = cat(RECORD_PREFIX[source], zpad(np.arange(1, n + 1), 7))
    block["source"] = np.full(n, SOURCES[source])
    if source == WECOM:
        block["external_userid"] = people.external_userid[who]
        block["unionid"] = some(people.unionid, 0.95)
        block["phone"] = phones(0.3, (0.5, 0.5, 0.0))  # the guide's "remark mobile"
        block["name"] = some(people.name, 0.35)
        block["gender"] = some(people.gender, 0.5)
    elif source == MP:
        block["openid_mp"] = people.openid_mp[who]
        block["unionid"] = some(people.unionid, 0.9)
        block["phone"] = phones(0.6, (1.0, 0.0, 0.0))  # WeChat returns the bare number
        block["city"] = some(people.city, 0.4)
    elif source == OA:
        block["openid_oa"] = people.openid_oa[who]
        block["unionid"] = some(people.unionid, 0.85)
    elif source == POS:
        block["member_no"] = people.member_no[who]
        block["phone"] = people.pos_phone[who]
        block["email"] = np.where(rng.random(n) < 0.05, _emails(rng, n), "")
        block["name"] = people.name[who]
        block["gender"] = people.gender[who]
        block["birthday"] = some(people.birthday, 0.7)
        block["city"] = people.city[who]
    elif source == TMALL:
        block["tmall_nick"] = people.tmall_nick[who]
        block["phone"] = phones(0.3, (0.4, 0.6, 0.0))
        block["city"] = some(people.city, 0.5)
    else:
        block["jd_pin"] = people.jd_pin[who]
        block["phone"] = phones(0.3, (0.4, 0.0, 0.6))
        block["city"] = some(people.city, 0.5)
    return block


def _emails(rng: np.random.Generator, n: int) -> np.ndarray:
    return cat(
        unique_ints(rng, n, 10**7, 10**10).astype("U"), "@", pick(rng, catalog.EMAIL_DOMAINS, n)
    )


def _spoil_ecommerce_phones(rng: np.random.Generator, blocks: list[dict[str, np.ndarray]]) -> None:
    """Two e-commerce phones mistyped by the buyer: rejected values, the record itself stays."""
    for source, bad in ((TMALL, catalog.INVALID_PHONES[6]), (JD, catalog.INVALID_PHONES[7])):
        phone = blocks[source]["phone"].astype("U32")
        filled = np.flatnonzero(phone != "")
        if len(filled):
            phone[rng.choice(filled)] = bad
        blocks[source]["phone"] = phone
