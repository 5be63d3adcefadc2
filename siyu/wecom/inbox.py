"""Accepting a WeCom callback: verify, decrypt, refuse stale and replayed, store once.

The callback endpoint does only this and answers; processing happens later from the stored row
(`siyu.wecom.events`), so an error in processing never loses an event and a slow database
query never makes WeCom time out and retry.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from siyu.wecom.crypto import CallbackCipher, WeComCryptoError, parse_xml
from siyu.wecom.models import WeComCallbackEvent, WeComCallbackNonce

log = logging.getLogger(__name__)

_accepted = itertools.count(1)
PRUNE_EVERY = 500  # accepted callbacks between two prunes of old nonces


class CallbackRejected(Exception):
    """The delivery is refused; nothing was stored. `status` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Accepted:
    event_id: int | None  # None when the event was already stored (a duplicate delivery)
    event_key: str
    event: str
    change_type: str | None

    @property
    def duplicate(self) -> bool:
        return self.event_id is None


@dataclass(frozen=True)
class ParsedEvent:
    fields: dict[str, str]
    key: str
    create_time: datetime


def parse_event(xml: str) -> ParsedEvent:
    """Flatten the decrypted event; nested lists (MemChangeList) become comma-joined text.

    The key hashes every element in document order, so WeCom's retries of one event (new
    nonce, new ciphertext, same content) share it and different events never do.
    """
    root = parse_xml(xml)
    fields: dict[str, str] = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if len(child):
            fields[child.tag] = ",".join((item.text or "") for item in child)
        else:
            fields[child.tag] = child.text or ""
    try:
        created = datetime.fromtimestamp(int(fields.get("CreateTime", "")), UTC)
    except (ValueError, OverflowError, OSError):
        raise CallbackRejected("the event has no valid CreateTime", status=400) from None
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in fields.items())
    return ParsedEvent(fields, hashlib.sha256(canonical.encode("utf-8")).hexdigest(), created)


def _insert_ignore(conn: Connection, table, values: dict, returning):  # type: ignore[no-untyped-def]
    """INSERT … ON CONFLICT DO NOTHING RETURNING `returning`: the value, or None on conflict.

    RETURNING rather than rowcount: psycopg reports no reliable rowcount for it.
    """
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    stmt = stmt.values(**values).on_conflict_do_nothing().returning(returning)
    return conn.execute(stmt).scalar_one_or_none()


def accept_callback(
    engine: Engine,
    *,
    brand_id: int,
    cipher: CallbackCipher,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    body: bytes | str,
    max_skew_seconds: int,
    now: datetime | None = None,
) -> Accepted:
    """Verify and store one delivery, or raise CallbackRejected (with a log line)."""
    now = now or datetime.now(UTC)
    try:
        plaintext = cipher.decrypt_message(
            msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, body=body
        )
    except WeComCryptoError as e:
        raise _rejected(f"{type(e).__name__}: {e}", timestamp, nonce) from None
    try:
        sent = int(timestamp)
    except ValueError:
        raise _rejected("the timestamp is not a number", timestamp, nonce, 400) from None
    if abs(now.timestamp() - sent) > max_skew_seconds:
        raise _rejected(
            f"stale timestamp: {int(now.timestamp()) - sent} s from our clock "
            f"(more than {max_skew_seconds} s)",
            timestamp,
            nonce,
        )
    if not nonce or len(nonce) > 64 or len(timestamp) > 20:
        raise _rejected("the nonce or timestamp is malformed", timestamp, nonce, 400)
    try:
        parsed = parse_event(plaintext)
    except WeComCryptoError as e:
        raise _rejected(f"the decrypted event is not XML: {e}", timestamp, nonce, 400) from None
    except CallbackRejected as e:
        raise _rejected(e.reason, timestamp, nonce, e.status) from None
    f = parsed.fields
    event = f.get("Event") or f.get("InfoType") or f.get("MsgType") or "unknown"
    with engine.begin() as conn:
        if (
            _insert_ignore(
                conn,
                WeComCallbackNonce.__table__,
                {"timestamp": timestamp, "nonce": nonce, "received_at": now},
                WeComCallbackNonce.nonce,
            )
            is None
        ):
            raise _rejected("replayed (timestamp, nonce)", timestamp, nonce)
        event_id = _insert_ignore(
            conn,
            WeComCallbackEvent.__table__,
            {
                "brand_id": brand_id,
                "event_key": parsed.key,
                "corp_id": cipher.receive_id,
                "event": event[:64],
                "change_type": (f.get("ChangeType") or None),
                "user_id": (f.get("UserID") or None),
                "external_userid": (f.get("ExternalUserID") or None),
                "chat_id": (f.get("ChatId") or None),
                "create_time": parsed.create_time,
                "xml": plaintext,
                "received_at": now,
                "status": "pending",
                "attempts": 0,
            },
            WeComCallbackEvent.id,
        )
        if next(_accepted) % PRUNE_EVERY == 0:
            prune_nonces(conn, older_than=now - timedelta(seconds=2 * max_skew_seconds))
    return Accepted(event_id, parsed.key, event, f.get("ChangeType") or None)


def prune_nonces(conn: Connection, *, older_than: datetime) -> int:
    """Nonces older than the skew window can no longer be replayed (the timestamp check
    refuses them), so they need not be kept."""
    t = WeComCallbackNonce
    return conn.execute(delete(t).where(t.received_at < older_than)).rowcount


def _rejected(reason: str, timestamp: str, nonce: str, status: int = 403) -> CallbackRejected:
    log.warning(
        "WeCom callback rejected, nothing stored: %s (timestamp=%r, nonce=%r)",
        reason,
        timestamp[:32],
        nonce[:64],
    )
    return CallbackRejected(reason, status)
