"""The SMS adapter: sends outbox rows through an HTTP SMS gateway (the simulator's protocol;
a real provider plugs in behind the same interface, siyu.automation.adapters.Adapter).

Rows go in batches of `batch_size` to the gateway's batch endpoint (idempotent per key), a few
batches in flight at once; the gateway answers per message, so one refused number fails only
its own row. A batch that gets no answer (timeout, 5xx, 429) is Unavailable for each of its
rows: they are retried with the same keys, which the gateway delivers at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from siyu.automation.adapters import Outbound, Outcome, Refused, Sent, Unavailable


class SmsAdapter:
    name = "sms"
    channel = "sms"
    reports_on_send = True  # the gateway's acceptance is the delivery we record

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        batch_size: int = 200,
        in_flight: int = 4,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=max(in_flight, 10)),
        )
        self.batch_size = batch_size
        self.in_flight = in_flight

    def send(self, item: Outbound) -> Sent:
        outcome = self.send_batch([item])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_batch(self, items: Sequence[Outbound]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(items)
        valid: list[int] = []
        for n, item in enumerate(items):
            if not item.payload.get("phone") or not item.payload.get("text"):
                outcomes[n] = Refused("payload needs a phone and a text")
            else:
                valid.append(n)
        chunks = [valid[i : i + self.batch_size] for i in range(0, len(valid), self.batch_size)]
        if chunks:
            with ThreadPoolExecutor(max_workers=min(self.in_flight, len(chunks))) as pool:
                for chunk, answers in zip(
                    chunks, pool.map(lambda c: self._post([items[n] for n in c]), chunks),
                    strict=True,
                ):  # fmt: skip
                    for n, outcome in zip(chunk, answers, strict=True):
                        outcomes[n] = outcome
        return [o for o in outcomes if o is not None]

    def _post(self, batch: list[Outbound]) -> list[Outcome]:
        body = {
            "messages": [
                {"idempotency_key": i.key, "phone": i.payload["phone"], "text": i.payload["text"]}
                for i in batch
            ]
        }
        try:
            r = self.client.post("/v1/messages/batch", json=body)
        except httpx.HTTPError as e:  # timeouts, refused connections: the outcome is unknown
            return [Unavailable(f"SMS gateway: {type(e).__name__}") for _ in batch]
        if r.status_code == 429 or r.status_code >= 500:
            return [Unavailable(f"SMS gateway answered {r.status_code}") for _ in batch]
        if r.status_code != 200:
            return [Refused(f"SMS gateway answered {r.status_code}: {r.text[:200]}") for _ in batch]
        answers = {a["idempotency_key"]: a for a in r.json()["results"]}
        out: list[Outcome] = []
        for i in batch:
            a = answers.get(i.key)
            if a is None:
                out.append(Unavailable("SMS gateway did not answer for this message"))
            elif a["status"] == "sent":
                out.append(Sent(str(a["message_id"]), {"duplicate": bool(a.get("duplicate"))}))
            else:
                out.append(Refused(f"SMS gateway refused: {a.get('error', '')}"[:300]))
        return out

    def lookup(self, key: str) -> Sent | None:
        try:
            r = self.client.get(f"/v1/messages/{key}")
        except httpx.HTTPError as e:
            raise Unavailable(f"SMS gateway: {type(e).__name__}") from e
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return Sent(str(r.json()["message_id"]), {})

    def lookup_batch(self, items: Sequence[Outbound]) -> list[Sent | None]:
        found: dict[str, str] = {}
        keys = [i.key for i in items]
        for start in range(0, len(keys), 1000):
            try:
                r = self.client.post(
                    "/v1/messages/lookup", json={"keys": keys[start : start + 1000]}
                )
                r.raise_for_status()
            except httpx.HTTPError as e:
                raise Unavailable(f"SMS gateway lookup: {type(e).__name__}") from e
            found.update(r.json()["found"])
        return [Sent(str(found[k]), {}) if k in found else None for k in keys]

    def close(self) -> None:
        self.client.close()
