"""The console in a real browser (Playwright driving Debian's Chromium), on a small demo brand:
log in, read the dashboard, open a customer, build a segment and see its count — as an HQ
operator and as a store manager who sees only their store. Every page is screenshotted; with
SIYU_SCREENSHOTS=1 the PNGs replace docs/screenshots/ (the README shows them), otherwise they go
to a temporary folder so a test run leaves the tree clean.

Chromium comes from Debian's packages (`make test` installs it when absent); without it these
tests fail with the command to run, they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import text

from siyu.app import create_app
from siyu.auth import users
from siyu.cli import _demo_playbooks
from siyu.config import Settings
from siyu.customers import service as customers
from siyu.demo.generator import generate
from siyu.runtime import open_brand
from tests.factories import run_import

CHROMIUM = "/usr/bin/chromium"
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("SIYU_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "siyu-screenshots"
)
PASSWORD = "demo-password"
STORE = "S001"


def chromium() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        pytest.fail(
            "Chromium is not installed: the browser tests drive Debian's Chromium. "
            "Run `apt-get install -y chromium fonts-noto-cjk` (or `make test`, which does it)."
        )
    return path


class Brand:
    def __init__(self, url: str, settings: Settings, inside: int, outside: int) -> None:
        self.url, self.settings, self.inside, self.outside = url, settings, inside, outside


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brand]:
    root = tmp_path_factory.mktemp("browser")
    settings = Settings(data_dir=root / "data")
    generate(root / "demo", persons=1500, seed=7)
    run_import(settings, root / "demo")
    engine, brand_id = open_brand(settings)
    _demo_playbooks(engine, brand_id)  # as `siyu demo` does
    with engine.begin() as conn:
        users.create(conn, brand_id=brand_id, username="hq", role="hq_operator",
                     password=PASSWORD, display_name="总部运营 Lin")  # fmt: skip
        users.create(conn, brand_id=brand_id, username="store", role="store_manager",
                     password=PASSWORD, org=STORE, display_name="店长 Zhou")  # fmt: skip
        uid = conn.execute(text("SELECT id FROM app_user WHERE username = 'store'")).scalar_one()
        mine = customers.readable_ids(conn, users.principal(conn, user_id=uid)) or []
        # A customer of the store with orders, and one the store may not read.
        inside = conn.execute(
            text(
                'SELECT i.customer_id FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id '
                "AND i.id_type = o.id_type AND i.value = o.id_value JOIN store s ON s.id = o.store_id "
                "WHERE s.code = :s AND i.customer_id IS NOT NULL GROUP BY i.customer_id "
                "ORDER BY count(*) DESC, i.customer_id LIMIT 1"
            ),
            {"s": STORE},
        ).scalar_one()
        # The busiest customer with a phone whom the store may not read.
        ranked = conn.execute(
            text(
                'SELECT i.customer_id FROM "order" o JOIN identifier i ON i.brand_id = o.brand_id '
                "AND i.id_type = o.id_type AND i.value = o.id_value "
                "WHERE i.customer_id IN (SELECT customer_id FROM identifier WHERE id_type = 'phone') "
                "GROUP BY i.customer_id ORDER BY count(*) DESC, i.customer_id"
            )
        ).scalars()
        outside = next(i for i in ranked if i not in set(mine))
    engine.dispose()
    assert inside in mine
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the console server did not start"
        time.sleep(0.05)
    yield Brand(f"http://127.0.0.1:{port}", settings, int(inside), int(outside))
    server.should_exit = True
    thread.join(10)
    app.state.siyu.engine.dispose()


@pytest.fixture(scope="module")
def browser(demo: Brand) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


def page_for(browser, demo: Brand, who: str):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
    page.set_default_timeout(30_000)
    page.goto(demo.url + "/")
    assert "/login" in page.url  # no session: the login page
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=kpis]")
    return page


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


MEMBERS_RULE = '{"all": [{"field": "member", "op": "is", "value": true}]}'


def build_segment(page, demo: Brand) -> int:  # type: ignore[no-untyped-def]
    """Type a rule into the builder and read the live count htmx brings back."""
    page.goto(demo.url + "/segments")
    page.get_by_test_id("count").wait_for()  # the example rule, counted on load
    # through the last day of the demo's history, not "now": its dormant customers are there
    assert int(page.get_by_test_id("count").inner_text().split()[0].replace(",", "")) > 0
    assert (
        page.get_by_test_id("through").input_value()
        in page.get_by_test_id("count-through").inner_text()
    )
    with page.expect_response(lambda r: r.url.endswith("/segments/count")) as answer:
        page.fill("#rule", MEMBERS_RULE)
    assert answer.value.status == 200
    page.wait_for_load_state("networkidle")
    return int(page.get_by_test_id("count").inner_text().split()[0].replace(",", ""))


def test_login_page_refuses_a_wrong_password(browser, demo: Brand) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 1366, "height": 700})
    page.goto(demo.url + "/login")
    page.fill("input[name=username]", "hq")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "用户名或密码错误"
    shot(page, "login")
    page.close()


def test_hq_operator_reads_the_whole_brand(browser, demo: Brand) -> None:  # type: ignore[no-untyped-def]
    page = page_for(browser, demo, "hq")
    assert "全品牌" in page.get_by_test_id("scope").inner_text()
    assert page.locator("select[name=store] option").count() > 2  # every store to choose from
    page.wait_for_selector("#lifecycle canvas")
    shot(page, "overview-hq")
    hq_pool = page.get_by_test_id("kpi-pool").inner_text()

    page.goto(demo.url + f"/customers?q={demo.outside}")
    page.click(f"a[href='/customers/{demo.outside}'] >> nth=0")
    page.wait_for_selector("[data-testid=identities]")
    assert "****" in page.content()  # an HQ operator sees masked phones
    shot(page, "customer-hq")

    members = build_segment(page, demo)
    assert members > 0
    shot(page, "segments-hq")
    page.close()
    demo.hq = (hq_pool, members)  # type: ignore[attr-defined]


def test_store_manager_sees_only_their_store(browser, demo: Brand) -> None:  # type: ignore[no-untyped-def]
    page = page_for(browser, demo, "store")
    scope = page.get_by_test_id("scope").inner_text()
    assert STORE in scope and "全品牌" not in scope
    assert page.locator("select[name=store]").count() == 0  # nothing else to choose
    page.wait_for_selector("#lifecycle canvas")
    shot(page, "overview-store")

    page.goto(demo.url + "/customers")
    page.fill("input[name=q]", str(demo.inside))
    page.wait_for_selector(f"a[href='/customers/{demo.inside}']")
    shot(page, "search-store")
    page.click(f"a[href='/customers/{demo.inside}'] >> nth=0")
    page.wait_for_selector("[data-testid=orders]")
    stores = page.locator("[data-testid=orders] tr td:nth-child(4)").all_inner_texts()
    assert stores and set(stores) <= {STORE, "—"}  # no order of another store
    assert "已记录审计日志" in page.content()  # a store manager sees the phone, audited
    shot(page, "customer-store")

    response = page.goto(demo.url + f"/customers/{demo.outside}")
    assert response is not None and response.status == 404
    assert "404" in page.inner_text("h1")

    members = build_segment(page, demo)
    hq_members = getattr(demo, "hq", (None, None))[1]
    assert 0 < members and (hq_members is None or members < hq_members)
    shot(page, "segments-store")
    page.close()


def test_cohorts_channels_and_logout(browser, demo: Brand) -> None:  # type: ignore[no-untyped-def]
    page = page_for(browser, demo, "hq")
    page.click("nav >> text=同期群")
    page.wait_for_selector("#heatmap canvas")
    assert page.locator("[data-testid=cohort-table] tr").count() > 2  # a header and cohorts
    shot(page, "cohorts-hq")
    page.click("nav >> text=渠道")
    rows = page.locator("[data-testid=channel-table] tr[data-channel]")
    assert rows.count() == 8  # the demo brand's eight channels
    assert "%" in rows.first.inner_text()
    shot(page, "channels-hq")
    page.click("nav >> text=SOP 自动化")
    assert page.locator("[data-testid=sop-table] tr[data-sop]").count() == 10  # the playbooks
    shot(page, "sops-hq")
    page.click("button:has-text('退出')")  # the form carries the session's CSRF token
    page.wait_for_url("**/login")
    page.goto(demo.url + "/channels")
    assert "/login" in page.url
    page.close()
