"""Accepting a WeCom callback: verify, decrypt, refuse stale and replayed, store once.

The callback endpoint does only this and answers; processing happens later from the stored row
(`siyu.wecom.events`), so an error in processing never loses an event and a slow database
query never makes WeCom time out and retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import queue
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete

from siyu.wecom.callback_store import store_batch
from siyu.wecom.crypto import CallbackCipher, WeComCryptoError, parse_xml
from siyu.wecom.models import WeComCallbackNonce

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


@dataclass(frozen=True)
class Prepared:
    """A verified, decrypted delivery: the rows to store and what to answer once stored."""

    nonce_row: dict[str, Any]
    event_row: dict[str, Any]
    timestamp: str
    nonce: str
    max_skew_seconds: int

    def accepted(self, replayed: bool, event_id: int | None) -> Accepted:
        if replayed:
            raise _rejected("replayed (timestamp, nonce)", self.timestamp, self.nonce)
        r = self.event_row
        return Accepted(event_id, r["event_key"], r["event"], r["change_type"])


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
    writer: CallbackWriter | None = None,
) -> Accepted:
    """Verify and store one delivery, or raise CallbackRejected (with a log line)."""
    p = prepare_callback(
        brand_id=brand_id,
        cipher=cipher,
        msg_signature=msg_signature,
        timestamp=timestamp,
        nonce=nonce,
        body=body,
        max_skew_seconds=max_skew_seconds,
        now=now,
    )
    if writer is not None:
        return p.accepted(*writer.write(p.nonce_row, p.event_row))
    with engine.begin() as conn:
        replayed, event_id = _store(conn, p.nonce_row, p.event_row)
        if next(_accepted) % PRUNE_EVERY == 0:
            prune_nonces(
                conn,
                older_than=p.nonce_row["received_at"] - timedelta(seconds=2 * max_skew_seconds),
            )
    return p.accepted(replayed, event_id)


def prepare_callback(
    *,
    brand_id: int,
    cipher: CallbackCipher,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    body: bytes | str,
    max_skew_seconds: int,
    now: datetime | None = None,
) -> Prepared:
    """Verify, decrypt and parse one delivery (CPU only, no I/O), or raise CallbackRejected."""
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
    nonce_row = {"timestamp": timestamp, "nonce": nonce, "received_at": now}
    event_row = {
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
    }
    return Prepared(nonce_row, event_row, timestamp, nonce, max_skew_seconds)


def _store(
    conn: Connection, nonce_row: dict[str, Any], event_row: dict[str, Any]
) -> tuple[bool, int | None]:
    """(replayed, event id or None for a duplicate event): the nonce, then the event."""
    return store_batch(conn, [(nonce_row, event_row)])[0]


@dataclass(slots=True)
class _Write:
    """One delivery waiting for the writer: a thread waits on `done`, a coroutine on `future`."""

    nonce_row: dict[str, Any]
    event_row: dict[str, Any]
    done: threading.Event | None = None
    future: asyncio.Future[tuple[bool, int | None]] | None = None
    result: tuple[bool, int | None] | None = None
    error: BaseException | None = None


def _settle(batch: list[_Write]) -> None:
    """Tell each delivery of a written batch its outcome: threads directly, and each event loop
    with one wake-up for all of its coroutines (a wake-up per callback was a measurable share
    of the endpoint's CPU at a thousand callbacks a second)."""
    waiting: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
    for w in batch:
        if w.future is not None:
            waiting.setdefault(w.future.get_loop(), []).append(w)
        elif w.done is not None:
            w.done.set()
    for loop, items in waiting.items():
        try:
            loop.call_soon_threadsafe(_resolve, items)
        except RuntimeError:  # the loop was closed meanwhile: nobody is waiting any more
            pass


def _resolve(items: list[_Write]) -> None:
    for w in items:
        future = w.future
        assert future is not None
        if future.done():  # timed out already
            continue
        if w.error is not None:
            future.set_exception(w.error)
        else:
            future.set_result(w.result)  # type: ignore[arg-type]


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("the callback store did not answer in time"))


class CallbackWriter:
    """Group commit for the callback endpoint: one thread writes every delivery waiting at that
    moment in one transaction, and each request is answered once *its* transaction committed.

    A delivery is still acknowledged only when stored, but a burst costs one commit per batch
    instead of one per callback (and SQLite's single writer is never contended). If a batch
    fails, its deliveries are written one by one, so one bad row fails alone.
    """

    def __init__(self, engine: Engine, *, max_skew_seconds: int, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_skew_seconds = max_skew_seconds
        self.max_batch = max_batch
        self.batches = 0  # for the benchmark and the tests: how many commits were made
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def write(
        self, nonce_row: dict[str, Any], event_row: dict[str, Any], timeout: float = 30.0
    ) -> tuple[bool, int | None]:
        self._ensure_started()
        item = _Write(nonce_row, event_row, done=threading.Event())
        self._queue.put(item)
        assert item.done is not None
        if not item.done.wait(timeout):
            raise TimeoutError("the callback store did not answer in time")
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    async def write_async(
        self, nonce_row: dict[str, Any], event_row: dict[str, Any], timeout: float = 30.0
    ) -> tuple[bool, int | None]:
        """As `write`, awaited on the event loop (no thread is held while the batch commits)."""
        self._ensure_started()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, int | None]] = loop.create_future()
        self._queue.put(_Write(nonce_row, event_row, future=future))
        timer = loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="wecom-callback-writer", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self._write_batch(batch)

    def _write_batch(self, batch: list[_Write]) -> None:
        try:
            with self.engine.begin() as conn:
                results = store_batch(conn, [(w.nonce_row, w.event_row) for w in batch])
                self.batches += 1
                for _ in batch:
                    if next(_accepted) % PRUNE_EVERY == 0:
                        prune_nonces(
                            conn,
                            older_than=datetime.now(UTC)
                            - timedelta(seconds=2 * self.max_skew_seconds),
                        )
        except Exception:  # noqa: BLE001 - retried one by one below
            if len(batch) > 1:
                for w in batch:
                    self._write_batch([w])
                return
            batch[0].error = sys.exc_info()[1]
            _settle(batch)
            return
        for w, r in zip(batch, results, strict=True):
            w.result = r
        _settle(batch)


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
