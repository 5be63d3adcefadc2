"""A WeCom simulator on localhost with staff and their customers, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, select

from siyu.automation import outbox
from siyu.customers.models import Customer
from siyu.serverthread import ServerThread
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.simulator import ApiFaults, FaultInjector, Simulator, create_app


@dataclass
class World:
    sim: Simulator
    client: WeComClient
    url: str


@contextmanager
def wecom_world(
    staff: dict[str, list[str]],
    *,
    auto_confirm_after: float | None = None,
    faults: ApiFaults | None = None,
    timeout: float = 10.0,
) -> Iterator[World]:
    sim = Simulator(auto_confirm_after=auto_confirm_after)
    for userid, customers in staff.items():
        sim.add_user(userid=userid, name=userid)
        sim.add_friends(userid, customers)
    with ServerThread(create_app(sim, FaultInjector(faults))) as server:
        client = WeComClient(
            corp_id=sim.corp_id,
            secret=sim.secret,
            base_url=server.url,
            retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05),
            requests_per_second=1000,
            timeout=timeout,
        )
        with client:
            yield World(sim, client, server.url)


def customers(engine: Engine, brand: int, n: int) -> list[int]:
    """n customers in the store (events reference them)."""
    with engine.begin() as conn:
        before = conn.execute(select(Customer.id)).scalars().all()
        conn.execute(Customer.__table__.insert(), [{"brand_id": brand}] * n)
        return sorted(set(conn.execute(select(Customer.id)).scalars()) - set(before))


def one_to_one(
    sender: str, exts: list[str], ids: list[int], text: str = "周五会员日 8 折", step: str = "s1"
) -> list[outbox.Enqueue]:
    return [
        outbox.Enqueue(
            f"memberday:v1:{step}:{cid}:0",
            "wecom",
            cid,
            {
                "kind": "marketing",
                "sender": sender,
                "external_userid": ext,
                "text": text,
                "attachments": [],
                "sop": {"key": "memberday", "version": 1, "step": step},
            },
        )
        for ext, cid in zip(exts, ids, strict=True)
    ]
