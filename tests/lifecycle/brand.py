"""Hand-built brands for the SPEC §6 per-customer attributes, as of 2025-08-01 (Asia/Shanghai).

Every person is a WeCom external_userid (the key below); T1 = 30, T2 = 90 days. r is counted in
brand-local days from the last paid order (or the first connection) to 2025-08-01.

LIFECYCLE (every branch, and both sides of each threshold):
  nc     friendship ended 07-20, paid order 07-25      → churned (no active connection)
  i30    connected 07-02, no orders (r = 30 = T1)      → introduction
  d31    connected 07-01 (r = 31)                      → dormant
  d90    connected 05-03 (r = 90 = T2)                 → dormant
  c91    connected 05-02 (r = 91)                      → churned
  cx     connected 07-20, only a cancelled and a fully refunded order → introduction (no orders)
  o91    paid 05-02 (r = 91)                           → churned
  o90    paid 05-03 00:00 (r = 90)                     → dormant; paying (the 90-day edge)
  o31    paid 07-01 (r = 31)                           → dormant
  m30    3 paid orders, last 07-02 (r = 30)            → maturity
  g30    2 paid orders, last 07-02                     → growth
  g1     1 paid order 07-31 23:59, one after the as-of instant → growth (r = 1)
VALUE LAYERS (first match wins):
  loyal  4 paid orders in the trailing 30 days          → loyal_fans (loyal, not super)
  super  3 paid orders in 90 days, 2 paying invitees    → loyal_fans (super, not loyal)
  inv1, inv2  invitees of super, one paid order 07-20 each → paying (inv1 also interacted)
  act    interaction 07-10, connected 07-29 (also new)  → active
  new    connected 07-25 00:00 (the 7-day edge)         → newly_activated
  reg    connected 07-24 23:59, interaction 07-01 23:59, paid 05-02 23:59 → regular
"""

from __future__ import annotations

AS_OF = "2025-08-01"

CONNECTED = {
    "nc": ("2025-01-01 10:00", "2025-07-20 10:00"),
    "i30": ("2025-07-02 10:00", ""),
    "d31": ("2025-07-01 10:00", ""),
    "d90": ("2025-05-03 10:00", ""),
    "c91": ("2025-05-02 10:00", ""),
    "cx": ("2025-07-20 10:00", ""),
    "o91": ("2025-01-01 10:00", ""),
    "o90": ("2025-01-01 10:00", ""),
    "o31": ("2025-01-01 10:00", ""),
    "m30": ("2025-01-01 10:00", ""),
    "g30": ("2025-01-01 10:00", ""),
    "g1": ("2025-01-01 10:00", ""),
    "loyal": ("2025-01-01 10:00", ""),
    "super": ("2025-01-01 10:00", ""),
    "inv1": ("2025-01-01 10:00", ""),
    "inv2": ("2025-01-01 10:00", ""),
    "act": ("2025-07-29 10:00", ""),
    "new": ("2025-07-25 00:00", ""),
    "reg": ("2025-07-24 23:59", ""),
}

# (person, created_at, amount_fen, status, refund_fen)
ORDERS = [
    ("nc", "2025-07-25 12:00", 1000, "paid", ""),
    ("cx", "2025-07-21 12:00", 1000, "cancelled", ""),
    ("cx", "2025-07-22 12:00", 1000, "refunded", "1000"),
    ("o91", "2025-05-02 12:00", 1000, "paid", ""),
    ("o90", "2025-05-03 00:00", 1000, "paid", ""),
    ("o31", "2025-07-01 12:00", 1000, "paid", ""),
    ("m30", "2025-06-01 12:00", 1000, "paid", ""),
    ("m30", "2025-06-15 12:00", 1000, "paid", ""),
    ("m30", "2025-07-02 12:00", 1000, "paid", ""),
    ("g30", "2025-06-15 12:00", 1000, "paid", ""),
    ("g30", "2025-07-02 12:00", 1000, "paid", ""),
    ("g1", "2025-07-31 23:59", 1000, "paid", ""),
    ("g1", "2025-08-01 00:00:30", 1000, "paid", ""),
    ("loyal", "2025-07-05 12:00", 1000, "paid", ""),
    ("loyal", "2025-07-10 12:00", 1000, "paid", ""),
    ("loyal", "2025-07-15 12:00", 1000, "paid", ""),
    ("loyal", "2025-07-20 12:00", 1000, "paid", ""),
    ("super", "2025-06-01 12:00", 1000, "paid", ""),
    ("super", "2025-06-15 12:00", 1000, "paid", ""),
    ("super", "2025-07-01 12:00", 1000, "paid", ""),
    ("inv1", "2025-07-20 12:00", 1000, "paid", ""),
    ("inv2", "2025-07-20 12:00", 1000, "paid", ""),
    ("reg", "2025-05-02 23:59", 1000, "paid", ""),
]

INTERACTIONS = [
    ("act", "msg_reply", "2025-07-10 12:00"),
    ("inv1", "msg_reply", "2025-07-25 12:00"),  # paying and active: paying comes first
    ("loyal", "msg_reply", "2025-07-25 12:00"),
    ("reg", "msg_reply", "2025-07-01 23:59"),
    ("new", "msg_reply", "2025-08-01 00:00:01"),  # after the as-of instant: not counted
]


def _files(
    connected: dict[str, tuple[str, str]],
    orders: list[tuple[str, str, int, str, str]],
    interactions: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
    referrals: list[tuple[str, str, str]] = (),  # type: ignore[assignment]
) -> dict[str, str]:
    files = {
        "stores.csv": "store_id,name,region,city\nS001,静安店,华东,上海\n",
        "staff.csv": "staff_id,name,store_id\nG1,王导购,S001\n",
        "connections.csv": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at\n"
        + "".join(
            f"wecom_friend,external_userid,{p},G1,,,{start},{end}\n"
            for p, (start, end) in connected.items()
        ),
        "orders.csv": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,"
        "refund_fen\n"
        + "".join(
            f"O{i},pos,S001,external_userid,{p},{at},{amount},{status},{refund}\n"
            for i, (p, at, amount, status, refund) in enumerate(orders, 1)
        ),
    }
    if interactions:
        files["interactions.csv"] = "id_type,id_value,kind,created_at\n" + "".join(
            f"external_userid,{p},{kind},{at}\n" for p, kind, at in interactions
        )
    if referrals:
        files["referrals.csv"] = (
            "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,created_at\n"
            + "".join(f"external_userid,{a},external_userid,{b},{at}\n" for a, b, at in referrals)
        )
    return files


FILES = _files(
    CONNECTED,
    ORDERS,
    INTERACTIONS,
    [("super", "inv1", "2025-07-01 10:00"), ("super", "inv2", "2025-07-01 10:00")],
)

# RFM: eight buyers, one per class, around the means r̄ = 33 days, f̄ = 2 orders, m̄ = 5000 fen,
# and a ninth exactly at every mean (so "strictly above/below" puts it low on all three).
# person: (days since the last order, [amounts]); the last order is at 12:00 that day.
RFM_BUYERS = {
    "important_value": (5, [3000, 3000, 3000]),
    "important_development": (5, [9000]),
    "important_retention": (61, [3000, 3000, 3000]),
    "important_winback": (61, [9000]),
    "general_value": (5, [300, 300, 400]),
    "general_development": (5, [1000]),
    "general_retention": (61, [300, 300, 400]),
    "general_winback": (61, [1000]),
    "at_the_mean": (33, [2500, 2500]),
}


def _rfm_files() -> dict[str, str]:
    from datetime import date, timedelta

    as_of = date.fromisoformat(AS_OF)
    orders = []
    for person, (days, amounts) in RFM_BUYERS.items():
        last = as_of - timedelta(days=days)
        for k, amount in enumerate(amounts):
            day = last - timedelta(days=10 * (len(amounts) - 1 - k))
            orders.append((person, f"{day} 12:00", amount, "paid", ""))
    return _files({p: ("2025-01-01 10:00", "") for p in RFM_BUYERS}, orders)


RFM_FILES = _rfm_files()
