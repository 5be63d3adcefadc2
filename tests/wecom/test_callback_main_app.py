"""The callback URL as `siyu serve` serves it: siyu.app's application, not the callback-only app.

The POST is answered in front of FastAPI's routing (siyu.wecom.callback.CallbackFastPath), so
these check that every refusal still gets its status and reason, that the GET verification and
the rest of the application are untouched, and what a vanished client or a failed store gets.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from siyu.app import create_app
from siyu.config import Settings
from siyu.wecom.callback import CALLBACK_PATH, MAX_BODY_BYTES
from tests.wecom import test_crypto as vectors
from tests.wecom.helpers import (
    CORP_ID,
    cipher,
    event_xml,
    official_wecom_settings,
    signed,
    wecom_settings,
)


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[FastAPI, TestClient, Settings]]:
    s = wecom_settings(settings)
    app = create_app(s)
    with TestClient(app) as client:
        yield app, client, s
    app.state.wecom_callback.writer.close()
    app.state.wecom_callback.engine.dispose()


def stored(s: Settings) -> tuple[list[tuple[str, str]], int]:
    engine = create_engine(s.sqlalchemy_url)
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT user_id, external_userid FROM wecom_callback_event ORDER BY id")
        ).all()
        nonces = conn.execute(text("SELECT count(*) FROM wecom_callback_nonce")).scalar_one()
    engine.dispose()
    return [tuple(e) for e in events], nonces


def test_a_delivery_is_stored_and_its_replay_refused(served) -> None:
    _, client, s = served
    params, body = signed(event_xml(UserID="guide01", ExternalUserID="wmMAIN"))
    first = client.post(CALLBACK_PATH, params=params, content=body)
    again = client.post(CALLBACK_PATH, params=params, content=body)
    assert (first.status_code, first.text) == (200, "")
    assert first.headers["content-type"].startswith("text/plain")
    assert again.status_code == 403 and again.text == "replayed (timestamp, nonce)"
    assert stored(s) == ([("guide01", "wmMAIN")], 1)


def _signed_encrypt(encrypt: str) -> tuple[dict[str, str], str]:
    """A delivery whose <Encrypt> is `encrypt` as given, correctly signed."""
    c = cipher()
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
    params = {
        "msg_signature": c.signature(timestamp, nonce, encrypt),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt>{encrypt}</Encrypt></xml>"
    return params, body


def _case(case: str) -> tuple[dict[str, str], str]:
    plaintext = event_xml(UserID="u", ExternalUserID="wmBAD")
    if case == "wrong_corp":  # encrypted for another corp with our token and key
        return signed(plaintext, with_cipher=cipher(receive_id="wwOTHERCORP"))
    if case == "stale":
        return signed(plaintext, timestamp=int(time.time()) - 3600)
    if case == "bad_base64":
        good = cipher().encrypt(plaintext, nonce="n", timestamp="1").encrypt
        return _signed_encrypt(good.replace("+", "-").replace("/", "_") + "-")
    if case == "excess_padding":
        return _signed_encrypt(cipher().encrypt(plaintext, nonce="n", timestamp="1").encrypt + "==")
    if case == "event_not_xml":
        return signed("this is not an event")
    if case == "no_create_time":
        return signed("<xml><MsgType>event</MsgType><Event>change_external_contact</Event></xml>")
    params, body = signed(plaintext)
    if case == "bad_signature":
        params["msg_signature"] = "f" * 40
    elif case == "body_not_xml":
        body = "this is not xml"
    elif case == "empty_body":
        body = ""
    return params, body


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("bad_signature", 403, "ValidateSignatureError: The msg_signature does not match"),
        ("wrong_corp", 403, "ValidateCorpidError: The message was encrypted for a different"),
        ("stale", 403, "stale timestamp: 3600 s from our clock"),
        ("body_not_xml", 403, "ParseXmlError: The XML body is not well-formed"),
        ("empty_body", 403, "ParseXmlError: The XML body is not well-formed"),
        ("bad_base64", 403, "DecodeBase64Error: The ciphertext is not valid base64: Only base64"),
        ("excess_padding", 403, "DecodeBase64Error: The ciphertext is not valid base64"),
        ("event_not_xml", 400, "the decrypted event is not XML"),
        ("no_create_time", 400, "the event has no valid CreateTime"),
    ],
)
def test_refusals_keep_their_status_and_reason(served, caplog, case, status, reason) -> None:
    _, client, s = served
    params, body = _case(case)
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.inbox"):
        response = client.post(CALLBACK_PATH, params=params, content=body)
    assert response.status_code == status
    assert response.text.startswith(reason), response.text
    assert "rejected, nothing stored" in caplog.text
    assert stored(s) == ([], 0)


def test_a_missing_signature_parameter_is_named(served) -> None:
    _, client, s = served
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmC"))
    for name in ("msg_signature", "timestamp", "nonce"):
        partial = {k: v for k, v in params.items() if k != name}
        response = client.post(CALLBACK_PATH, params=partial, content=body)
        assert (response.status_code, response.text) == (400, f"missing query parameter {name}")
    assert stored(s) == ([], 0)


def test_url_verification_and_the_rest_of_the_app_are_untouched(settings: Settings) -> None:
    s = official_wecom_settings(settings)
    app = create_app(s)
    with TestClient(app) as client:
        echo = client.get(
            CALLBACK_PATH,
            params=vectors.OFFICIAL_VERIFY_QUERY,
        )
        api = client.get("/api/v1/metrics", params={"from": "2025-01-01", "to": "2025-02-01"})
        put = client.put(CALLBACK_PATH, content="<xml/>")
    app.state.wecom_callback.engine.dispose()
    assert (echo.status_code, echo.text) == (200, vectors.OFFICIAL_ECHO_PLAINTEXT)
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthenticated"
    assert put.status_code == 405 and put.json()["error"]["code"] == "method"


def test_a_client_gone_before_its_body_is_answered_nothing(served) -> None:
    app, _, s = served
    params, _ = signed(event_xml(UserID="u", ExternalUserID="wmGONE"))
    query = urlencode(params).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": CALLBACK_PATH, "raw_path": CALLBACK_PATH.encode(),
        "root_path": "", "query_string": query, "headers": [], "server": ("test", 80),
        "client": ("127.0.0.1", 1),
    }  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []
    assert stored(s) == ([], 0)


def test_a_store_that_fails_answers_500_and_keeps_serving(served, caplog) -> None:
    _, client, s = served
    engine = create_engine(s.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE wecom_callback_nonce RENAME TO nonce_away"))
    with caplog.at_level(logging.ERROR, logger="siyu.wecom.callback"):
        params, body = signed(event_xml(UserID="u", ExternalUserID="wmF"))
        failed = client.post(CALLBACK_PATH, params=params, content=body)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE nonce_away RENAME TO wecom_callback_nonce"))
    engine.dispose()
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmOK"))
    ok = client.post(CALLBACK_PATH, params=params, content=body)
    assert failed.status_code == 500
    assert failed.text == "the callback could not be stored; deliver it again"
    assert "WeCom callback not stored" in caplog.text
    assert ok.status_code == 200
    assert stored(s) == ([("u", "wmOK")], 1)


def test_a_body_over_a_megabyte_is_refused_unread(served) -> None:
    _, client, s = served
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmBIG"))
    padded = body.replace("</xml>", "<Pad>" + "x" * MAX_BODY_BYTES + "</Pad></xml>")
    response = client.post(CALLBACK_PATH, params=params, content=padded)
    assert response.status_code == 413
    assert response.text == f"the body is larger than {MAX_BODY_BYTES:,} bytes"
    assert stored(s) == ([], 0)
