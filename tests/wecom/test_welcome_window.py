"""A welcome sent after WeCom's 20-second window is refused (40058) and recorded as failed,
once: the event is processed, not retried, and no welcome reaches the customer."""

from __future__ import annotations

from siyu.config import Settings
from siyu.wecom import service as wecom_service
from siyu.wecom.events import process_until_idle
from tests.wecom.world import world


def test_a_late_welcome_is_refused_and_recorded_once(settings: Settings) -> None:
    with world(settings) as w:
        w.sim.add_user(userid="guide01", name="王导购")
        way = wecom_service.create_contact_way(
            w.engine,
            w.client,
            brand_id=w.brand_id,
            channel_code="store_qr",
            user_ids=["guide01"],
            welcome={"text": "{name}，欢迎！"},
        )
        w.sim.welcome_ttl = -1  # every welcome code has expired by the time Siyu sends
        w.sim.customer_scans(way.config_id, name="迟到的顾客")
        result = process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
        welcomes = w.rows("SELECT status, errcode FROM wecom_welcome WHERE brand_id = :b")
        events = w.rows("SELECT status, attempts FROM wecom_callback_event WHERE brand_id = :b")
    assert (result.processed, result.failed) == (1, 0)
    assert welcomes == [("failed", 40058)]
    assert events == [("processed", 1)]
    assert w.sim.welcomes_sent == []
