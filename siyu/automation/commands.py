"""`siyu worker` (delivers the outbox) and `siyu sms-sim` (a local SMS gateway)."""

from __future__ import annotations

import os
import socket
import time
from typing import Annotated

import typer

from siyu.automation import outbox
from siyu.automation.adapters import Adapter
from siyu.clikit import console, fail, settings
from siyu.config import Settings
from siyu.runtime import open_brand


def adapters_for(s: Settings) -> dict[str, Adapter]:
    """The delivery adapters the settings configure."""
    found: dict[str, Adapter] = {}
    if s.sms_api_base:
        from siyu.sms.adapter import SmsAdapter

        found["sms"] = SmsAdapter(s.sms_api_base, api_key=s.sms_api_key)
    return found


def worker(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due, then stop.")] = False,
    batch: Annotated[int, typer.Option(help="Rows claimed per turn.")] = 100,
    idle: Annotated[float, typer.Option(help="Seconds to wait when nothing is due.")] = 1.0,
) -> None:
    """Deliver the outbox: claim due rows, send each once through its adapter, record the
    result. Several workers may run at once (PostgreSQL); a dead worker's rows are resolved by
    asking the provider."""
    s = settings()
    adapters = adapters_for(s)
    if not adapters:
        raise fail("no delivery adapter configured: set SIYU_SMS_API_BASE (e.g. siyu sms-sim)")
    engine, _ = open_brand(s)
    name = f"{socket.gethostname()}:{os.getpid()}"
    totals = outbox.DeliveryReport()
    console.print(f"worker {name}: adapters {', '.join(adapters)}")
    try:
        while True:
            r = outbox.run_once(engine, adapters, name, limit=batch)
            totals.sent += r.sent
            totals.failed += r.failed
            totals.retrying += r.retrying
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


def sms_sim(
    host: Annotated[str, typer.Option(help="Interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    unavailable_every: Annotated[
        int, typer.Option(help="Answer every Nth send with 503 (failure injection).")
    ] = 0,
) -> None:
    """Run a local SMS gateway speaking the adapter's protocol (delivers each key once)."""
    import uvicorn

    from siyu.sms.simulator import Faults, Gateway, create_app

    app = create_app(Gateway(Faults(unavailable_every=unavailable_every)))
    console.print(f"SMS simulator on http://{host}:{port} (GET /sim/messages lists deliveries)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
