"""`siyu worker` (delivers the outbox) and `siyu sms-sim` (a local SMS gateway)."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from siyu.automation import outbox
from siyu.automation.adapters import Adapter
from siyu.clikit import console, fail, open_brand, settings
from siyu.config import Settings


def wecom_client(s: Settings, engine: Engine) -> Any:
    """The configured corp's client (tokens shared through the store), or None."""
    if not (s.wecom_corp_id and s.wecom_secret):
        return None
    from siyu.wecom.client import client_from_settings
    from siyu.wecom.tokens import DbTokenStore

    return client_from_settings(s, token_store=DbTokenStore(engine))


def adapters_for(s: Settings, engine: Engine | None = None) -> dict[str, Adapter]:
    """The delivery adapters the settings configure: sms (SIYU_SMS_API_BASE), wecom and group
    (SIYU_WECOM_CORP_ID + SIYU_WECOM_SECRET, needs the engine for task intents); webhook
    always."""
    found: dict[str, Adapter] = {}
    if s.sms_api_base:
        from siyu.sms.adapter import SmsAdapter

        found["sms"] = SmsAdapter(s.sms_api_base, api_key=s.sms_api_key)
    client = wecom_client(s, engine) if engine is not None else None
    if client is not None:
        from siyu.wecom.delivery import WeComMassAdapter

        settle = timedelta(seconds=2 * s.wecom_timeout_seconds)
        for chat_type in ("single", "group"):
            adapter = WeComMassAdapter(client, engine, chat_type=chat_type, settle_after=settle)  # type: ignore[arg-type]
            found[adapter.name] = adapter
    if found:
        from siyu.automation.webhook import WebhookAdapter

        found["webhook"] = WebhookAdapter()
    return found


def worker(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due, then stop.")] = False,
    batch: Annotated[int, typer.Option(help="Rows claimed per turn.")] = 1000,
    idle: Annotated[float, typer.Option(help="Seconds to wait when nothing is due.")] = 1.0,
    lease: Annotated[
        float, typer.Option(help="Seconds after which another worker's claim counts as dead.")
    ] = 300.0,
    results_every: Annotated[
        float, typer.Option(help="Seconds between reads of WeCom task results.")
    ] = 60.0,
    lanes: Annotated[
        int,
        typer.Option(
            help="Batches in flight at once (one's database work overlaps another's sends).", min=1
        ),
    ] = 2,
) -> None:
    """Deliver the outbox: claim due rows, send them once through their adapter (in batches),
    record the result. Several workers may run at once (PostgreSQL); a dead worker's rows are
    resolved by asking the provider. With WeCom configured it also reads mass-message task
    results (as `siyu wecom results` does)."""
    s = settings()
    engine, _ = open_brand(s)
    adapters = adapters_for(s, engine)
    if not adapters:
        engine.dispose()
        raise fail(
            "no delivery adapter configured: set SIYU_SMS_API_BASE (e.g. siyu sms-sim) or "
            "SIYU_WECOM_CORP_ID and SIYU_WECOM_SECRET"
        )
    client = wecom_client(s, engine)
    name = f"{socket.gethostname()}:{os.getpid()}"
    totals = outbox.DeliveryReport()
    console.print(f"worker {name}: adapters {', '.join(adapters)}")
    last_poll = 0.0
    try:
        while True:
            r = outbox.run_lanes(
                engine, adapters, name, lanes=lanes, limit=batch, lease=timedelta(seconds=lease)
            )
            totals.sent += r.sent
            totals.failed += r.failed
            totals.retrying += r.retrying
            if client is not None and time.monotonic() - last_poll >= results_every:
                last_poll = time.monotonic()
                _poll(engine, client, s)
            if r.sent or r.failed or r.retrying:
                console.print(f"sent {r.sent}, failed {r.failed}, retrying {r.retrying}")
            elif once:
                break
            else:
                time.sleep(idle)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
    console.print(f"done: sent {totals.sent}, failed {totals.failed}, retrying {totals.retrying}")


def _poll(engine: Engine, client: Any, s: Settings) -> Any:
    from siyu.wecom.delivery import poll_results

    return poll_results(
        engine, client, unconfirmed_after=timedelta(hours=s.wecom_unconfirmed_after_hours)
    )


def sms_sim(
    host: Annotated[str, typer.Option(help="Interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    unavailable_every: Annotated[
        int, typer.Option(help="Answer every Nth request with 503 (failure injection).")
    ] = 0,
) -> None:
    """Run a local SMS gateway speaking the adapter's protocol (delivers each key once)."""
    import uvicorn

    from siyu.sms.simulator import Faults, Gateway, create_app

    app = create_app(Gateway(Faults(unavailable_every=unavailable_every)))
    console.print(f"SMS simulator on http://{host}:{port} (GET /sim/messages lists deliveries)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
