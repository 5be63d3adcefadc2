"""`siyu sms-sim`: a local SMS gateway speaking the HTTP protocol the SMS adapter uses.

    POST /v1/messages  {"idempotency_key", "phone", "text"} → 200 {"message_id", "duplicate"}
    POST /v1/messages/batch {"messages": [{"idempotency_key", "phone", "text"}, …]}
         → 200 {"results": [{"idempotency_key", "status": "sent" | "refused",
                             "message_id", "duplicate", "error"}, …]} (one per message, in order)
    POST /v1/messages/lookup {"keys": […]}                  → 200 {"found": {key: message_id}}
    GET  /v1/messages/{idempotency_key}                     → 200 {"message_id"} | 404
    GET  /sim/messages                                      → every delivered message
    GET  /sim/stats                                         → {"delivered", "requests"}

A key sent twice is delivered once (the second answer says `duplicate: true`), which is what
lets a worker that lost its record ask instead of re-sending. A batch (real providers have
them: Aliyun SendBatchSms, Tencent Cloud SendSms with many numbers) holds up to `MAX_BATCH`
messages and answers per message. Failure injection counts requests, single or batch: every
Nth answers 503 with nothing delivered (`unavailable_every`); phones listed in `refuse` are
refused (400 for a single send, "refused" in a batch); `slow_every` delivers, then answers after
`slow_seconds` — past a client's timeout, the crash window on purpose.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

PHONE = re.compile(r"^\+861[3-9]\d{9}$")
MAX_BATCH = 1000


class Message(BaseModel):
    idempotency_key: str
    phone: str
    text: str


class Batch(BaseModel):
    messages: list[Message] = Field(max_length=MAX_BATCH)


class Lookup(BaseModel):
    keys: list[str] = Field(max_length=MAX_BATCH)


@dataclass
class Faults:
    unavailable_every: int = 0  # every Nth request answers 503
    slow_every: int = 0  # every Nth request delivers, then answers after `slow_seconds`
    slow_seconds: float = 2.0
    refuse: set[str] = field(default_factory=set)  # phones refused


@dataclass
class Gateway:
    faults: Faults = field(default_factory=Faults)
    delivered: dict[str, dict[str, str]] = field(default_factory=dict)  # key → message
    sends: int = 0  # requests, single or batch
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _deliver(self, msg: Message) -> tuple[dict[str, str] | None, bool]:
        """(the stored message or None if refused, whether it was a duplicate); under lock."""
        if not PHONE.match(msg.phone) or msg.phone in self.faults.refuse:
            return None, False
        seen = self.delivered.get(msg.idempotency_key)
        if seen is not None:
            return seen, True
        seen = {"message_id": f"sim-{len(self.delivered) + 1}", **msg.model_dump()}
        self.delivered[msg.idempotency_key] = seen
        return seen, False

    def _request(self) -> tuple[bool, bool]:
        """Count a request: (answer 503, answer slowly); under lock."""
        self.sends += 1
        f, n = self.faults, self.sends
        return (
            bool(f.unavailable_every and n % f.unavailable_every == 0),
            bool(f.slow_every and n % f.slow_every == 0),
        )


def create_app(gateway: Gateway | None = None) -> FastAPI:
    gw = gateway or Gateway()
    app = FastAPI(title="Siyu SMS simulator", docs_url=None, redoc_url=None)
    app.state.gateway = gw

    @app.post("/v1/messages")
    def send(msg: Message) -> JSONResponse:
        with gw.lock:
            busy, slow = gw._request()
            if busy:
                return JSONResponse({"error": "busy, retry later"}, status_code=503)
            seen, duplicate = gw._deliver(msg)
        if seen is None:
            return JSONResponse({"error": f"cannot deliver to {msg.phone}"}, status_code=400)
        if slow:
            time.sleep(gw.faults.slow_seconds)
        return JSONResponse({"message_id": seen["message_id"], "duplicate": duplicate})

    @app.post("/v1/messages/batch")
    def send_batch(batch: Batch) -> JSONResponse:
        results = []
        with gw.lock:
            busy, slow = gw._request()
            if busy:
                return JSONResponse({"error": "busy, retry later"}, status_code=503)
            for msg in batch.messages:
                seen, duplicate = gw._deliver(msg)
                if seen is None:
                    results.append({"idempotency_key": msg.idempotency_key, "status": "refused",
                                    "error": f"cannot deliver to {msg.phone}"})  # fmt: skip
                else:
                    results.append({"idempotency_key": msg.idempotency_key, "status": "sent",
                                    "message_id": seen["message_id"], "duplicate": duplicate})  # fmt: skip
        if slow:
            time.sleep(gw.faults.slow_seconds)
        return JSONResponse({"results": results})

    @app.post("/v1/messages/lookup")
    def lookup_many(body: Lookup) -> JSONResponse:
        with gw.lock:
            found = {k: gw.delivered[k]["message_id"] for k in body.keys if k in gw.delivered}
        return JSONResponse({"found": found})

    @app.get("/v1/messages/{key}")
    def lookup(key: str) -> JSONResponse:
        seen = gw.delivered.get(key)
        if seen is None:
            return JSONResponse({"error": "unknown key"}, status_code=404)
        return JSONResponse({"message_id": seen["message_id"]})

    @app.get("/sim/messages")
    def messages() -> list[dict[str, str]]:
        return list(gw.delivered.values())

    @app.get("/sim/stats")
    def stats() -> dict[str, int]:
        return {"delivered": len(gw.delivered), "requests": gw.sends}

    return app
