"""`siyu sms-sim`: a local SMS gateway speaking the HTTP protocol the SMS adapter uses.

    POST /v1/messages  {"idempotency_key", "phone", "text"} → 200 {"message_id", "duplicate"}
    GET  /v1/messages/{idempotency_key}                     → 200 {"message_id"} | 404
    GET  /sim/messages                                      → every delivered message

A key sent twice is delivered once (the second answer says `duplicate: true`), which is what
lets a worker that lost its record ask instead of re-sending. Failure injection: every Nth send
answers 503 (`unavailable_every`), phones listed in `refuse` answer 400 (a permanent refusal),
and `slow_every` sleeps past a client's timeout after delivering — the crash window on purpose.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

PHONE = re.compile(r"^\+861[3-9]\d{9}$")


class Message(BaseModel):
    idempotency_key: str
    phone: str
    text: str


@dataclass
class Faults:
    unavailable_every: int = 0  # every Nth send answers 503
    slow_every: int = 0  # every Nth send delivers, then answers after `slow_seconds`
    slow_seconds: float = 2.0
    refuse: set[str] = field(default_factory=set)  # phones answered 400


@dataclass
class Gateway:
    faults: Faults = field(default_factory=Faults)
    delivered: dict[str, dict[str, str]] = field(default_factory=dict)  # key → message
    sends: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def create_app(gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or Gateway()
    app = FastAPI(title="Siyu SMS simulator", docs_url=None, redoc_url=None)
    app.state.gateway = gw

    @app.post("/v1/messages")
    def send(msg: Message) -> JSONResponse:
        with gw.lock:
            gw.sends += 1
            n = gw.sends
            f = gw.faults
            if f.unavailable_every and n % f.unavailable_every == 0:
                return JSONResponse({"error": "busy, retry later"}, status_code=503)
            if not PHONE.match(msg.phone) or msg.phone in f.refuse:
                return JSONResponse({"error": f"cannot deliver to {msg.phone}"}, status_code=400)
            seen = gw.delivered.get(msg.idempotency_key)
            duplicate = seen is not None
            if seen is None:
                seen = {"message_id": f"sim-{len(gw.delivered) + 1}", **msg.model_dump()}
                gw.delivered[msg.idempotency_key] = seen
            slow = bool(f.slow_every and n % f.slow_every == 0)
        if slow:
            time.sleep(f.slow_seconds)
        return JSONResponse({"message_id": seen["message_id"], "duplicate": duplicate})

    @app.get("/v1/messages/{key}")
    def lookup(key: str) -> JSONResponse:
        seen = gw.delivered.get(key)
        if seen is None:
            return JSONResponse({"error": "unknown key"}, status_code=404)
        return JSONResponse({"message_id": seen["message_id"]})

    @app.get("/sim/messages")
    def messages() -> list[dict[str, str]]:
        return list(gw.delivered.values())

    return app
