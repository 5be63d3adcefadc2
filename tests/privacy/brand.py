"""The hand-built brand of tests/web/console_brand.py (P1 … P5, users of every role) with
personal data distinctive enough to search for everywhere: names, birthdays, cities, and
identifier values no other row happens to contain. Plus what an erasure must reach beyond
imports: an event quoting a phone, a queued SMS, a staff task, tags added by a person and by a
rule, a segment stay, and WeCom's copy of the contact."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from siyu import pii
from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.tags import service as tags
from tests.factories import run_import, write_dir
from tests.web import console_brand as cb

RENAME = {"e1": "wmP1xq", "e5": "wmP5zz", "M5": "M5X", "r1": "r1-p1", "r5a": "r5a-p5",
          "r5b": "r5b-p5"}  # fmt: skip


def _renamed(body: str) -> str:
    for old, new in RENAME.items():
        body = re.sub(rf"\b{re.escape(old)}\b", new, body)
    return body


FILES = {name: _renamed(body) for name, body in cb.FILES.items()}
FILES["records.csv"] = (
    "record_id,source,external_userid,phone,member_no,name,gender,birthday,city\n"
    "r1-p1,wecom,wmP1xq,13800000001,,王小明,m,1990-03-04,苏州\n"
    "r2,wecom,e2,,,,,,\n"
    "r3,wecom,e3,,,赵六,f,,\n"
    "r4,pos,,13800000004,M4,,,,\n"
    "r5a-p5,wecom,wmP5zz,13800000005,,李小红,f,1988-12-01,杭州\n"
    "r5b-p5,pos,,13800000005,M5X,李小红,,,\n"
)
# What identifies P1 and P5 anywhere (the warehouse file, any table of the operational store).
P1 = ["13800000001", "wmP1xq", "王小明", "r1-p1", "1990-03-04", "苏州"]
P5 = ["13800000005", "wmP5zz", "M5X", "李小红", "r5a-p5", "r5b-p5", "1988-12-01", "杭州"]


def stored(settings: Settings, marks: list[str]) -> list[str]:
    """The marks as the store holds them too: a phone's lookup hash and a name's hash (siyu.pii);
    sealed values are random and are opened by the search instead."""
    engine, _ = open_brand(settings)
    ring = pii.keyring(engine)
    engine.dispose()
    out = list(marks)
    for m in marks:
        if m.isdigit() and len(m) == 11:
            out += [pii.stored_value(ring, "phone", "+86" + m), pii.tail_hash(ring, m)]
        elif not m.isascii():
            out.append(pii.name_hash(ring, m) or m)
    return out


def build(settings: Settings, tmp_path: Path) -> None:
    """Import the brand, create the console users, and add the non-imported facts of P1."""
    run_import(settings, write_dir(tmp_path / "in", FILES))
    cb.build_users(settings)
    engine, brand_id = open_brand(settings)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        b = {"b": brand_id, "now": now}
        conn.execute(
            text("INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
                 "recorded_at, payload) VALUES (:b, 'coupon.claimed', 'k-p1', 1, :now, :now, "
                 "'{\"phone\": \"+8613800000001\", \"coupon\": \"C42\"}'), "
                 "(:b, 'form.submitted', 'k-anon', NULL, :now, :now, "
                 "'{\"contact\": \"wmP1xq\", \"form\": \"survey\"}'), "
                 "(:b, 'form.submitted', 'k-other', NULL, :now, :now, '{\"form\": \"other\"}')"),
            b,
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO outbox (brand_id, dedup_key, adapter, customer_id, payload, "
                 "status, attempts, not_before, created_at) VALUES "
                 "(:b, 'sop:x:1:0:c1:o1', 'sms', 1, '{\"phone\": \"+8613800000001\", "
                 "\"text\": \"王小明，您的券到了\"}', 'pending', 0, :now, :now), "
                 "(:b, 'sop:x:1:0:c3:o1', 'sms', 3, '{\"phone\": null, \"text\": \"hi\"}', "
                 "'pending', 0, :now, :now)"),
            b,
        )  # fmt: skip
        staff = conn.execute(text("SELECT id FROM staff WHERE code = 'G1'")).scalar_one()
        conn.execute(
            text("INSERT INTO staff_task (brand_id, dedup_key, staff_id, customer_id, title, "
                 "body, due_at, status, created_at) VALUES (:b, 'task-p1', :s, 1, "
                 "'回访王小明', '王小明 13800000001 问过滤芯', :now, 'open', :now)"),
            {**b, "s": staff},
        )  # fmt: skip
        vip = tags.get_or_create_tag(conn, brand_id=brand_id, group="价值", name="VIP")
        tags.tag_customers(conn, brand_id=brand_id, tag_id=vip, customer_ids=[1, 3],
                           by="user:admin", source="manual")  # fmt: skip
        rule = tags.get_or_create_tag(conn, brand_id=brand_id, group="价值", name="常客")
        tags.tag_customers(conn, brand_id=brand_id, tag_id=rule, customer_ids=[1],
                           by="rule", source="rule")  # fmt: skip
        conn.execute(
            text("INSERT INTO wecom_external_contact (brand_id, external_userid, name_hash, "
                 "unionid, gender, updated_at) VALUES (:b, 'wmP1xq', :n, 'ouP1union', 1, :now)"),
            {**b, "n": pii.name_hash(pii.keyring(conn), "王小明")},
        )  # fmt: skip
    engine.dispose()
