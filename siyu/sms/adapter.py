"""The SMS adapter: sends an outbox row through an HTTP SMS gateway (the simulator's protocol;
a real provider plugs in behind the same interface, siyu.automation.adapters.Adapter)."""

from __future__ import annotations

import httpx

from siyu.automation.adapters import Outbound, Refused, Sent, Unavailable


class SmsAdapter:
    name = "sms"

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 5.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def send(self, item: Outbound) -> Sent:
        phone, text = item.payload.get("phone"), item.payload.get("text")
        if not phone or not text:
            raise Refused("payload needs a phone and a text")
        try:
            r = self.client.post(
                "/v1/messages", json={"idempotency_key": item.key, "phone": phone, "text": text}
            )
        except httpx.HTTPError as e:  # timeouts, refused connections: the outcome is unknown
            raise Unavailable(f"SMS gateway: {type(e).__name__}") from e
        if r.status_code == 200:
            body = r.json()
            return Sent(str(body["message_id"]), {"duplicate": bool(body.get("duplicate"))})
        if r.status_code == 429 or r.status_code >= 500:
            raise Unavailable(f"SMS gateway answered {r.status_code}")
        raise Refused(f"SMS gateway answered {r.status_code}: {r.text[:200]}")

    def lookup(self, key: str) -> Sent | None:
        try:
            r = self.client.get(f"/v1/messages/{key}")
        except httpx.HTTPError as e:
            raise Unavailable(f"SMS gateway: {type(e).__name__}") from e
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return Sent(str(r.json()["message_id"]), {})

    def close(self) -> None:
        self.client.close()
