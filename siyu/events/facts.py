"""Domain events from imported facts (SPEC §7 triggers): `order.paid`, `member.joined` and
`referral.completed`, for SOPs that start when a customer buys, joins or is referred.

They are derived after each import's identity pass from the rows it stored (changed since the
import began), once per fact by idempotency key, and only for facts of the last FRESH days: a
back-fill of last year's orders is history, not a reason to message anyone today.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from siyu.db import bind_ts

FRESH = timedelta(days=3)


def _json(conn: Connection, pairs: dict[str, str]) -> str:
    fn = "json_build_object" if conn.dialect.name == "postgresql" else "json_object"
    return f"{fn}(" + ", ".join(f"'{k}', {v}" for k, v in pairs.items()) + ")"


def _customer(alias: str, id_type: str, id_value: str) -> str:
    return (
        f"JOIN identifier {alias} ON {alias}.brand_id = :b AND {alias}.id_type = {id_type} "
        f"AND {alias}.value = {id_value} AND {alias}.customer_id IS NOT NULL"
    )


def emit(conn: Connection, *, brand_id: int, since: datetime, now: datetime) -> dict[str, int]:
    """Insert the events of facts stored since `since`; returns how many of each were new."""
    params = {
        "b": brand_id,
        "since": bind_ts(conn, since),
        "fresh": bind_ts(conn, now - FRESH),
        "now": bind_ts(conn, now),
    }
    kinds = {
        "order.paid": (
            "o.order_key",
            "o.created_at",
            _json(
                conn,
                {
                    "order": "o.order_key",
                    "store": "s.code",
                    "platform": "o.platform",
                    "amount_fen": "o.amount_fen",
                },
            ),
            'FROM "order" o '
            + _customer("i", "o.id_type", "o.id_value")
            + " LEFT JOIN store s ON s.id = o.store_id WHERE o.brand_id = :b "
            "AND o.changed_at >= :since AND o.created_at >= :fresh "
            "AND o.status <> 'cancelled' AND o.refund_fen < o.amount_fen",
        ),
        "member.joined": (
            "m.member_no",
            "m.joined_at",
            _json(conn, {"member_no": "m.member_no", "level": "m.level"}),
            "FROM membership m "
            + _customer("i", "'member_no'", "m.member_no")
            + " WHERE m.brand_id = :b AND m.changed_at >= :since AND m.joined_at >= :fresh",
        ),
        "referral.completed": (
            "r.invitee_id_type || ':' || r.invitee_id_value",
            "r.created_at",
            _json(conn, {"referrer": "ri.customer_id"}),
            "FROM referral r "
            + _customer("i", "r.invitee_id_type", "r.invitee_id_value")
            + " "
            + _customer("ri", "r.referrer_id_type", "r.referrer_id_value")
            + " WHERE r.brand_id = :b AND r.changed_at >= :since AND r.created_at >= :fresh",
        ),
    }
    made = {}
    for kind, (key, at, payload, source) in kinds.items():
        done = conn.execute(
            text(
                "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
                f"recorded_at, payload) SELECT :b, '{kind}', '{kind}:' || {key}, i.customer_id, "
                f"{at}, :now, {payload} {source} ON CONFLICT (brand_id, idempotency_key) DO NOTHING"
            ).execution_options(preserve_rowcount=True),
            params,
        )
        made[kind] = max(int(done.rowcount), 0)
    return made
