"""Every key of the metrics report on a brand small enough to check by hand (tests/metrics/brand.py).

Each expectation says where its number comes from; SPEC §5–6 and DATA_FORMAT.md are the rules.
"""

from __future__ import annotations

import math

import pytest

from siyu.metrics.period import Period
from siyu.metrics.report import Runner
from siyu.metrics.scope import Scope
from siyu.warehouse.service import open_synced
from tests.metrics import brand


@pytest.fixture(scope="module")
def report(small_brand):  # type: ignore[no-untyped-def]
    return small_brand(brand.FROM, brand.TO)


def test_report_has_every_key_of_the_contract(report) -> None:  # type: ignore[no-untyped-def]
    assert list(report) == [
        "period", "customers", "pool", "pass_rate", "retention", "conversion", "repurchase",
        "sales", "gmv_decomposition", "roi", "ltv", "loyal", "super_users",
        "non_member_join_rate", "guide_assets", "triangle", "community_gmv", "satisfaction",
        "lifecycle", "rfm_classes",
    ]  # fmt: skip
    assert report["period"] == {
        "from": "2025-07-01",
        "to": "2025-08-01",
        "timezone": "Asia/Shanghai",
    }


def test_customers_and_pool(report) -> None:  # type: ignore[no-untyped-def]
    # P5's two records are one customer: five people, five customers.
    assert report["customers"] == {"total": 5, "quarantined_identifiers": []}
    # start: P1, P2 (connected exactly at the start instant), P5 → 3;
    # end: P1 (friend and group member, counted once), P3; P5's friendship ends exactly at `to`.
    assert report["pool"] == {"start": 3, "end": 2}


def test_pass_rate_per_channel_with_reach(report) -> None:  # type: ignore[no-untyped-def]
    # C1: e2's connection ÷ 10 scans; C2: e3 ÷ 4; C3 has reach but no connections → 0, not null.
    assert report["pass_rate"] == {"C1": 0.1, "C2": 0.25, "C3": 0.0}


def test_retention_and_conversion_of_the_new_cohort(report) -> None:  # type: ignore[no-untyped-def]
    # Cohort: P2 (first connection exactly at the start) and P3. At D7 both are connected; P2's
    # friendship ended on 07-10, so D30 and D90 keep only P3.
    assert report["retention"] == {"cohort_size": 2, "d7": 1.0, "d30": 0.5, "d90": 0.5}
    # P3 paid (O8) 5 days after connecting; P2 never ordered.
    assert report["conversion"] == {"w30": 0.5}


def test_sales_refunds_cancellations_and_the_midnight_boundary(report) -> None:  # type: ignore[no-untyped-def]
    # Non-cancelled orders placed in the period: O1 1000, O2 2000 (fully refunded), O3 3000
    # (500 refunded), O4 4000 (23:59 on 07-31 Shanghai), O6 500 (anonymous), O8 1500.
    # O5 at 00:00:30 on 08-01 Shanghai (still 07-31 in UTC) is outside; O7 is cancelled.
    assert report["sales"] == {"gmv": 12000, "orders": 6, "net_sales": 9500, "aov": 2000.0}


def test_repurchase_counts_a_merged_customer_once(report) -> None:  # type: ignore[no-untyped-def]
    # Paid orders in the period per customer: P1 O1+O3 (O2 fully refunded is not paid) = 2,
    # P5 O4 = 1 (bought by member number, P5's phone record is the same person), P3 O8 = 1.
    assert report["repurchase"]["rate"] == pytest.approx(1 / 3)
    assert report["repurchase"]["purchases_per_buyer"] == pytest.approx(4 / 3)


def test_gmv_decomposition_multiplies_back_to_the_pool_gmv(report) -> None:  # type: ignore[no-untyped-def]
    d = report["gmv_decomposition"]
    # Users = pool at start {P1, P2, P5}; buyers P1 (O1, O2, O3 = 6000) and P5 (O4 = 4000).
    assert d == {
        "users": 3,
        "conversion": pytest.approx(2 / 3),
        "purchases_per_buyer": 2.0,
        "aov": 2500.0,
        "gmv": 10000,
    }
    product = d["users"] * d["conversion"] * d["purchases_per_buyer"] * d["aov"]
    assert math.isclose(product, d["gmv"])


def test_roi_first_touch_within_window(report) -> None:  # type: ignore[no-untyped-def]
    # C1 acquired P1 (06-20) and P2 (07-01): P1's net 1000 + 0 + 2500 = 3500; cost 1000;
    # one acquisition in the period (P2). C2 acquired P5 (06-01; O4 is within 90 days) and P3:
    # 4000 + 1500; cost 2000 (the 06-30 row is outside); one acquisition (P3).
    assert report["roi"] == {
        "C1": {"revenue": 3500, "cost": 1000, "roi": 2.5, "cac": 1000.0},
        "C2": {"revenue": 5500, "cost": 2000, "roi": 1.75, "cac": 2000.0},
    }


def test_ltv_loyal_and_super_users(report) -> None:  # type: ignore[no-untyped-def]
    # Net sales to date per paying customer: P1 3500, P3 1500, P5 4000 (O5 is after `to`).
    assert report["ltv"] == {"mean_historic": 3000.0}
    assert report["loyal"] == 0 and report["super_users"] == 0


def test_non_member_join_rate(report) -> None:  # type: ignore[no-untyped-def]
    # Units: P1 at S001 on 07-05 and 07-06, P5 at S002 on 07-31 (joined that day → numerator),
    # the anonymous O6. O8 and O3 are mini-program orders, not POS.
    assert report["non_member_join_rate"] == {"numerator": 1, "denominator": 4, "rate": 0.25}


def test_guide_assets_skip_opted_out_customers(report) -> None:  # type: ignore[no-untyped-def]
    # G1: P1 as friend and as member of G1's group, once. G2's only active friend P3 opted out.
    assert report["guide_assets"] == {"G1": 1}


def test_triangle_community_and_satisfaction(report) -> None:  # type: ignore[no-untyped-def]
    # Pool at end {P1, P3}: P1 got a delivered message on 07-20, P3's failed → reach rate 0.5.
    # Newcomers P2 and P3; P3 was referred → 0.5. Single-customer value = 3000 × 1/3.
    assert report["triangle"] == {
        "reach_rate": 0.5,
        "property_power": 1,
        "single_customer_value": pytest.approx(1000.0),
        "referral_rate": 0.5,
    }
    # P1 joined GR1 on 07-02: O1, O2 and O3 were placed as a member; O7 was cancelled.
    assert report["community_gmv"] == 6000
    # In the period: 5 and 3 (P2's 4 was on 06-30).
    assert report["satisfaction"] == {"mean": 4.0, "share_4_5": 0.5, "responses": 2}


def test_lifecycle_and_rfm_as_of_to(report) -> None:  # type: ignore[no-untyped-def]
    # P1: active, 2 paid orders, last 07-07 → 25 days → growth. P3: active, O8 12 days ago →
    # growth. P2 (friendship ended), P4 (never connected), P5 (ended exactly at `to`) → churned.
    assert report["lifecycle"] == {
        "introduction": 0, "growth": 2, "maturity": 0, "dormant": 0, "churned": 3,
    }  # fmt: skip
    # (R days, F, M): P1 (25, 2, 3500), P3 (12, 1, 1500), P5 (1, 1, 4000); means 12.67, 1.33, 3000.
    assert report["rfm_classes"] == {
        "important_value": 0,
        "important_development": 1,  # P5: recent, infrequent, high M
        "important_retention": 1,  # P1: not recent, frequent, high M
        "important_winback": 0,
        "general_value": 0,
        "general_development": 1,  # P3: recent, infrequent, low M
        "general_retention": 0,
        "general_winback": 0,
    }


def test_a_period_without_buyers_gives_nulls_not_errors(small_brand) -> None:  # type: ignore[no-untyped-def]
    r = small_brand("2024-01-01", "2024-02-01")
    assert r["sales"] == {"gmv": 0, "orders": 0, "net_sales": 0, "aov": None}
    assert r["repurchase"] == {"rate": None, "purchases_per_buyer": None}
    assert r["retention"] == {"cohort_size": 0, "d7": None, "d30": None, "d90": None}
    assert r["conversion"] == {"w30": None}
    assert r["gmv_decomposition"]["users"] == 0
    assert r["gmv_decomposition"]["conversion"] is None
    assert r["pass_rate"] == {} and r["roi"] == {}
    assert r["satisfaction"] == {"mean": None, "share_4_5": None, "responses": 0}
    assert r["triangle"]["reach_rate"] is None and r["triangle"]["property_power"] is None


def test_store_filter_narrows_orders_and_connections(small_brand) -> None:  # type: ignore[no-untyped-def]
    s001 = small_brand(brand.FROM, brand.TO, stores=["S001"])
    # S001: O1 1000, O2 2000, O6 500 (O7 cancelled); its staff G1's friends P1 and P2, and P1
    # again as a member of G1's group GR1.
    assert s001["sales"]["gmv"] == 3500
    assert s001["pool"] == {"start": 2, "end": 1}
    assert s001["customers"]["total"] == 2


def test_channel_filter_keeps_customers_acquired_through_it(small_brand) -> None:  # type: ignore[no-untyped-def]
    c2 = small_brand(brand.FROM, brand.TO, channel="C2")
    # C2 acquired P3 and P5: O4 4000 and O8 1500.
    assert c2["sales"]["gmv"] == 5500
    assert list(c2["roi"]) == ["C2"] and list(c2["pass_rate"]) == ["C2"]


def test_clv_summary_from_paid_purchase_days(small_brand) -> None:  # type: ignore[no-untyped-def]
    # P1 bought on 07-05 and 07-07 (O2, fully refunded, is not a purchase): one repeat day,
    # 2 days after the first, 27 days before `to`; the repeat day's net value is 3000 − 500.
    wh = open_synced(small_brand.settings)
    try:
        period = Period.parse(brand.FROM, brand.TO, "Asia/Shanghai")
        cols = Runner(wh.con, Scope(wh.brand_id), period).columns("clv_summary")
    finally:
        wh.con.close()
    rows = sorted(zip(cols["frequency"], cols["recency"], cols["t"], cols["monetary"], strict=True))
    assert len(rows) == 3  # P1, P3, P5 paid before `to`
    assert rows[-1] == pytest.approx((1, 2 / 7, 27 / 7, 2500))


LOYAL_BRAND = {
    "records.csv": "record_id,source,phone\n"
    + "".join(f"r{i},pos,1380000010{i}\n" for i in range(1, 6)),
    "orders.csv": "order_id,platform,id_type,id_value,created_at,amount_fen,status,refund_fen\n"
    # A: four paid orders inside the 30 days before 08-01 (07-02 is the first such day).
    "A1,mp,phone,13800000101,2025-07-02 00:10,100,paid,\n"
    "A2,mp,phone,13800000101,2025-07-10 10:00,100,paid,\n"
    "A3,mp,phone,13800000101,2025-07-20 10:00,100,paid,\n"
    "A4,mp,phone,13800000101,2025-07-31 23:00,100,paid,\n"
    # B: four orders, but one on 07-01 23:59 (31 days back) and one fully refunded.
    "B1,mp,phone,13800000102,2025-07-01 23:59,100,paid,\n"
    "B2,mp,phone,13800000102,2025-07-10 10:00,100,paid,\n"
    "B3,mp,phone,13800000102,2025-07-20 10:00,100,refunded,100\n"
    "B4,mp,phone,13800000102,2025-07-30 10:00,100,paid,\n"
    # C: three paid orders in 90 days; invitees D (paid) and E (only a cancelled order).
    "C1,mp,phone,13800000103,2025-05-10 10:00,100,paid,\n"
    "C2,mp,phone,13800000103,2025-06-10 10:00,100,paid,\n"
    "C3,mp,phone,13800000103,2025-07-10 10:00,100,paid,\n"
    "D1,mp,phone,13800000104,2025-07-15 10:00,100,paid,\n"
    "E1,mp,phone,13800000105,2025-07-15 10:00,100,cancelled,\n",
    "referrals.csv": "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,"
    "created_at\n"
    "phone,13800000103,phone,13800000104,2025-07-01 10:00\n"
    "phone,13800000103,phone,13800000105,2025-07-01 10:00\n"
    "phone,13800000101,phone,13800000102,2025-07-01 10:00\n",
}


def test_loyal_and_super_users_at_their_edges(brand_report) -> None:  # type: ignore[no-untyped-def]
    report = brand_report(LOYAL_BRAND)
    r = report("2025-07-01", "2025-08-01")
    assert r["loyal"] == 1  # A; B has only three paid orders inside the window
    # C has 3 paid orders but one successful referral (E never paid): not yet a super user.
    assert r["super_users"] == 0
    with_e = dict(LOYAL_BRAND)
    with_e["orders.csv"] += "E2,mp,phone,13800000105,2025-07-20 10:00,100,paid,\n"
    r = brand_report(with_e)("2025-07-01", "2025-08-01")
    assert r["super_users"] == 1
    # As of 07-16, E's paid order is in the future: C is not a super user yet.
    assert brand_report(with_e)("2025-07-01", "2025-07-16")["super_users"] == 0
