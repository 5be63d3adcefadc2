"""The callback URL: verification, acceptance, and every refusal storing nothing."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.wecom.callback import CALLBACK_PATH, create_callback_app
from siyu.wecom.crypto import CallbackCipher
from siyu.wecom.inbox import CallbackRejected, accept_callback
from tests.wecom import test_crypto as vectors
from tests.wecom.helpers import cipher, event_xml, official_wecom_settings, signed, wecom_settings


@pytest.fixture
def app_env(settings: Settings):
    s = wecom_settings(settings)
    engine, brand_id = open_brand(s)
    client = TestClient(create_callback_app(s, engine=engine, brand_id=brand_id))
    yield client, engine
    client.close()
    engine.dispose()


def counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM wecom_callback_event")).scalar_one()
        nonces = conn.execute(text("SELECT count(*) FROM wecom_callback_nonce")).scalar_one()
    return events, nonces


def test_url_verification_answers_the_official_echostr(settings: Settings) -> None:
    s = official_wecom_settings(settings)
    engine, brand_id = open_brand(s)
    with TestClient(create_callback_app(s, engine=engine, brand_id=brand_id)) as client:
        ok = client.get(
            CALLBACK_PATH,
            params=vectors.OFFICIAL_VERIFY_QUERY,
        )
        bad = client.get(
            CALLBACK_PATH,
            params=vectors.OFFICIAL_VERIFY_QUERY | {"msg_signature": "0" * 40},
        )
    engine.dispose()
    assert ok.status_code == 200 and ok.text == vectors.OFFICIAL_ECHO_PLAINTEXT
    assert bad.status_code == 403


def test_official_post_vector_is_stored_at_its_own_time(settings: Settings) -> None:
    engine, brand_id = open_brand(settings)
    official = CallbackCipher(
        token=vectors.OFFICIAL_TOKEN,
        encoding_aes_key=vectors.OFFICIAL_AES_KEY,
        receive_id=vectors.OFFICIAL_CORP_ID,
    )
    accepted = accept_callback(
        engine,
        brand_id=brand_id,
        cipher=official,
        msg_signature=vectors.OFFICIAL_MSG_SIGNATURE,
        timestamp=vectors.OFFICIAL_MSG_TIMESTAMP,
        nonce=vectors.OFFICIAL_MSG_NONCE,
        body=vectors.OFFICIAL_POST_BODY,
        max_skew_seconds=300,
        now=datetime.fromtimestamp(int(vectors.OFFICIAL_MSG_TIMESTAMP) + 10, UTC),
    )
    with engine.connect() as conn:
        row = conn.execute(text("SELECT event, xml, status FROM wecom_callback_event")).one()
    engine.dispose()
    assert accepted.event_id is not None and accepted.event == "text"
    assert row == ("text", vectors.OFFICIAL_POST_PLAINTEXT, "pending")


def test_an_event_is_stored_once_whatever_the_deliveries(app_env) -> None:
    client, engine = app_env
    plaintext = event_xml(UserID="zhangsan", ExternalUserID="wmAAA", State="S001", WelcomeCode="c1")
    for _ in range(3):  # WeCom's retries: a new nonce and ciphertext each time
        params, body = signed(plaintext)
        response = client.post(CALLBACK_PATH, params=params, content=body)
        assert response.status_code == 200 and response.text == ""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT event, change_type, user_id, external_userid, status FROM wecom_callback_event"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("change_external_contact", "add_external_contact", "zhangsan", "wmAAA", "pending")
    ]
    assert counts(engine) == (1, 3)


def test_a_replayed_delivery_is_refused(app_env, caplog) -> None:
    client, engine = app_env
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmB"))
    assert client.post(CALLBACK_PATH, params=params, content=body).status_code == 200
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.inbox"):
        again = client.post(CALLBACK_PATH, params=params, content=body)
    assert again.status_code == 403 and "replayed" in again.text
    assert "rejected, nothing stored: replayed" in caplog.text
    assert counts(engine) == (1, 1)


@pytest.mark.parametrize(
    "case",
    ["bad_signature", "wrong_receiveid", "stale", "future", "wrong_token", "not_xml", "tampered"],
)
def test_refused_deliveries_store_nothing(app_env, caplog, case: str) -> None:
    client, engine = app_env
    plaintext = event_xml(UserID="u", ExternalUserID="wmC")
    now = int(time.time())
    if case == "wrong_receiveid":  # encrypted for another corp, signed with our token and key
        params, body = signed(plaintext, with_cipher=cipher(receive_id="wwOTHERCORP"))
    elif case == "stale":
        params, body = signed(plaintext, timestamp=now - 301)
    elif case == "future":
        # 330, not 301: `now` is truncated to the second and the request takes time, so a
        # timestamp 301 s ahead can arrive less than 300 s ahead of the server's clock
        params, body = signed(plaintext, timestamp=now + 330)
    elif case == "wrong_token":
        params, body = signed(plaintext, with_cipher=cipher(token="notOurToken"))
    else:
        params, body = signed(plaintext)
    if case == "bad_signature":
        params["msg_signature"] = "f" * 40
    if case == "not_xml":
        body = "this is not xml"
    if case == "tampered":
        body = body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA")
    with caplog.at_level(logging.WARNING, logger="siyu.wecom.inbox"):
        response = client.post(CALLBACK_PATH, params=params, content=body)
    assert response.status_code in (400, 403)
    assert "rejected, nothing stored" in caplog.text
    assert counts(engine) == (0, 0)


def test_an_accepted_delivery_just_inside_the_window_is_kept(settings: Settings) -> None:
    engine, brand_id = open_brand(settings)
    now = int(time.time())
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmD"), timestamp=now - 299)
    accepted = accept_callback(
        engine,
        brand_id=brand_id,
        cipher=cipher(),
        body=body,
        max_skew_seconds=300,
        now=datetime.fromtimestamp(now, UTC),
        **params,
    )
    with pytest.raises(CallbackRejected):
        accept_callback(
            engine,
            brand_id=brand_id,
            cipher=cipher(),
            body=body,
            max_skew_seconds=300,
            now=datetime.fromtimestamp(now + 2, UTC),
            **params,
        )
    engine.dispose()
    assert accepted.event_id is not None


def test_a_delivery_without_its_signature_parameters_is_refused_naming_one(app_env) -> None:
    client, engine = app_env
    params, body = signed(event_xml(UserID="u", ExternalUserID="wmC"))
    for name in ("msg_signature", "timestamp", "nonce"):
        partial = {k: v for k, v in params.items() if k != name}
        response = client.post(CALLBACK_PATH, params=partial, content=body)
        assert response.status_code == 400 and name in response.text
    assert counts(engine) == (0, 0)
