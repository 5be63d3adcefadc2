"""Users, passwords, sessions and the org-subtree scope of each role (SPEC §1, §12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text, update

from siyu.auth import passwords, users
from siyu.auth.models import UserSession
from siyu.config import Settings
from siyu.customers import service as customers
from siyu.db import utcnow
from siyu.runtime import open_brand
from tests.web import console_brand as cb


def test_passwords_hash_with_salt_and_verify() -> None:
    a, b = passwords.hash_password("s3cret-pw"), passwords.hash_password("s3cret-pw")
    assert a != b and a.startswith("scrypt$")
    assert passwords.verify("s3cret-pw", a) and not passwords.verify("s3cret-px", a)
    assert not passwords.verify("s3cret-pw", "garbage")


def test_each_role_reads_its_subtree(settings: Settings, tmp_path: Path) -> None:
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        ids = dict(conn.execute(text("SELECT username, id FROM app_user")).all())
        stores = dict(conn.execute(text("SELECT code, id FROM store")).all())
        for name, expected in cb.READABLE.items():
            me = users.principal(conn, user_id=ids[name])
            got = customers.readable_ids(conn, me)
            assert set(got if got is not None else [1, 2, 3, 4, 5]) == expected, name
        east = users.principal(conn, user_id=ids["east"])
        assert east.store_ids == (stores["S001"],) and not east.sees_pii
        assert users.principal(conn, user_id=ids["ops"]).store_ids is None
        assert users.principal(conn, user_id=ids["g1"]).staff_id is not None
    engine.dispose()


BAD_REQUESTS = [
    ({"role": "boss"}, "role"),
    ({"role": "store_manager"}, "org"),
    ({"role": "store_manager", "org": "S999"}, "org"),
    ({"role": "region_manager", "org": "S001"}, "org"),
    ({"role": "hq_operator", "org": "S001"}, "org"),
    ({"role": "guide"}, "staff"),
    ({"role": "guide", "staff_code": "G2", "org": "S001"}, "org"),
    ({"role": "analyst", "staff_code": "G1"}, "staff"),
    ({"role": "analyst", "password": "short"}, "password"),
    ({"role": "analyst", "username": "mgr1"}, "name"),
]


def test_bad_user_requests_name_the_field(settings: Settings, tmp_path: Path) -> None:
    cb.build(settings, tmp_path)
    engine, brand_id = open_brand(settings)
    for kwargs, field in BAD_REQUESTS:
        args = {"username": "new", "password": cb.PASSWORD, **kwargs}
        with pytest.raises(users.UserError) as e, engine.begin() as conn:
            users.create(conn, brand_id=brand_id, **args)  # type: ignore[arg-type]
        assert e.value.field == field, kwargs
    engine.dispose()


def test_sessions_end_at_logout_and_expiry(settings: Settings, tmp_path: Path) -> None:
    cb.build(settings, tmp_path)
    with cb.client(settings) as c:
        assert c.post("/login", data={"username": "ops", "password": "nope"}).status_code == 401
        r = c.get("/segments", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/segments"
        htmx = c.post("/segments/count", data={"rule": "{}"}, headers={"HX-Request": "true"})
        assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login"
        cb.login(c, "ops")
        assert c.get("/segments").status_code == 200
        c.post("/logout", follow_redirects=False)
        assert c.get("/segments", follow_redirects=False).status_code == 303
        cb.login(c, "ops")
        engine, _ = open_brand(settings)
        with engine.begin() as conn:
            conn.execute(update(UserSession).values(expires_at=utcnow()))
        engine.dispose()
        assert c.get("/segments", follow_redirects=False).status_code == 303


def test_user_create_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli import app

    settings = Settings(data_dir=tmp_path / "data")  # the CLI's own default store
    cb.build(settings, tmp_path)
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "user"]
    made = runner.invoke(app, [*base, "create", "lead", "--role", "hq_operator"])
    assert made.exit_code == 0, made.output
    assert "Password (shown once)" in made.output
    bad = runner.invoke(app, [*base, "create", "x", "--role", "store_manager", "--org", "S9"])
    assert bad.exit_code == 2 and "org: no store 'S9'; known: S001, S002" in bad.output
    listed = runner.invoke(app, [*base, "list"])
    assert ["lead", "hq_operator", "HQ"] in [line.split() for line in listed.output.splitlines()]
