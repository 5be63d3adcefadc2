"""What the engine needs to know of customers, read in bulk from the operational store.

Facts reference customers by identifier (siyu.db.CustomerRef); `identifier.customer_id` maps a
value to its (surviving) customer, so every query here joins through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from siyu import pii
from siyu.bulk import temp_table
from siyu.db import bind_ts as ts  # noqa: F401 (the SOP modules' name for it)
from siyu.db import read_ts as as_utc  # noqa: F401

RESOLVE = "JOIN identifier i ON i.brand_id = x.brand_id AND i.id_type = x.id_type AND i.value = x.id_value"


@dataclass(frozen=True)
class Owner:
    """The guide (导购) of a customer's newest active WeCom friendship, and their store."""

    staff_id: int
    staff: dict[str, Any]
    store: dict[str, Any]
    sender: str  # the staff's WeCom userid
    external_userid: str


def stage_ids(conn: Connection, ids: Iterable[int]) -> None:
    temp_table(conn, "sop_ids", [("customer_id", "BIGINT")], [(int(i),) for i in set(ids)])


def profiles(conn: Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    """What a message template may say of a customer; the name opened from its seal."""
    stage_ids(conn, ids)
    rows = conn.execute(
        text(
            "SELECT c.id, c.name_sealed, c.gender, c.city, c.birthday FROM customer c "
            "WHERE c.id IN (SELECT customer_id FROM sop_ids)"
        )
    ).all()
    ring = pii.keyring(conn) if rows else None
    return {
        int(r[0]): {
            "id": int(r[0]),
            "name": (ring.open_(r[1]) if ring and r[1] else ""),
            "gender": r[2] or "",
            "city": r[3] or "",
            "birthday": str(r[4]) if r[4] else "",
        }  # fmt: skip
        for r in rows
    }


def owners(conn: Connection, brand_id: int, ids: list[int], at: datetime) -> dict[int, Owner]:
    stage_ids(conn, ids)
    rows = conn.execute(
        text(
            "SELECT i.customer_id, s.id, s.code, s.name, coalesce(s.wecom_userid, s.code), "
            "x.id_value, st.code, st.name, st.city, st.region "
            f"FROM connection x {RESOLVE} JOIN staff s ON s.id = x.staff_id "
            "LEFT JOIN store st ON st.id = s.store_id "
            "WHERE x.brand_id = :b AND x.kind = 'wecom_friend' AND x.id_type = 'external_userid' "
            "AND x.created_at <= :at AND (x.ended_at IS NULL OR x.ended_at > :at) "
            "AND i.customer_id IN (SELECT customer_id FROM sop_ids) "
            "ORDER BY x.created_at, x.id"
        ),
        {"b": brand_id, "at": ts(conn, at)},
    ).all()
    out: dict[int, Owner] = {}
    for r in rows:  # the newest friendship wins
        out[int(r[0])] = Owner(
            int(r[1]),
            {"code": r[2], "name": r[3]},
            {"code": r[6] or "", "name": r[7] or "", "city": r[8] or "", "region": r[9] or ""},
            r[4],
            r[5],
        )
    return out


def phones(conn: Connection, brand_id: int, ids: list[int]) -> dict[int, tuple[str, str]]:
    """Each customer's phone to text: (its lookup hash, the number sealed) — an SMS payload
    carries both, and the worker opens the number only to send (siyu.automation.outbox)."""
    stage_ids(conn, ids)
    rows = conn.execute(
        text(
            "SELECT customer_id, value, value_sealed FROM identifier WHERE brand_id = :b "
            "AND id_type = 'phone' AND status <> 'quarantined' AND value_sealed IS NOT NULL "
            "AND customer_id IN (SELECT customer_id FROM sop_ids) ORDER BY customer_id, id"
        ),
        {"b": brand_id},
    ).all()
    out: dict[int, tuple[str, str]] = {}
    for cid, value, sealed in rows:  # the customer's oldest phone
        out.setdefault(int(cid), (value, sealed))
    return out


def opted_out(
    conn: Connection, brand_id: int, ids: list[int], channel: str, at: datetime
) -> set[int]:
    """Customers with an opt-out (退订) covering `channel` (a null channel covers all)."""
    stage_ids(conn, ids)
    rows = conn.execute(
        text(
            f"SELECT DISTINCT i.customer_id FROM opt_out x {RESOLVE} "
            "WHERE x.brand_id = :b AND x.created_at <= :at "
            "AND (x.channel IS NULL OR x.channel = :ch) "
            "AND i.customer_id IN (SELECT customer_id FROM sop_ids)"
        ),
        {"b": brand_id, "at": ts(conn, at), "ch": channel},
    ).all()
    return {int(r[0]) for r in rows}


def resolve(conn: Connection, brand_id: int, id_type: str, values: list[str]) -> dict[str, int]:
    """identifier value → customer id, for those that resolve."""
    if not values:
        return {}
    temp_table(conn, "sop_values", [("v", "VARCHAR(200)")], [(v,) for v in set(values)])
    rows = conn.execute(
        text(
            "SELECT value, customer_id FROM identifier WHERE brand_id = :b AND id_type = :t "
            "AND customer_id IS NOT NULL AND value IN (SELECT v FROM sop_values)"
        ),
        {"b": brand_id, "t": id_type},
    ).all()
    return {r[0]: int(r[1]) for r in rows}


def groups(conn: Connection, brand_id: int, stores: list[str] | None) -> list[dict[str, Any]]:
    """Brand groups (社群) with owner and store, optionally only those of some stores."""
    rows = conn.execute(
        text(
            "SELECT g.code, g.name, s.code, s.name, coalesce(s.wecom_userid, s.code), "
            "st.code, st.name, st.city, st.region FROM chat_group g "
            "JOIN staff s ON s.id = g.owner_staff_id LEFT JOIN store st ON st.id = g.store_id "
            "WHERE g.brand_id = :b ORDER BY g.code"
        ),
        {"b": brand_id},
    ).all()
    out = []
    for r in rows:
        if stores is not None and r[5] not in stores:
            continue
        out.append(
            {
                "chat_id": r[0],
                "group": {"code": r[0], "name": r[1]},
                "staff": {"code": r[2], "name": r[3]},
                "sender": r[4],
                "store": {
                    "code": r[5] or "",
                    "name": r[6] or "",
                    "city": r[7] or "",
                    "region": r[8] or "",
                },  # fmt: skip
            }
        )
    return out
