"""The demo's live WeCom 企业微信 day, through `siyu wecom-sim` and Siyu's real code paths.

After the import, the demo brand opens a channel live code 渠道活码 for its first store's
"门店扫码" channel in a local simulated corp, answered by that store's guides, with a welcome
message and an auto-tag. Customers scan it over a simulated day — some already known to the
brand through the mini-program or the official account (same unionid), most new — and the
simulator posts each add_external_contact as an encrypted callback to Siyu's callback app over
HTTP on localhost. Siyu stores, decrypts and processes them as it would WeCom's: connections
with the channel, the welcome sent with the event's WelcomeCode, the tag in WeCom and in Siyu,
identity resolution joining a returning customer to their existing profile. A few customers
then delete their guide, which ends those connections.

Nothing leaves the machine. The simulated corp exists only while the demo runs; its settings
are fixed demo values unless SIYU_WECOM_* are set (they never point the demo at real WeCom:
the client always talks to the in-process simulator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, select, text

from siyu.config import Settings
from siyu.orgs.models import Store
from siyu.staff.models import Staff
from siyu.tags import service as tag_service
from siyu.wecom import service as wecom_service
from siyu.wecom.callback import CALLBACK_PATH, create_callback_app
from siyu.wecom.client import WeComClient
from siyu.wecom.events import process_until_idle
from siyu.wecom.models import WeComContactWay
from siyu.wecom.simulator import CallbackSender, ServerThread, Simulator, create_app
from siyu.wecom.tokens import DbTokenStore

CORP_ID = "wwdemo0000000000a"
SECRET = "demo-secret-for-the-local-simulator"
TOKEN = "SiyuDemoToken"
AES_KEY = "c2l5dWRlbW9zaXl1ZGVtb3NpeXVkZW1vc2l5dWRlbW8"  # 43 characters, as WeCom's
CHANNEL = ("store_qr", "门店扫码")
WELCOME = {
    "text": "{name}，欢迎加入{store}！回复“菜单”看本周新品，到店出示本消息享第二杯半价。",
    "attachments": [
        {"msgtype": "link", "link": {"title": "新人礼券", "url": "https://demo.siyu.local/coupon"}}
    ],
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "芳伟娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


@dataclass
class LiveDay:
    store: str
    guides: list[str]
    scans: int = 0
    returning: int = 0  # scanners the brand already knew (same unionid)
    connections: int = 0
    welcomes: int = 0
    tagged: int = 0
    merged: int = 0  # of the returning scanners, joined to their existing customer
    ended: int = 0
    skipped: str | None = None
    returning_unionids: list[str] = field(default_factory=list)
    tag_id: int = 0
    state: str = ""  # the code's State: the connections it made carry it

    def format(self) -> str:
        if self.skipped:
            return f"Live WeCom day 企业微信实时演示: skipped — {self.skipped}"
        return (
            f"Live WeCom day 企业微信实时演示 (local simulator, encrypted callbacks over HTTP): "
            f"{self.scans} customers scanned store {self.store}'s 门店扫码 code, answered by "
            f"{', '.join(self.guides)}; {self.returning} were already known to the brand.\n"
            f"  connections 好友关系 {self.connections}, welcome messages 欢迎语 {self.welcomes}, "
            f"tagged 门店扫码 {self.tagged}, returning customers merged 合并 {self.merged}, "
            f"friendships ended 删除 {self.ended}"
        )


def run(
    settings: Settings, engine: Engine, brand_id: int, *, seed: int, scans: int = 300
) -> LiveDay:
    """One simulated day of scans of the first store's code; skipped if the demo brand
    already has a contact way (re-running the demo adds nothing)."""
    rng = random.Random(seed)
    with engine.connect() as conn:
        store = conn.execute(
            select(Store.id, Store.code, Store.name)
            .where(Store.brand_id == brand_id)
            .order_by(Store.code)
            .limit(1)
        ).first()
        if store is None:
            return LiveDay("", [], skipped="the brand has no stores")
        guides = conn.execute(
            select(Staff.code, Staff.name, Staff.wecom_userid)
            .where(Staff.brand_id == brand_id, Staff.store_id == store.id)
            .order_by(Staff.code)
        ).all()
        done = conn.execute(
            select(WeComContactWay.id).where(WeComContactWay.brand_id == brand_id).limit(1)
        ).first()
        # Known WeChat users who are no one's WeCom friend yet: they may scan too.
        known = [
            r[0]
            for r in conn.execute(
                text(
                    # NOT IN over one friendship set, not a NOT EXISTS per unionid: the
                    # correlated form took minutes at the demo's 20k persons on SQLite.
                    "SELECT i.value FROM identifier i WHERE i.brand_id = :b "
                    "AND i.id_type = 'unionid' AND i.status = 'linked' AND i.customer_id NOT IN ("
                    "SELECT x.customer_id FROM connection c JOIN identifier x "
                    "ON x.brand_id = c.brand_id AND x.id_type = c.id_type AND x.value = c.id_value "
                    "WHERE c.brand_id = :b AND c.kind = 'wecom_friend' "
                    "AND x.customer_id IS NOT NULL) ORDER BY i.value LIMIT 5000"
                ),
                {"b": brand_id},
            )
        ]
    userids = [g.wecom_userid or g.code for g in guides]
    day = LiveDay(str(store.code), userids)
    if done is not None:
        day.skipped = "the demo brand already has a channel code (the day ran before)"
        return day
    if not guides:
        day.skipped = f"store {store.code} has no staff"
        return day

    wecom = settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID,
            "wecom_secret": SECRET,
            "wecom_callback_token": TOKEN,
            "wecom_encoding_aes_key": AES_KEY,
        }
    )
    callback_app = create_callback_app(wecom, engine=engine, brand_id=brand_id)
    with ServerThread(callback_app) as receiver:
        sender = CallbackSender(
            url=receiver.url + CALLBACK_PATH, token=TOKEN, encoding_aes_key=AES_KEY, corp_id=CORP_ID
        )
        sim = Simulator(corp_id=CORP_ID, secret=SECRET, sender=sender)
        for g, userid in zip(guides, userids, strict=True):
            sim.add_user(userid=userid, name=g.name or userid)
        with ServerThread(create_app(sim)) as api:
            client = WeComClient(
                corp_id=CORP_ID,
                secret=SECRET,
                base_url=api.url,
                token_store=DbTokenStore(engine),
                requests_per_second=1000,
            )
            try:
                _day(engine, client, sim, day, brand_id, store, known, rng, scans)
            finally:
                client.close()
                sender.close()
    _count(engine, brand_id, day)
    return day


def _day(
    engine: Engine,
    client: WeComClient,
    sim: Simulator,
    day: LiveDay,
    brand_id: int,
    store: Any,
    known: list[str],
    rng: random.Random,
    scans: int,
) -> None:
    with engine.begin() as conn:
        day.tag_id = tag_id = tag_service.get_or_create_tag(
            conn, brand_id=brand_id, group="渠道", name=CHANNEL[1]
        )
    welcome = {**WELCOME, "text": WELCOME["text"].replace("{store}", str(store.name))}
    way = wecom_service.create_contact_way(
        engine,
        client,
        brand_id=brand_id,
        channel_code=CHANNEL[0],
        channel_name=CHANNEL[1],
        store_code=str(store.code),
        user_ids=day.guides,
        welcome=welcome,
        tag_ids=[tag_id],
    )
    day.state = way.state
    returning = rng.sample(known, min(len(known), scans * 2 // 5))
    added: list[tuple[str, str]] = []
    # The day lies behind us: its scans are at most 240 s apart, so starting the simulated clock
    # that far back for each keeps the last one from being in the future (events stamped later
    # than now would not yet count as customers in lifecycle and segments).
    sim.clock.advance(-240 * scans)
    for i in range(scans):
        unionid = returning[i] if i < len(returning) else None
        if unionid is None and rng.random() < 0.7:
            unionid = f"o6_bm{rng.getrandbits(96):024x}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")  # fmt: skip
        added.append(sim.customer_scans(way.config_id, name=name, unionid=unionid))
        sim.clock.advance(rng.uniform(30, 240))  # a day of scans, in simulated time
        if i % 50 == 49:  # WeCom's WelcomeCode is valid for 20 s: process as the day goes
            process_until_idle(engine, brand_id=brand_id, client=client)
    process_until_idle(engine, brand_id=brand_id, client=client)
    day.scans = scans
    day.returning = len(returning)
    for userid, ext in rng.sample(added, max(1, scans // 50)):
        sim.customer_deletes_staff(userid, ext)
    process_until_idle(engine, brand_id=brand_id, client=client)
    day.welcomes = len(sim.welcomes_sent)
    day.returning_unionids = returning


def _count(engine: Engine, brand_id: int, day: LiveDay) -> None:
    """The figures from Siyu's database, not from what the scenario intended."""
    with engine.connect() as conn:
        day.connections, day.ended = conn.execute(
            text(
                "SELECT count(*), count(ended_at) FROM connection "
                "WHERE brand_id = :b AND kind = 'wecom_friend' AND state = :s"
            ),
            {"b": brand_id, "s": day.state},
        ).one()
        day.tagged = conn.execute(
            text("SELECT count(*) FROM customer_tag WHERE tag_id = :t"), {"t": day.tag_id}
        ).scalar_one()
        if day.returning_unionids:
            # A returning scanner is merged when their external_userid and the unionid the
            # brand already knew now belong to one customer with records from other sources.
            day.merged = conn.execute(
                text(
                    "SELECT count(DISTINCT i.customer_id) FROM identifier i "
                    "JOIN identifier e ON e.customer_id = i.customer_id "
                    "AND e.id_type = 'external_userid' AND e.brand_id = i.brand_id "
                    "WHERE i.brand_id = :b AND i.id_type = 'unionid' AND i.value IN :u "
                    "AND EXISTS (SELECT 1 FROM source_record r WHERE r.customer_id = i.customer_id "
                    "AND r.source <> 'wecom')"
                ).bindparams(bindparam("u", expanding=True)),
                {"b": brand_id, "u": day.returning_unionids},
            ).scalar_one()
