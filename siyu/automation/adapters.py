"""The interface every delivery adapter (WeCom 1:1, WeCom group, SMS, webhook) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Outbound:
    """What a worker hands an adapter: the row's idempotency key and what to send."""

    key: str
    customer_id: int | None
    payload: dict[str, Any]


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


class Adapter(Protocol):
    name: str

    def send(self, item: Outbound) -> Sent:
        """Send once, passing `item.key` as the provider's idempotency key."""
        ...

    def lookup(self, key: str) -> Sent | None:
        """What the provider knows of `key`: its receipt if it was sent, None if never."""
        ...
