"""Encrypted callback delivery, as WeCom does it: XML event → AES → signed POST to the callback URL.

The plaintext is the event XML of WeCom's 客户联系 callbacks (ToUserName = corp id, FromUserName
sys, CreateTime, MsgType event, Event, ChangeType, ...). WeCom retries a delivery that gets no
HTTP 200 (three times); so does the sender. Failure injection lives here too: duplicate
deliveries and out-of-order batches.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from siyu.wecom.crypto import CallbackCipher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    corp_id: str
    create_time: int
    event: str
    change_type: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_xml(self) -> str:
        parts = [
            f"<ToUserName><![CDATA[{self.corp_id}]]></ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{self.create_time}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType>",
            f"<Event><![CDATA[{self.event}]]></Event>",
            f"<ChangeType><![CDATA[{self.change_type}]]></ChangeType>",
        ]
        for key, value in self.fields.items():
            if isinstance(value, list):
                items = "".join(f"<Item><![CDATA[{v}]]></Item>" for v in value)
                parts.append(f"<{key}>{items}</{key}>")
            elif isinstance(value, int):
                parts.append(f"<{key}>{value}</{key}>")
            else:
                parts.append(f"<{key}><![CDATA[{value}]]></{key}>")
        return "<xml>" + "".join(parts) + "</xml>"


@dataclass
class CallbackFaults:
    duplicate_every: int = 0  # every n-th event is delivered twice
    reorder: bool = False  # a batch of events is delivered newest first
    seed: int = 7


class CallbackSender:
    def __init__(
        self,
        *,
        url: str,
        token: str,
        encoding_aes_key: str,
        corp_id: str,
        faults: CallbackFaults | None = None,
        retries: int = 3,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.corp_id = corp_id
        self.cipher = CallbackCipher(
            token=token, encoding_aes_key=encoding_aes_key, receive_id=corp_id
        )
        self.faults = faults or CallbackFaults()
        self.retries = retries
        self._http = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._count = 0
        self._held: list[Event] | None = None
        self.delivered = 0  # deliveries answered 200
        self.failed = 0  # deliveries that never got a 200
        self._rng = random.Random(self.faults.seed)

    def close(self) -> None:
        self._http.close()

    def hold(self) -> None:
        """Queue events instead of sending them (a scenario's batch), until `release()`."""
        with self._lock:
            self._held = []

    def release(self, count: int | None = None) -> None:
        """Send the held events (newest first under `reorder`); with `count`, only that many
        and keep holding the rest — a later part of the batch arrives after processing ran."""
        with self._lock:
            held = list(self._held or [])
            if self.faults.reorder:
                held.reverse()
            now, rest = (held, []) if count is None else (held[:count], held[count:])
            if rest:
                self._held = list(reversed(rest)) if self.faults.reorder else rest
            else:
                self._held = None
        self._send_batch(now, reorder=False)

    def deliver(self, events: list[Event]) -> None:
        with self._lock:
            if self._held is not None:
                self._held.extend(events)
                return
        self._send_batch(events, reorder=self.faults.reorder)

    def _send_batch(self, events: list[Event], *, reorder: bool) -> None:
        batch = list(events)
        if reorder:
            batch.reverse()
        for event in batch:
            self._count += 1
            copies = (
                2
                if self.faults.duplicate_every and self._count % self.faults.duplicate_every == 0
                else 1
            )
            for _ in range(copies):
                self.post(event.to_xml())

    def post(self, plaintext: str) -> int:
        """Encrypt, sign and POST one event; retry like WeCom. Returns the last HTTP status."""
        status = 0
        for attempt in range(self.retries + 1):
            # A fresh nonce and timestamp per delivery, as WeCom's retries have.
            message = self.cipher.encrypt(
                plaintext, nonce=secrets.token_hex(8), timestamp=str(int(time.time()))
            )
            body = message.to_callback_xml(to_user_name=self.corp_id)
            try:
                response = self._http.post(
                    self.url, params=message.query_params(), content=body.encode("utf-8")
                )
                status = response.status_code
            except httpx.HTTPError as e:
                log.warning("callback delivery to %s failed: %s", self.url, e)
                status = 0
            if status == 200:
                self.delivered += 1
                return status
            if attempt < self.retries:
                time.sleep(0.05 * (attempt + 1))
        self.failed += 1
        return status
