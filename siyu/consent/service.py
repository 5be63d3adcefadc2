"""Opting out by reply (退订 / TD) — SPEC §12."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, select

from siyu import pii
from siyu.consent.models import OptOut

OPT_OUT_WORDS = ("退订", "TD", "T", "取消订阅", "UNSUBSCRIBE")


def is_opt_out_reply(message: str) -> bool:
    """A reply that asks to stop (退订 / TD), ignoring case, spaces and end punctuation."""
    return message.strip().strip("。.!！ ").upper() in OPT_OUT_WORDS


def opt_out_from_reply(
    conn: Connection, *, brand_id: int, id_type: str, id_value: str, channel: str,
    message: str, at: datetime,
) -> bool:  # fmt: skip
    """Record an opt-out of `channel` when an inbound reply says 退订 / TD; True if it did.

    The SOP guards read opt-outs at send time, so nothing more is sent on that channel. Any
    inbound path (the SMS gateway's MO callback, a WeCom message) calls this with the sender's
    identifier, normalised (a phone in +86… form); a phone or email is stored as its hash, as
    every fact's identifier is (siyu.pii). Replying twice records one opt-out.
    """
    if not is_opt_out_reply(message):
        return False
    id_value = pii.stored_value(pii.keyring(conn), id_type, id_value)  # a phone: its hash
    key = hashlib.md5(f"reply|{channel}|{id_type}|{id_value}".encode()).hexdigest()
    exists = conn.execute(
        select(OptOut.id).where(OptOut.brand_id == brand_id, OptOut.row_key == key)
    ).first()
    if exists is None:
        conn.execute(
            OptOut.__table__.insert().values(
                brand_id=brand_id,
                row_key=key,
                channel=channel,
                created_at=at,
                id_type=id_type,
                id_value=id_value,
            )  # fmt: skip
        )
    return True
