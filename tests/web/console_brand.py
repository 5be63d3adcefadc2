"""The hand-built brand of tests/metrics/brand.py with one console user per role.

Who may read which customer (ids are assigned in import order: P1=1 … P5=5):
  S001 (华东): P1 (friend of G1, group GR1, orders), P2 (was a friend of G1)
  S002 (华北): P3 (friend of G2), P5 (was a friend of G2, orders at S002)
  guide G1: P1 only (P2's friendship ended); guide G2: P3 only (P5's ended)
  P4: no connection and no store order — HQ only.
On top of tests/metrics/brand.py, P1 also bought once at S002 (O9), so S002 may read P1 too —
but must not see P1's S001 orders or friendship, and S001 must not see O9.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from siyu.app import create_app
from siyu.auth import users
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.web.console import COOKIE, csrf_token
from tests.factories import run_import, write_dir
from tests.metrics import brand

FILES = {**brand.FILES, "orders.csv": brand.FILES["orders.csv"]
         + "O9,pos,S002,phone,13800000001,2025-07-09 12:00,700,paid,\n"}  # fmt: skip
PASSWORD = "correct-horse"
USERS = {
    "admin": ("hq_admin", None, None),
    "ops": ("hq_operator", None, None),
    "analyst": ("analyst", None, None),
    "east": ("region_manager", "华东", None),
    "mgr1": ("store_manager", "S001", None),
    "mgr2": ("store_manager", "S002", None),
    "g1": ("guide", None, "G1"),
    "g2": ("guide", None, "G2"),
}
READABLE = {
    "admin": {1, 2, 3, 4, 5},
    "ops": {1, 2, 3, 4, 5},
    "analyst": {1, 2, 3, 4, 5},
    "east": {1, 2},
    "mgr1": {1, 2},
    "mgr2": {1, 3, 5},
    "g1": {1},
    "g2": {3},
}


def build(settings: Settings, tmp_path: Path) -> None:
    run_import(settings, write_dir(tmp_path / "in", FILES))
    build_users(settings)


def build_users(settings: Settings) -> None:
    """One console user per role (USERS)."""
    engine, brand_id = open_brand(settings)
    with engine.begin() as conn:
        for name, (role, org, staff) in USERS.items():
            users.create(
                conn, brand_id=brand_id, username=name, role=role, password=PASSWORD, org=org,
                staff_code=staff,
            )  # fmt: skip
    engine.dispose()


@contextmanager
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            yield c
    finally:
        app.state.siyu.engine.dispose()


def login(c: TestClient, name: str) -> None:
    """Log in as `name` and, like the console's pages do through htmx, send the session's CSRF
    token with every later request."""
    c.cookies.clear()
    c.headers.pop("X-CSRF-Token", None)
    r = c.post("/login", data={"username": name, "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303, r.text
    c.headers["X-CSRF-Token"] = csrf_token(c.cookies[COOKIE])


SOP = {"key": "welcome", "name": "欢迎 Welcome", "trigger": {"event": {"type": "friend_added"}},
       "steps": [{"send": {"channel": "wecom", "variants": [{"text": "你好"}]}}]}  # fmt: skip


def welcome_journeys(settings: Settings, *others: dict[str, Any]) -> None:
    """Import SOP (and `others`); `welcome` enrolled P1 and P3 on 07-05 and queued a message to
    each (nothing sent)."""
    from siyu.automation import outbox
    from siyu.sop import service as sop_service
    from siyu.sop.models import SopEnrollment

    engine, brand_id = open_brand(settings)
    at = datetime(2025, 7, 5, 2, tzinfo=UTC)
    with engine.begin() as conn:
        for raw in (SOP, *others):
            sop_service.import_definition(conn, brand_id=brand_id, raw=raw)
        sop_id = sop_service.get(conn, brand_id=brand_id, key="welcome").sop.id
        conn.execute(SopEnrollment.__table__.insert(), [
            {"brand_id": brand_id, "sop_id": sop_id, "version": 1, "subject": f"c:{c}",
             "customer_id": c, "occurrence": "o1", "enrolled_at": at, "holdout": False,
             "status": "done", "step_index": 1, "due_at": at}
            for c in (1, 3)])  # fmt: skip
    outbox.enqueue(engine, brand_id, [outbox.Enqueue(f"sop:welcome:1:0:{c}:o1", "wecom", c, {})
                                      for c in (1, 3)])  # fmt: skip
    engine.dispose()
