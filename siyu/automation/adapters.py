"""The interface every delivery adapter (WeCom 1:1, WeCom group, SMS, webhook) implements."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Outbound:
    """What a worker hands an adapter: the row's idempotency key and what to send. `id` is the
    outbox row's id and `worker` the claim's holder (adapters that keep their own records, like
    WeCom's intents, use them)."""

    key: str
    customer_id: int | None
    payload: dict[str, Any]
    id: int | None = None
    worker: str | None = None  # who holds the row's claim


@dataclass(frozen=True)
class Sent:
    """The adapter's receipt: e.g. WeCom's msgid, an SMS provider's message id."""

    reference: str
    detail: dict[str, Any]


class Refused(Exception):
    """The provider refused the message for good (e.g. the customer deleted the friend):
    recorded as failed, never retried."""


class Unavailable(Exception):
    """The provider could not be reached or asked us to slow down: retried with backoff."""


class InDoubt(Exception):
    """The provider may or may not have acted (e.g. WeCom timed out on a call that has no
    idempotency key): the row stays claimed, and `recover` asks the provider after the lease."""


Outcome = Sent | Refused | Unavailable | InDoubt


class Adapter(Protocol):
    name: str

    def send_batch(self, items: Sequence[Outbound]) -> list[Outcome]:
        """Send each item once, passing `item.key` as the provider's idempotency key; one
        outcome per item, in order (a batch may partly succeed)."""
        ...

    def lookup(self, key: str) -> Sent | None:
        """What the provider knows of `key`: its receipt if it was sent, None if never."""
        ...


def send_batch(adapter: Any, items: Sequence[Outbound], *, concurrency: int = 16) -> list[Outcome]:
    """`adapter.send_batch(items)`, or — for an adapter with only a per-item `send` — each
    item sent on its own, up to `concurrency` at a time. Exceptions other than Refused and
    Unavailable are bugs and propagate."""
    if hasattr(adapter, "send_batch"):
        outcomes = list(adapter.send_batch(items))
        if len(outcomes) != len(items):
            raise RuntimeError(
                f"adapter {adapter.name!r} answered {len(outcomes)} outcomes for {len(items)} items"
            )
        return outcomes

    def one(item: Outbound) -> Outcome:
        try:
            return adapter.send(item)  # type: ignore[no-any-return]
        except (Refused, Unavailable, InDoubt) as e:
            return e

    if len(items) == 1:
        return [one(items[0])]
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        return list(pool.map(one, items))


def lookup_batch(adapter: Any, items: Sequence[Outbound]) -> list[Sent | None]:
    """What the provider knows of each item: `adapter.lookup_batch` when it has one (WeCom
    answers per task, not per key), else `lookup` per key."""
    if hasattr(adapter, "lookup_batch"):
        return list(adapter.lookup_batch(items))
    return [adapter.lookup(i.key) for i in items]
