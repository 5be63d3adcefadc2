"""The webhook adapter: an SOP step that POSTs JSON to a URL the brand runs.

Each row is one POST of `payload["body"]` to `payload["url"]` with the header
`Idempotency-Key: <outbox dedup key>`: 2xx → sent, 4xx → refused (failed at once), 5xx, 429,
timeouts and connection errors → unavailable (retried with backoff).

At least once, deduplicated by the receiver: a webhook has no way to be asked what it
received, so a worker that died after the POST and before recording it leaves the row to
`recover`, which puts it back to pending and it is POSTed again with the same
Idempotency-Key. The receiver must treat a key it has seen as already done.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from siyu.automation.adapters import Outbound, Outcome, Refused, Sent, Unavailable


class WebhookAdapter:
    name = "webhook"
    channel = "webhook"
    reports_on_send = False  # not a message to a customer: no delivery row

    def __init__(self, *, timeout: float = 10.0, in_flight: int = 8) -> None:
        self.client = httpx.Client(timeout=timeout)
        self.in_flight = in_flight

    def _post(self, item: Outbound) -> Outcome:
        url, body = item.payload.get("url"), item.payload.get("body")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return Refused(f"payload url must be an http(s) URL, not {url!r}")
        try:
            r = self.client.post(url, json=body or {}, headers={"Idempotency-Key": item.key})
        except httpx.HTTPError as e:
            return Unavailable(f"webhook {url}: {type(e).__name__}")
        if 200 <= r.status_code < 300:
            return Sent(str(r.status_code), {"status": r.status_code})
        if r.status_code == 429 or r.status_code >= 500:
            return Unavailable(f"webhook {url} answered {r.status_code}")
        return Refused(f"webhook {url} answered {r.status_code}: {r.text[:200]}")

    def send_batch(self, items: Sequence[Outbound]) -> list[Outcome]:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.in_flight, len(items))) as pool:
            return list(pool.map(self._post, items))

    def lookup(self, key: str) -> Sent | None:
        return None  # cannot ask a webhook: recovery re-sends with the same Idempotency-Key

    def close(self) -> None:
        self.client.close()
