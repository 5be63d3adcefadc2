"""Delivery results: one `delivery` row (SPEC §5.13 reach rate reads it) and one event per
outbox row and outcome.

Statuses an adapter reports: delivered; failed (the provider refused, or we gave up);
unconfirmed (the staff member did not confirm a WeCom mass-message task in time); not_friend
(the customer had deleted the staff member). The delivery table keeps delivered / failed
(DATA_FORMAT.md); the event says which — `message.delivered`, `message.failed`,
`message.unconfirmed`, `message.not_friend` — with the SOP (key, version, step) from the
payload, so an SOP report can count them.

Both writes are idempotent (delivery row_key = md5 of the outbox key; event idempotency key =
outbox id + status), so a poller that reads the same result twice records it once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

from siyu.db import sqlite_ts

STATUSES = ("delivered", "failed", "unconfirmed", "not_friend")
# The customer reference each channel's payload carries (DATA_FORMAT.md identity types).
REFERENCE = {"wecom": ("external_userid", "external_userid"), "sms": ("phone", "phone")}
CHUNK = 2000


@dataclass(frozen=True)
class Result:
    outbox_id: int
    status: str  # one of STATUSES
    at: datetime
    reason: str | None = None


def delivery_key(dedup_key: str) -> str:
    return hashlib.md5(dedup_key.encode()).hexdigest()


def record(conn: Connection, channel: str, results: Sequence[Result]) -> None:
    """Write the delivery rows and events of `results` (rows already there are kept): two
    set-based INSERT … SELECT statements joining the results to their outbox rows."""
    for r in results:
        if r.status not in STATUSES:
            raise ValueError(f"unknown delivery status {r.status!r}")
    for start in range(0, len(results), CHUNK):
        _record(conn, channel, results[start : start + CHUNK])


_PG_ROWS = (
    "FROM json_to_recordset(CAST(:data AS json)) "
    "AS v(id bigint, status text, at timestamptz, reason text) JOIN outbox o ON o.id = v.id"
)
_SQLITE_ROWS = (
    "FROM (SELECT json_extract(j.value, '$.id') AS id, json_extract(j.value, '$.status') AS status,"
    " json_extract(j.value, '$.at') AS at, json_extract(j.value, '$.reason') AS reason"
    " FROM json_each(:data) AS j) AS v JOIN outbox o ON o.id = v.id"
)


def _record(conn: Connection, channel: str, results: Sequence[Result]) -> None:
    if not results:
        return
    pg = conn.dialect.name == "postgresql"
    if not pg:
        raw = conn.connection.dbapi_connection
        raw.create_function(  # type: ignore[union-attr]
            "md5", 1, lambda v: hashlib.md5(v.encode()).hexdigest(), deterministic=True
        )
    data = json.dumps(
        [
            {"id": r.outbox_id, "status": r.status, "reason": r.reason,
             "at": r.at.astimezone(UTC).isoformat() if pg else sqlite_ts(r.at)}
            for r in results
        ],
        ensure_ascii=False,
    )  # fmt: skip
    rows = _PG_ROWS if pg else _SQLITE_ROWS
    params: dict[str, Any] = {"data": data, "channel": channel}
    ref = REFERENCE.get(channel)
    if ref:
        value = f"o.payload ->> '{ref[1]}'" if pg else f"json_extract(o.payload, '$.{ref[1]}')"
        conn.execute(
            text(
                "INSERT INTO delivery (brand_id, row_key, channel, created_at, status, id_type, "
                "id_value, changed_at) "
                f"SELECT o.brand_id, md5(o.dedup_key), :channel, v.at, CASE WHEN v.status = "
                f"'delivered' THEN 'delivered' ELSE 'failed' END, :id_type, {value}, v.at {rows} "
                f"WHERE {value} IS NOT NULL AND {value} <> '' "
                "ON CONFLICT DO NOTHING"
            ),
            {**params, "id_type": ref[0]},
        )
    if pg:
        body = (
            "json_build_object('outbox_id', o.id, 'dedup_key', o.dedup_key, 'channel', "
            "CAST(:channel AS text), 'sop', o.payload -> 'sop', 'reason', v.reason)"
        )
    else:
        body = (
            "json_object('outbox_id', o.id, 'dedup_key', o.dedup_key, 'channel', :channel, "
            "'sop', json(json_extract(o.payload, '$.sop')), 'reason', v.reason)"
        )
    conn.execute(
        text(
            "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
            "recorded_at, payload) "
            "SELECT o.brand_id, 'message.' || v.status, 'outbox:' || o.id || ':' || v.status, "
            f"c.id, v.at, v.at, {body} {rows} LEFT JOIN customer c ON c.id = o.customer_id "
            "WHERE true ON CONFLICT DO NOTHING"
        ),
        params,
    )
