"""The callback endpoint's group commit: a batch stores what one-by-one storing would store.

Within one batch: a duplicate delivery of an event (new nonce, same content) is stored once, a
replayed (timestamp, nonce) is refused, and each request learns its own outcome. Concurrent
deliveries through the real endpoint are each answered 200 and stored.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time

import httpx
from sqlalchemy import text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.serverthread import ServerThread
from siyu.wecom.callback import CALLBACK_PATH, create_callback_app
from siyu.wecom.callback_store import store_batch
from siyu.wecom.inbox import CallbackRejected, CallbackWriter, _Write, prepare_callback
from tests.wecom.helpers import cipher, event_xml, signed, wecom_settings


def prepared(xml: str, *, nonce: str | None = None, timestamp: int | None = None):  # type: ignore[no-untyped-def]
    query, body = signed(xml, nonce=nonce, timestamp=timestamp)
    return prepare_callback(
        brand_id=1,
        cipher=cipher(),
        msg_signature=query["msg_signature"],
        timestamp=query["timestamp"],
        nonce=query["nonce"],
        body=body,
        max_skew_seconds=300,
    )


def test_one_batch_stores_duplicates_once_and_refuses_replays(settings: Settings) -> None:
    engine, brand_id = open_brand(wecom_settings(settings))
    assert brand_id == 1
    now = int(time.time())
    a = event_xml(UserID="guide01", ExternalUserID="wmA")
    b = event_xml(UserID="guide01", ExternalUserID="wmB")
    items = [
        prepared(a, nonce="n1", timestamp=now),
        prepared(a, nonce="n2", timestamp=now),  # WeCom's retry: same event, new nonce
        prepared(b, nonce="n1", timestamp=now),  # a replayed (timestamp, nonce)
        prepared(b, nonce="n3", timestamp=now),
    ]
    writer = CallbackWriter(engine, max_skew_seconds=300)
    batch = [_Write(p.nonce_row, p.event_row, done=threading.Event()) for p in items]
    writer._write_batch(batch)
    outcomes = []
    for p, w in zip(items, batch, strict=True):
        assert w.done is not None and w.done.is_set() and w.error is None and w.result is not None
        try:
            outcomes.append(p.accepted(*w.result).duplicate)
        except CallbackRejected as e:
            outcomes.append(e.reason)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT external_userid FROM wecom_callback_event ORDER BY external_userid")
        ).all()
    engine.dispose()
    assert outcomes == [False, True, "replayed (timestamp, nonce)", False]
    assert stored == [("wmA",), ("wmB",)]
    assert writer.batches == 1


def test_concurrent_deliveries_through_the_endpoint_are_each_stored(settings: Settings) -> None:
    s = wecom_settings(settings)
    engine, brand_id = open_brand(s)
    app = create_callback_app(s, engine=engine, brand_id=brand_id)
    statuses: list[int] = []
    with ServerThread(app) as server:

        def send(k: int) -> None:
            with httpx.Client() as http:
                for i in range(10):
                    query, body = signed(
                        event_xml(UserID="g", ExternalUserID=f"wm{k}x{i}"),
                        nonce=secrets.token_hex(8),
                    )
                    r = http.post(server.url + CALLBACK_PATH, params=query, content=body)
                    statuses.append(r.status_code)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    writer = app.state.wecom_callback.writer
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM wecom_callback_event")).scalar_one()
    writer.close()
    engine.dispose()
    assert statuses == [200] * 80
    assert stored == 80


def test_sqlite_batches_split_at_the_parameter_limit_and_still_dedupe(tmp_path) -> None:
    engine, _ = open_brand(wecom_settings(Settings(data_dir=tmp_path / "data")))
    now = int(time.time())
    a, b, c = (event_xml(UserID="g", ExternalUserID=f"wm{x}") for x in "ABC")
    items = [
        prepared(a, nonce="n1", timestamp=now),
        prepared(b, nonce="n2", timestamp=now),
        prepared(c, nonce="n3", timestamp=now),  # the events' second statement (2 fit in one)
        prepared(a, nonce="n4", timestamp=now),  # a's retry, in the statement after a's
        prepared(c, nonce="n1", timestamp=now),  # n1 replayed within the batch
    ]
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        # 30 parameters: 2 event rows (13 columns) or 10 nonce rows (3) per statement
        old = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 30)
        try:
            outcomes = store_batch(conn, [(p.nonce_row, p.event_row) for p in items])
        finally:
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, old)
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT id, external_userid FROM wecom_callback_event ORDER BY id")
        ).all()
    engine.dispose()
    assert [e for _, e in stored] == ["wmA", "wmB", "wmC"]
    ids = [i for i, _ in stored]
    assert outcomes == [
        (False, ids[0]),
        (False, ids[1]),
        (False, ids[2]),
        (False, None),
        (True, None),
    ]
