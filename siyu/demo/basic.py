"""A compact demo coffee brand in the interchange format (DATA_FORMAT.md), deterministic by seed.

24 stores in 3 cities, 3 guides each, store groups, 8 channels with daily cost and reach, people
seen through WeCom / mini-program / official account / POS / Tmall / JD records that overlap,
a placeholder phone typed at tills, a year of orders with cancellations, refunds (as later rows)
and anonymous walk-ins, memberships. Vectorised with NumPy: no Python loop per order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np

CITIES = (
    ("上海", "华东", 31.23, 121.47),
    ("北京", "华北", 39.91, 116.40),
    ("杭州", "华东", 30.27, 120.15),
)
CHANNELS = (
    ("CH01", "门店扫码", "offline"),
    ("CH02", "小程序下单页", "mini_program"),
    ("CH03", "公众号菜单", "official_account"),
    ("CH04", "天猫包裹卡", "ecommerce"),
    ("CH05", "京东包裹卡", "ecommerce"),
    ("CH06", "抖音投放", "paid_ads"),
    ("CH07", "朋友圈广告", "paid_ads"),
    ("CH08", "老带新", "referral"),
)
PLACEHOLDER_PHONE = "13800000000"
TZ = "+08:00"


@dataclass(frozen=True)
class DemoSummary:
    persons: int
    records: int
    orders: int

    def __str__(self) -> str:
        return f"{self.persons:,} persons, {self.records:,} records, {self.orders:,} order rows"


def _write(path: Path, header: list[str], columns: list[np.ndarray | list[str]]) -> int:
    rows = list(zip(*columns, strict=True)) if columns else []
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return len(rows)


def _ts(start: datetime, seconds: np.ndarray) -> list[str]:
    base = np.datetime64(start.replace(tzinfo=None))
    stamps = (base + seconds.astype("timedelta64[s]")).astype(str)
    return [s.replace("T", "T") + TZ for s in stamps]


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    persons: int = 20_000,
    start: date = date(2024, 10, 1),
    days: int = 396,
) -> DemoSummary:
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = datetime(start.year, start.month, start.day)
    span = days * 86400

    # Stores, staff, groups, channels.
    store_ids = [f"S{i:03d}" for i in range(1, 25)]
    city = np.arange(24) % 3
    _write(
        out_dir / "stores.csv",
        ["store_id", "name", "region", "city", "lat", "lon", "radius_m"],
        [
            store_ids,
            [f"{CITIES[c][0]}{i + 1}号店" for i, c in enumerate(city)],
            [CITIES[c][1] for c in city],
            [CITIES[c][0] for c in city],
            [f"{CITIES[c][2] + rng.uniform(-0.08, 0.08):.5f}" for c in city],
            [f"{CITIES[c][3] + rng.uniform(-0.08, 0.08):.5f}" for c in city],
            ["1000"] * 24,
        ],
    )
    staff_ids = [f"G{i:03d}" for i in range(1, 73)]
    staff_store = [store_ids[i // 3] for i in range(72)]
    _write(
        out_dir / "staff.csv",
        ["staff_id", "name", "store_id", "persona"],
        [
            [*staff_ids, "HQ01"],
            [*(f"导购{i}" for i in range(1, 73)), "福利官"],
            [*staff_store, ""],
            [*(("sales", "assistant", "sales")[i % 3] for i in range(72)), "brand"],
        ],
    )
    group_ids = [f"Q{i:03d}" for i in range(1, 49)]
    _write(
        out_dir / "groups.csv",
        ["group_id", "name", "owner_staff_id", "store_id", "created_at"],
        [
            group_ids,
            [f"{store_ids[i // 2]} 福利群{i % 2 + 1}" for i in range(48)],
            [staff_ids[(i // 2) * 3] for i in range(48)],
            [store_ids[i // 2] for i in range(48)],
            [f"{start.isoformat()}T09:00:00{TZ}"] * 48,
        ],
    )
    _write(
        out_dir / "channels.csv",
        ["channel_id", "name", "type"],
        [[c[0] for c in CHANNELS], [c[1] for c in CHANNELS], [c[2] for c in CHANNELS]],
    )

    # People: which sources see them, and their identifiers.
    n = persons
    pid = np.arange(n)
    phone = np.array([f"1{d}" for d in rng.integers(3_000_000_000, 9_999_999_999, n)])
    has = {
        "wecom": rng.random(n) < 0.55,
        "mp": rng.random(n) < 0.45,
        "oa": rng.random(n) < 0.30,
        "pos": rng.random(n) < 0.50,
        "tmall": rng.random(n) < 0.15,
        "jd": rng.random(n) < 0.10,
    }
    nobody = ~np.any(np.stack(list(has.values())), axis=0)
    has["pos"] |= nobody
    rec_cols = [
        "record_id",
        "source",
        "external_userid",
        "unionid",
        "openid_mp",
        "openid_oa",
        "member_no",
        "phone",
        "email",
        "tmall_nick",
        "jd_pin",
        "douyin_openid",
        "youzan_id",
        "name",
        "gender",
        "birthday",
        "city",
    ]
    records: list[list[str]] = []
    surname = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭"))
    given = np.array(list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"))
    names = [
        f"{surname[a]}{given[b]}" for a, b in zip(rng.integers(0, 16, n), rng.integers(0, 20, n))
    ]
    phone_style = rng.integers(0, 3, n)

    def styled(i: int) -> str:
        p = phone[i]
        return (p, f"+86 {p[:3]}-{p[3:7]}-{p[7:]}", f"0086{p}")[phone_style[i]]

    for src in ("wecom", "mp", "oa", "pos", "tmall", "jd"):
        for i in pid[has[src]].tolist():
            row = dict.fromkeys(rec_cols, "")
            row.update(record_id=f"{src}-{i}", source=src)
            if src in ("wecom", "mp", "oa"):
                row["unionid"] = f"u{i:07d}"
            if src == "wecom":
                row["external_userid"] = f"wm{i:07d}"
            if src == "mp":
                row["openid_mp"] = f"omp{i:07d}"
                row["phone"] = styled(i) if i % 2 == 0 else ""
            if src == "oa":
                row["openid_oa"] = f"ooa{i:07d}"
            if src == "pos":
                row.update(
                    member_no=f"M{i:07d}",
                    phone=styled(i),
                    name=names[i],
                    gender=("女", "男")[i % 2],
                    city=CITIES[i % 3][0],
                    birthday=f"{1970 + i % 35}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                )
                if i % 700 == 3:  # cashiers type the placeholder phone for some members
                    row["phone"] = PLACEHOLDER_PHONE
                if i % 5000 == 11:
                    row["phone"] = "12345"
            if src == "tmall":
                row["tmall_nick"] = f"tb_{i:07d}"
                row["phone"] = phone[i] if i % 3 == 0 else ""
            if src == "jd":
                row["jd_pin"] = f"jd_{i:07d}"
                row["phone"] = phone[i] if i % 4 == 0 else ""
            records.append([row[c] for c in rec_cols])
    _write(out_dir / "records.csv", rec_cols, [list(c) for c in zip(*records)])

    # Connections: WeCom friendships via a channel, group memberships, OA follows.
    wc = pid[has["wecom"]]
    joined = rng.integers(0, span, len(wc))
    channel = rng.integers(0, 8, len(wc))
    staff = rng.integers(0, 72, len(wc))
    ended = np.where(
        rng.random(len(wc)) < 0.12, joined + rng.integers(86400, 120 * 86400, len(wc)), -1
    )
    in_group = rng.random(len(wc)) < 0.4
    oa = pid[has["oa"]]
    oa_joined = rng.integers(0, span, len(oa))
    kinds = (
        ["wecom_friend"] * len(wc)
        + ["group_member"] * int(in_group.sum())
        + ["oa_follow"] * len(oa)
    )
    ids = (
        [f"wm{i:07d}" for i in wc]
        + [f"wm{i:07d}" for i in wc[in_group]]
        + [f"ooa{i:07d}" for i in oa]
    )
    types = ["external_userid"] * (len(wc) + int(in_group.sum())) + ["openid_oa"] * len(oa)
    staff_col = [staff_ids[s] for s in staff] + [""] * (int(in_group.sum()) + len(oa))
    group_col = (
        [""] * len(wc)
        + [group_ids[(s // 3) * 2 + (s % 2)] for s in staff[in_group]]
        + [""] * len(oa)
    )
    chan_col = [CHANNELS[c][0] for c in channel] + [""] * int(in_group.sum()) + ["CH03"] * len(oa)
    created = _ts(t0, np.concatenate([joined, joined[in_group] + 3600, oa_joined]))
    end_all = np.concatenate([ended, np.full(int(in_group.sum()) + len(oa), -1)])
    end_col = [s if e >= 0 else "" for s, e in zip(_ts(t0, np.maximum(end_all, 0)), end_all)]
    _write(
        out_dir / "connections.csv",
        [
            "kind",
            "id_type",
            "id_value",
            "staff_id",
            "group_id",
            "channel_id",
            "created_at",
            "ended_at",
        ],
        [kinds, types, ids, staff_col, group_col, chan_col, created, end_col],
    )

    # Channel cost and reach per day; reach ≥ connections of the day.
    day_idx = joined // 86400
    made = np.zeros((8, days), dtype=np.int64)
    np.add.at(made, (channel, day_idx), 1)
    reach = made + rng.integers(5, 60, (8, days)) * (np.arange(8) != 2)[:, None]
    cost = np.where(
        np.isin(np.arange(8), [5, 6])[:, None], rng.integers(20_000, 90_000, (8, days)), 0
    )
    dates = [(start + timedelta(days=d)).isoformat() for d in range(days)]
    c_idx, d_idx = np.nonzero(reach > 0)
    _write(
        out_dir / "channel_reach.csv",
        ["channel_id", "date", "count"],
        [[CHANNELS[c][0] for c in c_idx], [dates[d] for d in d_idx], reach[c_idx, d_idx].tolist()],
    )
    c_idx, d_idx = np.nonzero(cost > 0)
    _write(
        out_dir / "channel_costs.csv",
        ["channel_id", "date", "cost_fen"],
        [[CHANNELS[c][0] for c in c_idx], [dates[d] for d in d_idx], cost[c_idx, d_idx].tolist()],
    )

    # Orders: heavy-tailed frequency per buyer; POS walk-ins are anonymous.
    buyers = pid[has["pos"] | has["mp"] | has["tmall"] | has["jd"]]
    per = np.minimum(rng.negative_binomial(1, 0.22, len(buyers)), 60)
    who = np.repeat(buyers, per)
    m = len(who)
    walk_ins = m // 4
    platform = np.where(
        has["pos"][who],
        "pos",
        np.where(has["mp"][who], "mp", np.where(has["tmall"][who], "tmall", "jd")),
    )
    at = rng.integers(0, span, m + walk_ins)
    amount = np.concatenate(
        [
            np.where(
                np.isin(platform, ["tmall", "jd"]),
                rng.integers(59, 399, m) * 100,
                rng.integers(15, 60, m) * 100,
            ),
            rng.integers(15, 45, walk_ins) * 100,
        ]
    )
    platform = np.concatenate([platform, np.full(walk_ins, "pos")])
    store = rng.integers(0, 24, m + walk_ins)
    id_type = [
        {"pos": "member_no", "mp": "openid_mp", "tmall": "tmall_nick", "jd": "jd_pin"}[p]
        for p in platform[:m]
    ] + [""] * walk_ins
    prefix = {"member_no": "M", "openid_mp": "omp", "tmall_nick": "tb_", "jd_pin": "jd_"}
    id_value = [f"{prefix[t]}{i:07d}" for t, i in zip(id_type[:m], who)] + [""] * walk_ins
    status = np.where(rng.random(m + walk_ins) < 0.03, "cancelled", "paid")
    order_ids = [f"O{i:08d}" for i in range(m + walk_ins)]
    store_col = [store_ids[s] if p in ("pos", "mp") else "" for s, p in zip(store, platform)]
    stamps = _ts(t0, at)
    rows = [
        order_ids,
        platform.tolist(),
        store_col,
        id_type,
        id_value,
        stamps,
        amount.tolist(),
        status.tolist(),
        [""] * (m + walk_ins),
    ]
    refunded = np.flatnonzero((status == "paid") & (rng.random(m + walk_ins) < 0.02))
    partial = rng.random(len(refunded)) < 0.4
    refund_fen = np.where(partial, amount[refunded] // 2, amount[refunded])
    extra = [[rows[k][i] for i in refunded] for k in range(6)] + [
        amount[refunded].tolist(),
        ["refunded"] * len(refunded),
        refund_fen.tolist(),
    ]
    total = _write(
        out_dir / "orders.csv",
        [
            "order_id",
            "platform",
            "store_id",
            "id_type",
            "id_value",
            "created_at",
            "amount_fen",
            "status",
            "refund_fen",
        ],
        [r + e for r, e in zip(rows, extra)],
    )

    members = pid[has["pos"]]
    _write(
        out_dir / "memberships.csv",
        ["member_no", "joined_at", "level", "points"],
        [
            [f"M{i:07d}" for i in members],
            _ts(t0, rng.integers(0, span, len(members))),
            [("银卡", "金卡", "黑金")[k] for k in rng.choice(3, len(members), p=[0.7, 0.25, 0.05])],
            rng.integers(0, 5000, len(members)).tolist(),
        ],
    )
    return DemoSummary(persons=n, records=len(records), orders=total)
