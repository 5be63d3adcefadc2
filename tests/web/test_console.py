"""The console's pages as a user sees them: numbers, masking, scoping, audit (issue #7)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from siyu.config import Settings
from tests.factories import audit_log
from tests.metrics import brand
from tests.web import console_brand as cb

PERIOD = {"from": brand.FROM, "to": brand.TO}
MATCH_ALL = json.dumps({"not": {"field": "city", "op": "eq", "value": "火星"}})


@pytest.fixture
def console(settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    cb.build(settings, tmp_path)
    with cb.client(settings) as c:
        yield c


def test_overview_shows_the_report_of_the_users_scope(console: TestClient) -> None:
    cb.login(console, "ops")
    whole = console.get("/", params=PERIOD)
    assert whole.status_code == 200
    assert "¥127.00" in whole.text  # GMV 12000 fen of tests/metrics/brand.py + O9
    assert "S002" in whole.text  # HQ may pick any store
    s001 = console.get("/", params={**PERIOD, "store": "S001"})
    assert "¥35.00" in s001.text
    assert console.get("/", params={**PERIOD, "store": "S999"}).status_code == 422
    cb.login(console, "mgr1")
    mine = console.get("/", params=PERIOD)
    assert mine.status_code == 200 and "¥35.00" in mine.text and "¥127.00" not in mine.text


def test_a_store_outside_the_scope_is_404_and_audited(console: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "mgr1")
    other = console.get("/", params={**PERIOD, "store": "S002"})
    unknown = console.get("/", params={**PERIOD, "store": "S999"})
    assert other.status_code == unknown.status_code == 404
    assert console.get("/", params={**PERIOD, "region": "华北"}).status_code == 404
    denied = [e for e in audit_log(settings) if e["action"] == "denied"]
    assert {e["target"] for e in denied} >= {"store:S002", "region:华北"}
    assert all(e["actor"] == "user:mgr1" for e in denied)


def test_bad_period_names_the_field(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/", params={"from": "2025-08-01", "to": "2025-07-01"})
    assert r.status_code == 422 and "to is exclusive" in r.text


def test_customer_360_masks_phones_for_roles_without_the_right(
    console: TestClient, settings
) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "ops")
    r = console.get("/customers/5")
    assert r.status_code == 200
    assert "138****0005" in r.text and "13800000005" not in r.text
    assert "r5a" in r.text and "r5b" in r.text  # both records, and why they are one
    assert "phone:138****0005" in r.text
    # lifecycle as of the last day of data (O5 at 2025-08-01 00:00:30), not the day after
    assert "截至 2025-08-01" in r.text and "2025-08-02" not in r.text
    assert not [e for e in audit_log(settings) if e["action"] == "pii.read"]
    cb.login(console, "mgr2")
    r = console.get("/customers/phone:13800000005")
    assert r.status_code == 200 and "13800000005" in r.text and "O5" in r.text
    reads = [e for e in audit_log(settings) if e["action"] == "pii.read"]
    assert [(e["actor"], e["target"]) for e in reads] == [("user:mgr2", "customer:5")]


def test_a_customer_of_another_store_is_404_and_audited(console: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    cb.login(console, "mgr1")
    assert console.get("/customers/1").status_code == 200
    hidden, missing = console.get("/customers/5"), console.get("/customers/999")
    assert hidden.status_code == missing.status_code == 404
    assert "13800000005" not in hidden.text
    denied = [e for e in audit_log(settings) if e["action"] == "denied"]
    assert [e["target"] for e in denied] == ["customer:5"]


def orders_on(page: str) -> set[str]:
    return {o for o in ("O1", "O2", "O3", "O7", "O9") if f"<td>{o}</td>" in page}


def test_the_360_leaves_out_other_stores_orders_and_connections(console: TestClient) -> None:
    # P1: O1, O2, O7 at S001, O3 online, O9 at S002; friend of G1 and in GR1 (S001).
    cb.login(console, "admin")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O1", "O2", "O3", "O7", "O9"} and "G1" in page
    assert "¥67.00" in page  # GMV: O1 + O2 + O3 + O9 (O7 cancelled)
    cb.login(console, "mgr1")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O1", "O2", "O3", "O7"} and "S002" not in page
    assert "¥60.00" in page and "¥67.00" not in page  # totals over what the store may see
    cb.login(console, "mgr2")
    page = console.get("/customers/1").text
    assert orders_on(page) == {"O3", "O9"}
    assert "G1" not in page and "GR1" not in page and "S001" not in page


def test_search_by_phone_tail_name_and_identifier(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/customers", params={"q": "0005"})
    assert 'href="/customers/5"' in r.text and "138****0005" in r.text
    r = console.get("/customers", params={"q": "member_no:M5"})
    assert 'href="/customers/5"' in r.text
    r = console.get("/customers", params={"q": "e3"})
    assert 'href="/customers/3"' in r.text
    partial = console.get("/customers", params={"q": "0005"}, headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "/customers/5" in partial.text
    cb.login(console, "mgr1")
    assert "/customers/5" not in console.get("/customers", params={"q": "0005"}).text


def test_segment_count_is_live_and_scoped(console: TestClient) -> None:
    expected = {"ops": 5, "mgr1": 2, "mgr2": 3, "g1": 1, "east": 2}
    for name, n in expected.items():
        cb.login(console, name)
        r = console.post("/segments/count", data={"rule": MATCH_ALL})
        assert r.status_code == 200, r.text
        assert f"<b>{n}</b>" in r.text, name
    bad = console.post("/segments/count", data={"rule": '{"field": "cty", "op": "eq"}'})
    assert bad.status_code == 422 and "rule.field: unknown field" in bad.text
    notjson = console.post("/segments/count", data={"rule": "{"})
    assert notjson.status_code == 422 and "not JSON" in notjson.text


def test_segment_count_through_a_chosen_day(console: TestClient) -> None:
    """The builder counts through the last day of the data by default (the demo's history ends
    in the past: "now" would find every buyer lapsed), or through the day the user picks."""
    cb.login(console, "ops")
    page = console.get("/segments").text
    assert 'name="through" value="2025-08-01"' in page  # O5, 2025-08-01 00:00:30 +08:00
    buyers = json.dumps({"field": "orders.count", "op": "gte", "value": 1})
    counts = {}
    for through in ("", "2025-07-04", "2025-07-06", "2025-07-31"):
        r = console.post("/segments/count", data={"rule": buyers, "through": through})
        assert r.status_code == 200, r.text
        counts[through] = int(re.search(r"<b>([\d,]+)</b>", r.text)[1])  # type: ignore[index]
        assert f"数据截至（含） {through or '2025-08-01'}" in r.text
    assert counts == {"": 3, "2025-07-04": 0, "2025-07-06": 1, "2025-07-31": 3}
    bad = console.post("/segments/count", data={"rule": buyers, "through": "31/07/2025"})
    assert (
        bad.status_code == 422
        and "输入有误: through: &#39;31/07/2025&#39; is not a date" in bad.text
    )


def test_english_toggle(console: TestClient) -> None:
    cb.login(console, "ops")
    assert "顾客池" in console.get("/", params=PERIOD).text
    console.get("/lang/en", params={"next": "/"})
    page = console.get("/", params=PERIOD).text
    assert "Customer pool" in page and "顾客池" not in page


def test_channel_table_shows_pass_rate_cac_and_roi(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/channels", params=PERIOD)
    assert r.status_code == 200
    rows = {code: cells(r.text, code) for code in ("C1", "C2", "C3")}
    # reach, new connections, pass rate, acquired, cost, revenue, CAC, ROI (tests/metrics/brand.py;
    # C1's revenue also has P1's O9 of this brand: 3500 + 700 fen, ROI (4200 − 1000) / 1000)
    assert rows["C1"] == ["10", "1", "10.0%", "1", "¥10.00", "¥42.00", "¥10.00", "3.20"]
    assert rows["C2"] == ["4", "1", "25.0%", "1", "¥20.00", "¥55.00", "¥20.00", "1.75"]
    assert rows["C3"] == ["5", "0", "0.0%", "—", "—", "—", "—", "—"]  # reach, no cost rows
    empty = console.get("/channels", params={"from": "2025-01-01", "to": "2025-02-01"})
    assert empty.status_code == 200 and 'data-testid="no-channels"' in empty.text
    assert console.get("/channels", params={"from": "2025-09-01", "to": "x"}).status_code == 422
    cb.login(console, "mgr1")  # S001: P3's friendship via C2 is at S002
    assert cells(console.get("/channels", params=PERIOD).text, "C2")[1] == "0"


def cells(page: str, key: str, attr: str = "data-channel") -> list[str]:
    row = page.split(f'<tr {attr}="{key}">', 1)[1].split("</tr>", 1)[0]
    return [c.split(">", 1)[1].strip() for c in row.split("</td>")[1:-1]]


def test_cohort_heatmap_matches_the_cohorts_command(console: TestClient) -> None:
    cb.login(console, "ops")
    r = console.get("/cohorts", params={**PERIOD, "from": "2025-06-01", "by": "month"})
    assert r.status_code == 200 and 'id="heatmap"' in r.text
    data = json.loads(r.text.split('id="chart-data">', 1)[1].split("</script>", 1)[0])["heatmap"]
    found = {c["cohort"]: (c["size"], c["values"][:3]) for c in data["cohorts"]}
    assert found == {"2025-06-01": (2, [1.0, 1.0, None]), "2025-07-01": (2, [1.0, 0.0, None])}
    july = next(c for c in data["cohorts"] if c["cohort"] == "2025-07-01")
    assert july["labels"][:3] == ["100.0", "0.0", None]  # the heatmap's text is the table's
    assert "<td>100.0%</td><td>0.0%</td><td></td>" in r.text.replace("\n", "")
    weekly = console.get("/cohorts", params={"by": "week", "metric": "conversion"})
    assert weekly.status_code == 200
    bad = console.get("/cohorts", params={"metric": "happiness"})
    assert bad.status_code == 422 and "metric: &#39;happiness&#39;" in bad.text


def test_posts_without_the_sessions_csrf_token_are_refused(console: TestClient) -> None:
    cb.login(console, "ops")
    token = console.headers.pop("X-CSRF-Token")
    assert console.post("/segments/count", data={"rule": MATCH_ALL}).status_code == 403
    forged = console.post("/segments/count", data={"rule": MATCH_ALL, "csrf": "0" * 40})
    assert forged.status_code == 403
    assert console.post("/logout", follow_redirects=False).status_code == 403
    assert console.get("/", params=PERIOD).status_code == 200  # still logged in
    ok = console.post("/segments/count", data={"rule": MATCH_ALL, "csrf": token})
    assert ok.status_code == 200
    assert f'value="{token}"' in console.get("/", params=PERIOD).text  # the logout form has it
    console.cookies.clear()
    cross = console.post(
        "/login", data={"username": "ops", "password": cb.PASSWORD},
        headers={"Origin": "https://evil.example"}, follow_redirects=False,
    )  # fmt: skip
    assert cross.status_code == 403


def test_sop_list_shows_delivery_and_conversion_within_the_users_scope(
    console: TestClient, settings: Settings
) -> None:
    cb.login(console, "ops")
    assert 'data-testid="no-sops"' in console.get("/sops").text
    cb.welcome_journeys(settings)
    row = cells(console.get("/sops").text, "welcome", attr="data-sop")
    # P1 has a paid order within 7 days of 07-05 (tests/metrics/brand.py), P3 has none
    # status, trigger, journeys, reached, delivered (nothing sent yet), conversion
    assert row[:5] == ["草稿", "<code>event friend_added</code>", "2", "2", "0"], row
    assert row[5].startswith("50.0%<br>")
    cb.login(console, "mgr1")  # S001 reads P1, not P3
    mine = cells(console.get("/sops").text, "welcome", attr="data-sop")
    assert mine[2:5] == ["1", "1", "0"] and mine[5].startswith("100.0%<br>"), mine


def test_the_default_period_ends_with_the_orders_not_a_later_friendship(
    console: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """A WeCom friendship made weeks after the last order (the demo's live day does this) must
    not open the overview on a month without sales."""
    from tests.factories import run_import, write_dir

    later = ("kind,id_type,id_value,staff_id,group_id,channel_id,created_at,ended_at\n"
             "wecom_friend,external_userid,e9,G1,,C1,2025-09-15 10:00,\n")  # fmt: skip
    run_import(settings, write_dir(tmp_path / "later", {"connections.csv": later}))
    cb.login(console, "ops")
    page = console.get("/")
    assert page.status_code == 200
    # the last order (O5) is on 2025-08-01: the 30 days [07-03, 08-02), with their GMV
    assert 'value="2025-07-03"' in page.text and 'value="2025-08-02"' in page.text
    assert "¥0.00" not in page.text.split("GMV", 1)[1][:400]


def test_a_period_without_sales_says_why_in_the_users_language(console: TestClient) -> None:
    cb.login(console, "ops")
    page = console.get("/", params={"from": "2024-01-01", "to": "2024-02-01"})
    assert page.status_code == 200
    shown = re.search(r'data-testid="not-comparable"[^>]*>([^<]*)<', page.text)
    assert shown is not None
    assert shown.group(1) == "无法对比: 本期或上期没有顾客池或没有购买者，GMV 无法拆解"
