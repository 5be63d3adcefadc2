"""Channel-code rotation with a daily add cap per staff member (load balancing), through the
simulator: a guide who reached the cap is taken off the code in WeCom, the rest keep taking
adds, and the next brand-local day everyone is back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from siyu.config import Settings
from siyu.wecom import service as wecom_service
from siyu.wecom.events import process_until_idle
from siyu.wecom.rotation import rotate
from tests.wecom.world import world

GUIDES = ["guide01", "guide02", "guide03"]


def test_a_guide_at_the_daily_cap_comes_off_the_code_until_tomorrow(settings: Settings) -> None:
    with world(settings) as w:
        for g in GUIDES:
            w.sim.add_user(userid=g, name=g)
        way = wecom_service.create_contact_way(
            w.engine,
            w.client,
            brand_id=w.brand_id,
            channel_code="mall_qr",
            user_ids=GUIDES,
            daily_cap=2,
        )
        live_after_each = []
        for i in range(7):
            w.sim.customer_scans(way.config_id, name=f"顾客{i}")
            process_until_idle(w.engine, brand_id=w.brand_id, client=w.client)
            rotate(w.engine, w.client, brand_id=w.brand_id)
            live_after_each.append(w.sim.get_contact_way(way.config_id)["contact_way"]["user"])
        adds = dict(
            w.rows(
                "SELECT s.code, count(*) FROM connection c JOIN staff s ON s.id = c.staff_id "
                "JOIN channel ch ON ch.id = c.channel_id WHERE c.brand_id = :b "
                "AND ch.code = 'mall_qr' GROUP BY s.code"
            )
        )
        tomorrow = rotate(
            w.engine, w.client, brand_id=w.brand_id, now=datetime.now(UTC) + timedelta(days=1)
        )
    assert live_after_each[:3] == [GUIDES, GUIDES, GUIDES]
    assert live_after_each[3] == ["guide02", "guide03"]  # guide01 took its 2nd add
    assert live_after_each[4] == ["guide03"]
    assert live_after_each[5] == GUIDES  # all at the cap: the code keeps everyone
    # Six adds went two to each guide; the 7th came while everyone was at the cap.
    assert sorted(adds.values()) == [2, 2, 3]
    assert [r.live for r in tomorrow] == [GUIDES]
    assert tomorrow[0].adds_today == {g: 0 for g in GUIDES}
