"""Imports emit order.paid, member.joined and referral.completed events once, for fresh facts
only, so SOPs can start when a customer buys, joins or is referred (SPEC §7)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import text

from siyu import pii
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import run_import, write_dir
from tests.metrics import brand


def events(settings: Settings) -> list[tuple[str, str, int | None, dict[str, object]]]:
    engine, _ = open_brand(settings)
    with engine.begin() as conn:
        rows = conn.execute(text(
            "SELECT type, idempotency_key, customer_id, payload FROM event WHERE type IN "
            "('order.paid', 'member.joined', 'referral.completed') ORDER BY idempotency_key"
        )).all()  # fmt: skip
    engine.dispose()
    return [(t, k, c, p if isinstance(p, dict) else json.loads(p)) for t, k, c, p in rows]


def phone_hash(settings: Settings, phone: str) -> str:
    engine, _ = open_brand(settings)
    try:
        return pii.keyring(engine).lookup_hash("phone", phone)
    finally:
        engine.dispose()


def test_fresh_facts_become_events_once(settings: Settings, tmp_path: Path) -> None:
    local = datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=20)
    at = local.strftime("%Y-%m-%d %H:%M")
    files = dict(brand.FILES)
    files["orders.csv"] += (
        f"N1,mp,S002,phone,13800000005,{at},3600,paid,\n"  # fresh and paid: an event
        f"N2,pos,S001,phone,13800000001,{at},900,cancelled,\n"  # cancelled: none
        f"N3,pos,S001,,,{at},500,paid,\n"  # anonymous: no customer, none
    )
    files["memberships.csv"] += f"M1,{at}\n"  # a member seen nowhere else is a customer too
    files["records.csv"] += "r6,pos,,13800000006,M6\n"
    files["memberships.csv"] += f"M6,{at}\n"
    files["referrals.csv"] += f"phone,13800000005,phone,13800000006,{at}\n"
    summary = run_import(settings, write_dir(tmp_path / "in", files))
    found = events(settings)
    # the brand's 2025 orders, memberships and referral are history: no events for them
    assert [(t, k) for t, k, _, _ in found] == [
        ("member.joined", "member.joined:M1"),
        ("member.joined", "member.joined:M6"),
        ("order.paid", "order.paid:N1"),
        # keyed by the invitee's identifier as stored: a phone's lookup hash (siyu.pii)
        (
            "referral.completed",
            f"referral.completed:phone:{phone_hash(settings, '+8613800000006')}",
        ),
    ]
    order = found[2]
    assert order[2] == 5 and order[3] == {"order": "N1", "store": "S002", "platform": "mp",
                                          "amount_fen": 3600}  # fmt: skip
    assert found[3][3] == {"referrer": 5} and found[1][2] == found[3][2]  # the same new customer
    assert summary.events == {"order.paid": 1, "member.joined": 2, "referral.completed": 1}
    again = run_import(settings, write_dir(tmp_path / "in", files))
    assert sum(again.events.values()) == 0 and events(settings) == found
