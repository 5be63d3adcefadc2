"""A simulated corp and a Siyu brand wired together over real HTTP on localhost.

Two uvicorn threads: the WeCom simulator (API) and Siyu's callback app. The simulator delivers
encrypted callbacks to the callback app; Siyu's client calls the simulator's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.wecom.callback import CALLBACK_PATH, create_callback_app
from siyu.wecom.client import RetryPolicy, WeComClient
from siyu.wecom.simulator import (
    ApiFaults,
    CallbackFaults,
    CallbackSender,
    FaultInjector,
    ServerThread,
    Simulator,
    create_app,
)
from siyu.wecom.tokens import DbTokenStore
from tests.wecom.helpers import AES_KEY, CORP_ID, SECRET, TOKEN, wecom_settings

# Every kind of API failure at once, at co-prime periods, for the "ends the same under
# failures" tests: expired tokens, rate limits, busy, server errors and client timeouts.
MIXED_FAULTS = ApiFaults(
    expire_tokens_every=7,
    rate_limit_every=5,
    busy_every=11,
    server_error_every=13,
    timeout_every=17,
    timeout_seconds=0.6,
)


@dataclass
class World:
    settings: Settings
    engine: Engine
    brand_id: int
    sim: Simulator
    injector: FaultInjector
    sender: CallbackSender
    client: WeComClient
    api_url: str = ""

    def rows(self, sql: str, **params: object) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), {"b": self.brand_id, **params})]


@contextmanager
def world(
    settings: Settings,
    *,
    api_faults: ApiFaults | None = None,
    callback_faults: CallbackFaults | None = None,
    client_timeout: float = 5.0,
) -> Iterator[World]:
    engine, brand_id = open_brand(wecom_settings(settings))
    callback_app = create_callback_app(wecom_settings(settings), engine=engine, brand_id=brand_id)
    with ServerThread(callback_app) as receiver:
        sender = CallbackSender(
            url=receiver.url + CALLBACK_PATH,
            token=TOKEN,
            encoding_aes_key=AES_KEY,
            corp_id=CORP_ID,
            faults=callback_faults,
        )
        sim = Simulator(corp_id=CORP_ID, secret=SECRET, sender=sender)
        injector = FaultInjector(api_faults)
        with ServerThread(create_app(sim, injector)) as wecom:
            client = WeComClient(
                corp_id=CORP_ID,
                secret=SECRET,
                base_url=wecom.url,
                token_store=DbTokenStore(engine),
                requests_per_second=1000,
                retry=RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05),
                timeout=client_timeout,
            )
            try:
                yield World(settings, engine, brand_id, sim, injector, sender, client, wecom.url)
            finally:
                client.close()
                sender.close()
    engine.dispose()


def cli_env(w: World) -> dict[str, str]:
    """Environment for `siyu wecom …` in a test: the world's database and simulated corp."""
    env = {
        "SIYU_WECOM_CORP_ID": CORP_ID,
        "SIYU_WECOM_SECRET": SECRET,
        "SIYU_WECOM_CALLBACK_TOKEN": TOKEN,
        "SIYU_WECOM_ENCODING_AES_KEY": AES_KEY,
        "SIYU_WECOM_API_BASE": w.api_url,
        "SIYU_WECOM_REQUESTS_PER_SECOND": "1000",
    }
    if w.settings.database_url:
        env["SIYU_DATABASE_URL"] = w.settings.database_url
    return env
