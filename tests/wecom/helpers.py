"""Shared set-up for the WeCom tests: settings for a simulated corp, and signed deliveries."""

from __future__ import annotations

import secrets
import time

from siyu.config import Settings
from siyu.wecom.crypto import CallbackCipher

CORP_ID = "wwsimcorp0000000001"
SECRET = "sim-contact-secret"
TOKEN = "siyuTestToken"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def wecom_settings(settings: Settings, **extra: object) -> Settings:
    return settings.model_copy(
        update={
            "wecom_corp_id": CORP_ID,
            "wecom_secret": SECRET,
            "wecom_callback_token": TOKEN,
            "wecom_encoding_aes_key": AES_KEY,
            **extra,
        }
    )


def official_wecom_settings(settings: Settings) -> Settings:
    """Settings of the corp of WeCom's published test vectors (tests/wecom/test_crypto.py)."""
    from tests.wecom import test_crypto as vectors

    return wecom_settings(
        settings,
        wecom_corp_id=vectors.OFFICIAL_CORP_ID,
        wecom_callback_token=vectors.OFFICIAL_TOKEN,
        wecom_encoding_aes_key=vectors.OFFICIAL_AES_KEY,
    )


def cipher(receive_id: str = CORP_ID, token: str = TOKEN) -> CallbackCipher:
    return CallbackCipher(token=token, encoding_aes_key=AES_KEY, receive_id=receive_id)


def event_xml(
    change_type: str = "add_external_contact", *, create_time: int | None = None, **fields: str
) -> str:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event>"
        f"<ChangeType><![CDATA[{change_type}]]></ChangeType>{body}</xml>"
    )


def signed(
    plaintext: str,
    *,
    with_cipher: CallbackCipher | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> tuple[dict[str, str], str]:
    """(query params, POST body) of one delivery, as WeCom sends it."""
    c = with_cipher or cipher()
    msg = c.encrypt(
        plaintext, nonce=nonce or secrets.token_hex(8), timestamp=str(timestamp or int(time.time()))
    )
    return msg.query_params(), msg.to_callback_xml(to_user_name=CORP_ID)
