"""The demo coffee brand generator: format, determinism, referential integrity, realism."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest

from siyu.demo.generator import generate

PERSONS = 2000

# DATA_FORMAT.md, interchange format v1: every file and its columns, in the documented order.
EXPECTED_COLUMNS = {
    "stores": "store_id,name,region,city,lat,lon,radius_m",
    "staff": "staff_id,name,store_id,persona",
    "groups": "group_id,name,owner_staff_id,store_id,created_at",
    "channels": "channel_id,name,type",
    "channel_costs": "channel_id,date,cost_fen",
    "channel_reach": "channel_id,date,count",
    "records": "record_id,source,external_userid,unionid,openid_mp,openid_oa,member_no,phone,"
    "email,tmall_nick,jd_pin,douyin_openid,youzan_id,name,gender,birthday,city",
    "connections": "kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at",
    "orders": "order_id,platform,store_id,id_type,id_value,created_at,amount_fen,status,refund_fen",
    "order_items": "order_id,sku,qty,amount_fen",
    "products": "sku,name,category,price_fen,ladder_role",
    "memberships": "member_no,joined_at,level,points",
    "referrals": "referrer_id_type,referrer_id_value,invitee_id_type,invitee_id_value,created_at",
    "deliveries": "id_type,id_value,channel,created_at,status",
    "interactions": "id_type,id_value,kind,created_at",
    "surveys": "id_type,id_value,created_at,score",
    "opt_outs": "id_type,id_value,created_at",
}
IDENTITY_TYPES = (
    "external_userid", "unionid", "openid_mp", "openid_oa", "member_no", "phone", "email",
    "tmall_nick", "jd_pin", "douyin_openid", "youzan_id",
)  # fmt: skip
CUSTOMER_REF_FILES = (
    "connections", "orders", "deliveries", "interactions", "surveys", "opt_outs",
)  # fmt: skip
PLACEHOLDER = "13800000000"
# DATA_FORMAT.md phone rule: strip separators and a +86 / 0086 / 86 prefix, then a mainland mobile.
PHONE_MACROS = r"""
CREATE MACRO phone_digits(t) AS regexp_replace(trim(t), '[\s\-().]', '', 'g');
CREATE MACRO phone_rest(d) AS CASE
    WHEN starts_with(d, '+86') THEN substr(d, 4)
    WHEN starts_with(d, '0086') THEN substr(d, 5)
    WHEN starts_with(d, '86') AND length(d) = 13 THEN substr(d, 3)
    ELSE d END;
CREATE MACRO mobile(t) AS phone_rest(phone_digits(t));
CREATE MACRO phone_ok(t) AS regexp_full_match(mobile(t), '1[3-9][0-9]{9}');
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, seed=7, persons=PERSONS)
    return out


@pytest.fixture(scope="module")
def db(demo: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name in EXPECTED_COLUMNS:
        path = str(demo / f"{name}.csv")
        con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', header = true, "
            "all_varchar = true, auto_detect = false, delim = ',', quote = '\"', "
            f"columns = {_columns_struct(name)})"
        )
    con.execute(PHONE_MACROS)
    unpivot = " UNION ALL ".join(
        f"SELECT source, record_id, '{t}' AS id_type, {t} AS id_value FROM records "
        f"WHERE {t} IS NOT NULL"
        for t in IDENTITY_TYPES
    )
    con.execute(f"CREATE TABLE identifiers AS {unpivot}")
    return con


def _columns_struct(name: str) -> str:
    return "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in EXPECTED_COLUMNS[name].split(",")) + "}"


def _one(db: duckdb.DuckDBPyConnection, sql: str):
    return db.execute(sql).fetchone()[0]  # type: ignore[index]


# --- determinism and format ------------------------------------------------------------------


def _bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=11, persons=800)
    generate(tmp_path / "b", seed=11, persons=800)
    generate(tmp_path / "c", seed=12, persons=800)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    assert _bytes(tmp_path / "a")["orders.csv"] != _bytes(tmp_path / "c")["orders.csv"]
    assert a.orders > 0 and a.rows["records"] > 800


def test_exactly_the_format_files_with_exact_headers(demo: Path) -> None:
    assert sorted(p.name for p in demo.iterdir()) == sorted(f"{n}.csv" for n in EXPECTED_COLUMNS)
    for name, header in EXPECTED_COLUMNS.items():
        raw = (demo / f"{name}.csv").read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        assert raw.decode("utf-8").split("\n", 1)[0] == header, name


def test_summary_counts_the_written_rows(tmp_path: Path) -> None:
    summary = generate(tmp_path, persons=500, start=date(2025, 1, 1), days=120)
    assert list(summary.rows) == list(EXPECTED_COLUMNS)
    for name, rows in summary.rows.items():
        lines = (tmp_path / f"{name}.csv").read_text(encoding="utf-8").count("\n")
        assert lines == rows + 1, name
    assert summary.end == date(2025, 5, 1)
    assert "orders" in summary.format()


def test_timestamps_dates_and_money_are_well_formed(db: duckdb.DuckDBPyConnection) -> None:
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00"
    stamped = {
        "groups": ["created_at"],
        "connections": ["created_at", "ended_at"],
        "orders": ["created_at"],
        "memberships": ["joined_at"],
        "referrals": ["created_at"],
        "deliveries": ["created_at"],
        "interactions": ["created_at"],
        "surveys": ["created_at"],
        "opt_outs": ["created_at"],
    }
    for table, columns in stamped.items():
        for col in columns:
            bad = _one(
                db, f"SELECT count(*) FROM {table} WHERE NOT regexp_full_match({col}, '{stamp}')"
            )
            assert bad == 0, f"{table}.{col}"
    for table in ("channel_costs", "channel_reach"):
        assert (
            _one(
                db,
                f"SELECT count(*) FROM {table} WHERE NOT regexp_full_match(date, '\\d{{4}}-\\d\\d-\\d\\d')",
            )
            == 0
        )
    for table, col in (("orders", "amount_fen"), ("orders", "refund_fen"), ("order_items", "amount_fen"),
                       ("channel_costs", "cost_fen"), ("products", "price_fen"),
                       ("channel_reach", "count"), ("order_items", "qty")):  # fmt: skip
        assert (
            _one(db, f"SELECT count(*) FROM {table} WHERE NOT regexp_full_match({col}, '[0-9]+')")
            == 0
        )


# --- referential integrity -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "target", "key"),
    [
        ("staff", "store_id", "stores", "store_id"),
        ("groups", "owner_staff_id", "staff", "staff_id"),
        ("groups", "store_id", "stores", "store_id"),
        ("connections", "staff_id", "staff", "staff_id"),
        ("connections", "group_id", "groups", "group_id"),
        ("connections", "channel_id", "channels", "channel_id"),
        ("channel_costs", "channel_id", "channels", "channel_id"),
        ("channel_reach", "channel_id", "channels", "channel_id"),
        ("orders", "store_id", "stores", "store_id"),
        ("order_items", "order_id", "orders", "order_id"),
        ("order_items", "sku", "products", "sku"),
        ("memberships", "member_no", "records", "member_no"),
    ],
)
def test_references_exist(db: duckdb.DuckDBPyConnection, table, column, target, key) -> None:
    dangling = _one(
        db,
        f"SELECT count(*) FROM {table} t WHERE t.{column} IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.{key} = t.{column})",
    )
    assert dangling == 0


def test_group_owner_works_at_the_groups_store(db: duckdb.DuckDBPyConnection) -> None:
    assert _one(db, "SELECT count(*) FROM groups g JOIN staff s ON s.staff_id = g.owner_staff_id "
                    "WHERE s.store_id IS DISTINCT FROM g.store_id") == 0  # fmt: skip


@pytest.mark.parametrize("table", CUSTOMER_REF_FILES)
def test_customer_references_belong_to_records(db: duckdb.DuckDBPyConnection, table: str) -> None:
    assert (
        _one(db, f"SELECT count(*) FROM {table} WHERE (id_type IS NULL) <> (id_value IS NULL)") == 0
    )
    dangling = _one(
        db,
        f"SELECT count(*) FROM {table} t WHERE t.id_type IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM identifiers i WHERE i.id_type = t.id_type AND i.id_value = t.id_value)",
    )
    assert dangling == 0
    if table != "orders":
        assert _one(db, f"SELECT count(*) FROM {table} WHERE id_type IS NULL") == 0


def test_referral_sides_belong_to_records(db: duckdb.DuckDBPyConnection) -> None:
    for side in ("referrer", "invitee"):
        dangling = _one(
            db,
            f"SELECT count(*) FROM referrals r WHERE NOT EXISTS (SELECT 1 FROM identifiers i "
            f"WHERE i.id_type = r.{side}_id_type AND i.id_value = r.{side}_id_value)",
        )
        assert dangling == 0


def test_every_id_type_is_a_format_identity_type(db: duckdb.DuckDBPyConnection) -> None:
    types = set(IDENTITY_TYPES)
    for table in CUSTOMER_REF_FILES:
        used = {r[0] for r in db.execute(f"SELECT DISTINCT id_type FROM {table}").fetchall()}
        assert used - {None} <= types, table


# --- natural keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("stores", "store_id"),
        ("staff", "staff_id"),
        ("groups", "group_id"),
        ("channels", "channel_id"),
        ("channel_costs", "channel_id, date"),
        ("channel_reach", "channel_id, date"),
        ("records", "record_id"),
        ("connections", "kind, id_type, id_value, staff_id, group_id, created_at"),
        ("order_items", "order_id, sku"),
        ("products", "sku"),
        ("memberships", "member_no"),
        ("referrals", "invitee_id_type, invitee_id_value"),
        ("deliveries", "*"),
        ("interactions", "*"),
        ("surveys", "*"),
        ("opt_outs", "*"),
    ],
)
def test_natural_keys_are_unique(db: duckdb.DuckDBPyConnection, table: str, key: str) -> None:
    distinct = f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table})"
    assert _one(db, f"SELECT (SELECT count(*) FROM {table}) - ({distinct})") == 0


# --- identity: overlaps, placeholder, invalid phones -----------------------------------------


def test_placeholder_phone_is_shared_by_many_pos_records(db: duckdb.DuckDBPyConnection) -> None:
    carriers = _one(
        db,
        f"SELECT count(DISTINCT member_no) FROM records WHERE source = 'pos' AND phone = '{PLACEHOLDER}'",
    )
    assert carriers > 5  # the K-guard quarantines it
    assert carriers >= 30
    assert (
        _one(
            db,
            f"SELECT count(*) FROM orders WHERE id_type = 'phone' AND id_value = '{PLACEHOLDER}'",
        )
        > 0
    )


def test_a_handful_of_invalid_phones(db: duckdb.DuckDBPyConnection) -> None:
    invalid = _one(
        db, "SELECT count(*) FROM records WHERE phone IS NOT NULL AND NOT phone_ok(phone)"
    )
    assert 5 <= invalid <= 10


def test_records_overlap_through_shared_identifiers(db: duckdb.DuckDBPyConnection) -> None:
    unionid_sources = _one(
        db,
        "SELECT count(*) FROM (SELECT unionid FROM records WHERE unionid IS NOT NULL "
        "GROUP BY unionid HAVING count(DISTINCT source) >= 2)",
    )
    assert unionid_sources > 100
    phones = db.execute(
        "SELECT mobile(phone) AS m, count(DISTINCT source), count(DISTINCT phone) FROM records "
        f"WHERE phone_ok(phone) AND phone <> '{PLACEHOLDER}' GROUP BY m"
    ).fetchall()
    assert sum(1 for _, sources, _ in phones if sources >= 2) > 50
    assert sum(1 for _, _, spellings in phones if spellings >= 2) > 10  # mixed formats
    lonely = _one(
        db,
        "SELECT count(*) FROM records WHERE source IN ('tmall', 'jd') AND phone IS NULL",
    )
    assert lonely > 50


def test_wecom_connections_carry_the_channel(db: duckdb.DuckDBPyConnection) -> None:
    assert (
        _one(
            db,
            "SELECT count(*) FROM connections WHERE kind = 'wecom_friend' AND (channel_id IS NULL OR staff_id IS NULL)",
        )
        == 0
    )
    assert (
        _one(
            db, "SELECT count(*) FROM connections WHERE kind = 'group_member' AND group_id IS NULL"
        )
        == 0
    )
    assert _one(db, "SELECT count(*) FROM connections WHERE ended_at <= created_at") == 0
    for kind in ("wecom_friend", "group_member", "oa_follow"):
        assert (
            _one(
                db,
                f"SELECT count(*) FROM connections WHERE kind = '{kind}' AND ended_at IS NOT NULL",
            )
            > 0
        )


# --- orders ----------------------------------------------------------------------------------


def test_refunds_arrive_as_later_rows_of_the_same_order(demo: Path) -> None:
    lines = (demo / "orders.csv").read_text(encoding="utf-8").splitlines()[1:]
    first: dict[str, list[str]] = {}
    repeated = 0
    for line in lines:
        row = line.split(",")
        if row[0] in first:
            earlier = first[row[0]]
            assert row[:7] == earlier[:7], row[0]  # only status and refund_fen differ
            assert (earlier[7], earlier[8]) == ("paid", "0")
            assert row[7] == "refunded" and 0 < int(row[8]) <= int(row[6])
            repeated += 1
            first[row[0]] = ["repeated"]  # a third row would fail the comparison
        else:
            first[row[0]] = row
    assert repeated >= 10


def test_amounts_statuses_and_refunds(db: duckdb.DuckDBPyConnection) -> None:
    assert (
        _one(
            db, "SELECT count(*) FROM orders WHERE status NOT IN ('paid', 'cancelled', 'refunded')"
        )
        == 0
    )
    assert (
        _one(db, "SELECT count(*) FROM orders WHERE refund_fen::BIGINT > amount_fen::BIGINT") == 0
    )
    assert (
        _one(db, "SELECT count(*) FROM orders WHERE status <> 'refunded' AND refund_fen <> '0'")
        == 0
    )
    partial = _one(
        db,
        "SELECT count(*) FROM orders WHERE status = 'refunded' AND refund_fen::BIGINT < amount_fen::BIGINT",
    )
    assert partial > 0
    share = db.execute(
        "SELECT avg((status = 'cancelled')::INT), avg((status = 'refunded')::INT) FROM "
        "(SELECT DISTINCT ON (order_id) * FROM orders ORDER BY order_id, status = 'refunded' DESC)"
    ).fetchone()
    assert 0.02 < share[0] < 0.04 and 0.01 < share[1] < 0.03  # type: ignore[index]


def test_items_add_up_to_the_order(db: duckdb.DuckDBPyConnection) -> None:
    mismatched = _one(
        db,
        "SELECT count(*) FROM (SELECT DISTINCT order_id, amount_fen::BIGINT AS amount FROM orders) o "
        "LEFT JOIN (SELECT order_id, sum(amount_fen::BIGINT) AS total, count(*) AS lines "
        "FROM order_items GROUP BY order_id) i USING (order_id) "
        "WHERE i.total IS DISTINCT FROM o.amount OR i.lines NOT BETWEEN 1 AND 3",
    )
    assert mismatched == 0
    assert _one(db, "SELECT count(*) FROM order_items WHERE qty::INT < 1") == 0


def test_pos_and_mp_orders_have_a_store_online_orders_do_not(db: duckdb.DuckDBPyConnection) -> None:
    assert (
        _one(db, "SELECT count(*) FROM orders WHERE platform IN ('pos', 'mp') AND store_id IS NULL")
        == 0
    )
    assert (
        _one(
            db,
            "SELECT count(*) FROM orders WHERE platform IN ('tmall', 'jd') AND store_id IS NOT NULL",
        )
        == 0
    )
    expected = {
        "pos": {"member_no", "phone", None},
        "mp": {"openid_mp"},
        "tmall": {"tmall_nick"},
        "jd": {"jd_pin"},
    }
    for platform, types in expected.items():
        used = {
            r[0]
            for r in db.execute(
                f"SELECT DISTINCT id_type FROM orders WHERE platform = '{platform}'"
            ).fetchall()
        }
        assert used == types, platform


def test_a_quarter_of_pos_orders_are_anonymous(db: duckdb.DuckDBPyConnection) -> None:
    share = _one(db, "SELECT avg((id_type IS NULL)::INT) FROM orders WHERE platform = 'pos'")
    assert 0.2 <= share <= 0.3


def test_the_summer_quarter_is_rich(db: duckdb.DuckDBPyConnection) -> None:
    q3 = "created_at >= '2025-07-01' AND created_at < '2025-10-01'"
    assert _one(db, f"SELECT count(*) FROM orders WHERE {q3}") > 1500
    assert _one(db, f"SELECT count(*) FROM connections WHERE {q3}") > 200
    assert _one(db, f"SELECT count(*) FROM deliveries WHERE {q3}") > 1000
    assert _one(db, "SELECT max(created_at) FROM orders") < "2025-11-01"
    assert _one(db, "SELECT min(created_at) FROM orders") >= "2024-10-01"


def test_loyal_customers_exist(db: duckdb.DuckDBPyConnection) -> None:
    # ≥ 4 paid orders within 30 days by one identifier (SPEC §5.9).
    loyal = _one(
        db,
        "SELECT count(DISTINCT id_value) FROM (SELECT id_value, count(*) OVER (PARTITION BY id_value "
        "ORDER BY created_at::TIMESTAMPTZ RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW) AS n "
        f"FROM orders WHERE id_type IS NOT NULL AND id_value <> '{PLACEHOLDER}' AND status = 'paid') WHERE n >= 4",
    )
    assert loyal >= 10


def test_members_some_joining_at_their_first_till_order(db: duckdb.DuckDBPyConnection) -> None:
    levels = {r[0] for r in db.execute("SELECT DISTINCT level FROM memberships").fetchall()}
    assert levels == {"银卡", "金卡", "黑金"}
    same_day = _one(
        db,
        "SELECT count(*) FROM memberships m JOIN records r ON r.member_no = m.member_no "
        "JOIN orders o ON o.platform = 'pos' AND o.id_type = 'phone' AND o.id_value = r.phone "
        "WHERE substr(o.created_at, 1, 10) = substr(m.joined_at, 1, 10) AND o.created_at < m.joined_at",
    )
    assert same_day > 10


def test_buyers_climb_the_product_ladder(db: duckdb.DuckDBPyConnection) -> None:
    climbers = _one(
        db,
        "WITH bought AS (SELECT o.id_value, o.created_at, p.ladder_role FROM orders o "
        "JOIN order_items i USING (order_id) JOIN products p USING (sku) WHERE o.id_type IS NOT NULL) "
        "SELECT count(DISTINCT a.id_value) FROM bought a JOIN bought b ON a.id_value = b.id_value "
        "AND a.ladder_role = 'traffic' AND b.ladder_role = 'profit' AND b.created_at > a.created_at",
    )
    assert climbers > 20


# --- channels, referrals, messages -----------------------------------------------------------


def test_reach_covers_the_connections_of_every_channel_day(db: duckdb.DuckDBPyConnection) -> None:
    days = db.execute(
        "WITH made AS (SELECT channel_id, substr(created_at, 1, 10) AS date, count(*) AS n "
        "FROM connections WHERE channel_id IS NOT NULL GROUP BY ALL) "
        "SELECT count(*) FILTER (WHERE coalesce(r.count::INT, 0) < coalesce(m.n, 0)), "
        "count(*) FILTER (WHERE m.n IS NULL AND r.count::INT > 0) "
        "FROM made m FULL JOIN channel_reach r USING (channel_id, date)"
    ).fetchone()
    assert days[0] == 0  # pass rate ≤ 1 every day  # type: ignore[index]
    assert days[1] > 0  # reach without a single new connection  # type: ignore[index]


def test_free_and_paid_channels(db: duckdb.DuckDBPyConnection) -> None:
    costs = dict(
        db.execute(
            "SELECT channel_id, sum(cost_fen::BIGINT) FROM channel_costs GROUP BY ALL"
        ).fetchall()
    )
    assert costs["store_qr"] == 0
    assert "mp_order_page" not in costs
    assert costs["douyin_ads"] > 0 and costs["moments_ads"] > 0


def test_referrals_have_super_users(db: duckdb.DuckDBPyConnection) -> None:
    assert _one(db, "SELECT count(*) FROM referrals") >= 20
    top = _one(
        db,
        "SELECT count(*) FROM (SELECT referrer_id_value FROM referrals GROUP BY ALL HAVING count(*) >= 2)",
    )
    assert top >= 3


def test_messages_surveys_opt_outs(db: duckdb.DuckDBPyConnection) -> None:
    channels = {r[0] for r in db.execute("SELECT DISTINCT channel FROM deliveries").fetchall()}
    assert channels == {"wecom", "group", "sms", "oa"}
    statuses = {r[0] for r in db.execute("SELECT DISTINCT status FROM deliveries").fetchall()}
    assert statuses == {"delivered", "failed"}
    assert (
        _one(db, "SELECT count(*) FROM surveys WHERE score NOT IN ('1', '2', '3', '4', '5')") == 0
    )
    assert _one(db, "SELECT avg(score::INT) FROM surveys") > 3.8
    assert 12 <= _one(db, "SELECT count(*) FROM opt_outs") <= 100
    sent_after = _one(
        db,
        "SELECT count(*) FROM deliveries d JOIN opt_outs o USING (id_type, id_value) "
        "WHERE d.created_at > o.created_at",
    )
    assert sent_after == 0


def test_default_size_gives_the_documented_order_volume(tmp_path: Path) -> None:
    summary = generate(tmp_path, persons=20_000)
    assert 60_000 <= summary.orders <= 120_000
    assert re.fullmatch(r"[0-9]+", str(summary.rows["records"]))
