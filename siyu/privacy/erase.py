"""Erasing one customer's personal data (PIPL 删除权, SPEC §12) while every figure stays.

What goes:
- identities: the person's source records and record links are deleted, and every identifier
  value no one else carries (phone, unionid, external_userid, member number, …); operator
  overrides and quarantine entries of those values go with them;
- the personal columns of `PERSONAL_COLUMNS` (profile fields, message contents, recipient
  addresses, event payloads, task texts) on the person's rows, and the rows of
  `PERSONAL_ROWS` keyed by their WeCom external_userid (callbacks, contact mirror, welcomes);
- event payloads elsewhere that quote one of the erased values; tag actors that name a person.

What stays, so GMV, retention, cohorts, repurchase and every other figure are unchanged: the
customer row as a tombstone (erased_at set, profile empty) and every fact — orders and items,
connections, memberships, referrals, deliveries, interactions, surveys, opt-outs, tags,
segment stays, lifecycle snapshots. Facts reference a customer by identifier
(siyu.identity.facts.FACT_REFERENCES); each erased reference becomes the pseudonym
("erased", customer id), carried by a tombstone source record `erased:<id>` that keeps resolving
to the same customer, so identity resolution and the warehouse attribute the facts as before.
A membership's number becomes `erased:<customer>:<membership>` (member numbers are unique)
with a tombstone record of its own.

Queued outbox rows of the person are cancelled, open staff tasks skipped, running SOP journeys
ended. Lookup keys of the erased values go on the erasure list (siyu.privacy.blocks), and the
deleted identifier ids on the warehouse's removal feed (erased_identifier).

Sealed values and lookup hashes (siyu.pii) are cleared with the rest of a row's personal
columns (PERSONAL_COLUMNS); identifier and source-record rows are deleted whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, text

from siyu import pii
from siyu.db import read_ts
from siyu.identity.facts import FACT_REFERENCES
from siyu.privacy import blocks

# What would still reach an erased customer is stopped (name in the summary, statement).
STOPPED = (
    ("outbox_cancelled",
     "UPDATE outbox SET status = 'cancelled', done_at = :now, error = 'cancelled: the customer "
     "was erased (PIPL)' WHERE brand_id = :b AND customer_id IN :ids "
     "AND status IN ('pending', 'claimed')"),
    ("tasks_skipped",
     "UPDATE staff_task SET status = 'skipped', done_at = :now WHERE brand_id = :b "
     "AND customer_id IN :ids AND status = 'open'"),
    ("journeys_ended",
     "UPDATE sop_enrollment SET status = 'done', note = 'customer erased' "
     "WHERE brand_id = :b AND customer_id IN :ids AND status = 'active'"),
)  # fmt: skip

# Personal columns cleared on the person's rows: (table, how its rows are found, {column:
# value}). "customer": the customer table by id (the person's id and ids merged into it);
# "customer_id": rows whose customer_id is one of those. NULL for nullable columns, an empty
# value where the column is required.
PERSONAL_COLUMNS: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "customer",
        "customer",
        {
            "name_hash": "NULL",
            "name_sealed": "NULL",
            "gender": "NULL",
            "birthday": "NULL",
            "city": "NULL",
        },
    ),  # fmt: skip
    ("outbox", "customer_id", {"payload": "'{}'", "result": "NULL"}),
    ("event", "customer_id", {"payload": "'{}'"}),
    (
        "staff_task",
        "customer_id",
        {"title": "'个人信息已删除 personal data erased'", "body": "NULL"},
    ),  # fmt: skip
)
# Rows that only hold the person's WeCom data, deleted by their external_userid: (table,
# column).
PERSONAL_ROWS: tuple[tuple[str, str], ...] = (
    ("wecom_callback_event", "external_userid"),
    ("wecom_external_contact", "external_userid"),
    ("wecom_contact_tag", "external_userid"),
    ("wecom_welcome", "external_userid"),
    ("wecom_sync_seen", "subject"),
)
# Identifier values erased from these tables' rows, keyed by (id_type, value).
BY_VALUE = ("identifier_override", "quarantined_identifier")
PSEUDONYM = "erased"  # the identifier type of tombstones; no import can name it
ACTORS_KEPT = ("rule", "sop:", "api:", "wecom", "import")  # systems, not people


class ErasureError(ValueError):
    """An erasure that cannot be done; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class Erased:
    customer_id: int
    erased_at: datetime
    counts: dict[str, int] = field(default_factory=dict)


def _in(sql: str, **lists: list[Any]) -> Any:
    stmt = text(sql)
    return stmt.bindparams(*(bindparam(k, expanding=True) for k in lists))


def erase(conn: Connection, *, brand_id: int, customer_id: int, reason: str, actor: str) -> Erased:
    """Erase the live customer `customer_id` (in the caller's transaction)."""
    reason = reason.strip()
    if not reason:
        raise ErasureError("reason", "say why (e.g. the person's request of 2025-11-01)")
    if len(reason) > 1000:
        raise ErasureError("reason", "at most 1,000 characters")
    now = datetime.now(UTC)
    b = {"b": brand_id, "now": now}
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    row = conn.execute(
        text(
            f"SELECT merged_into_id, erased_at FROM customer WHERE brand_id = :b AND id = :c{lock}"
        ),
        {**b, "c": customer_id},
    ).first()
    if row is None:
        raise ErasureError("customer", f"no customer {customer_id}")
    if row.merged_into_id is not None:
        raise ErasureError("customer", f"customer {customer_id} was merged into "
                           f"{row.merged_into_id}; erase that one")  # fmt: skip
    if row.erased_at is not None:
        raise ErasureError(
            "customer", f"customer {customer_id} was erased on {read_ts(row.erased_at):%Y-%m-%d}"
        )
    ids = [customer_id] + [
        int(i)
        for i in conn.execute(
            text("SELECT id FROM customer WHERE brand_id = :b AND merged_into_id = :c"),
            {**b, "c": customer_id},
        ).scalars()
    ]
    counts: dict[str, int] = {}
    records = conn.execute(
        _in(
            "SELECT id, record_key FROM source_record WHERE brand_id = :b AND customer_id IN :ids",
            ids=ids,
        ),  # fmt: skip
        {**b, "ids": ids},
    ).all()
    record_ids = [int(r[0]) for r in records]
    gone, shared = _identifiers(conn, brand_id, ids, record_ids)
    counts["records"] = len(record_ids)
    counts["identifiers"] = len(gone)

    pseudonym = str(customer_id)
    tomb_ident = _identifier(conn, brand_id, PSEUDONYM, pseudonym, customer_id, now)
    _tombstone(conn, brand_id, f"erased:{customer_id}", customer_id, {PSEUDONYM: tomb_ident}, now)
    if gone:
        counts.update(_pseudonymise_facts(conn, brand_id, customer_id, gone, tomb_ident, now))
    values = [(g.type, g.value) for g in gone]
    external = [g.value for g in gone if g.type == "external_userid"]
    gone_ids = [g.id for g in gone]

    blocks.block(
        conn, brand_id=brand_id, customer_id=customer_id, at=now,
        keys=values + [("record", str(r[1])) for r in records if not r[1].startswith("ref:")],
    )  # fmt: skip
    if gone_ids:
        conn.execute(
            text("INSERT INTO erased_identifier (identifier_id, brand_id, erased_at) "
                 "VALUES (:i, :b, :now)"),
            [{"i": i, **b} for i in gone_ids],
        )  # fmt: skip
        for table in BY_VALUE:
            for id_type, value in values:
                conn.execute(
                    text(
                        f"DELETE FROM {table} WHERE brand_id = :b AND id_type = :t AND value = :v"
                    ),
                    {**b, "t": id_type, "v": value},
                )
    if record_ids:
        conn.execute(_in("DELETE FROM record_identity WHERE record_id IN :r", r=record_ids),
                     {"r": record_ids})  # fmt: skip
        conn.execute(_in("DELETE FROM source_record WHERE id IN :r", r=record_ids),
                     {"r": record_ids})  # fmt: skip
    if gone_ids:
        conn.execute(_in("DELETE FROM identifier WHERE id IN :g", g=gone_ids), {"g": gone_ids})
    if shared:  # values others carry too: their customer is decided again by the next pass
        conn.execute(
            _in("UPDATE identifier SET customer_id = NULL, changed_at = :now "
                "WHERE id IN :s AND customer_id IN :ids", s=shared, ids=ids),
            {**b, "s": shared, "ids": ids},
        )  # fmt: skip
        conn.execute(
            _in("UPDATE source_record SET updated_at = :now WHERE id IN (SELECT record_id FROM "
                "record_identity WHERE identifier_id IN :s)", s=shared),
            {**b, "s": shared},
        )  # fmt: skip

    counts.update(_cancel_and_clear(conn, brand_id, ids, now))
    if external:
        counts.update(_wecom(conn, brand_id, customer_id, external))
    counts["events_quoting"] = _events_quoting(conn, brand_id, _quotable(pii.keyring(conn), gone))
    conn.execute(
        _in("UPDATE customer SET erased_at = :now, updated_at = :now WHERE id IN :ids", ids=ids),
        {**b, "ids": ids},
    )
    conn.execute(
        text("INSERT INTO customer_erasure (brand_id, customer_id, erased_at, actor, reason, "
             "counts) VALUES (:b, :c, :now, :actor, :reason, :counts)").bindparams(
            bindparam("counts", type_=_json_type())),
        {**b, "c": customer_id, "actor": actor, "reason": reason, "counts": counts},
    )  # fmt: skip
    return Erased(customer_id, now, counts)


def _json_type() -> Any:
    from sqlalchemy import JSON

    return JSON()


class Gone(NamedTuple):
    """An identifier the erasure deletes: `value` as stored (a lookup hash for phones and
    emails, siyu.pii), `sealed` the clear value sealed, where it is personal data."""

    id: int
    type: str
    value: str
    sealed: str | None


def _identifiers(
    conn: Connection, brand_id: int, ids: list[int], record_ids: list[int]
) -> tuple[list[Gone], list[int]]:
    """(identifiers to delete, identifiers to keep because records of
    other customers carry them too — e.g. a till's placeholder phone)."""
    candidates = set(
        conn.execute(
            _in("SELECT id FROM identifier WHERE brand_id = :b AND customer_id IN :ids", ids=ids),
            {"b": brand_id, "ids": ids},
        ).scalars()
    )
    if record_ids:
        candidates |= set(
            conn.execute(
                _in("SELECT identifier_id FROM record_identity WHERE record_id IN :r",
                    r=record_ids),
                {"r": record_ids},
            ).scalars()
        )  # fmt: skip
    if not candidates:
        return [], []
    others = set(
        conn.execute(
            _in("SELECT DISTINCT ri.identifier_id FROM record_identity ri "
                "JOIN source_record r ON r.id = ri.record_id "
                "WHERE ri.identifier_id IN :c AND r.id NOT IN :r", c=sorted(candidates),
                r=record_ids or [-1]),
            {"c": sorted(candidates), "r": record_ids or [-1]},
        ).scalars()
    )  # fmt: skip
    gone = conn.execute(
        _in("SELECT id, id_type, value, value_sealed FROM identifier WHERE id IN :g ORDER BY id",
            g=sorted(candidates - others) or [-1]),
        {"g": sorted(candidates - others) or [-1]},
    ).all()  # fmt: skip
    return [Gone(int(i), str(t), str(v), sealed) for i, t, v, sealed in gone], sorted(others)


def _identifier(
    conn: Connection, brand_id: int, id_type: str, value: str, customer_id: int, now: datetime
) -> int:
    return int(
        conn.execute(
            text("INSERT INTO identifier (brand_id, id_type, value, customer_id, status, "
                 "changed_at) VALUES (:b, :t, :v, :c, 'linked', :now) RETURNING id"),
            {"b": brand_id, "t": id_type, "v": value, "c": customer_id, "now": now},
        ).scalar_one()
    )  # fmt: skip


def _tombstone(
    conn: Connection, brand_id: int, key: str, customer_id: int, carries: dict[str, int],
    now: datetime,
) -> None:  # fmt: skip
    """A source record with no personal field that carries pseudonymous identifiers, so the
    identity pass keeps resolving them (and the facts naming them) to the erased customer."""
    record_id = conn.execute(
        text("INSERT INTO source_record (brand_id, record_key, source, customer_id, "
             "first_customer_id, created_at, updated_at) "
             "VALUES (:b, :k, 'erased', :c, :c, :now, :now) RETURNING id"),
        {"b": brand_id, "k": key, "c": customer_id, "now": now},
    ).scalar_one()  # fmt: skip
    for id_type, ident in carries.items():
        conn.execute(
            text("INSERT INTO record_identity (record_id, id_type, identifier_id) "
                 "VALUES (:r, :t, :i)"),
            {"r": record_id, "t": id_type, "i": ident},
        )  # fmt: skip


def _pseudonymise_facts(
    conn: Connection,
    brand_id: int,
    customer_id: int,
    gone: list[Gone],
    tomb_ident: int,
    now: datetime,
) -> dict[str, int]:
    """Every fact naming an erased value names the tombstone instead (row hashes cleared, change
    stamps moved, so the next import compares values and the warehouse re-reads the rows)."""
    counts: dict[str, int] = {}
    pseudonym = str(customer_id)
    per_type: dict[str, list[str]] = {}
    for _, t, v, _ in gone:
        per_type.setdefault(t, []).append(v)
    # (type = :t_n AND value IN :v_n) for each erased identifier type
    params: dict[str, Any] = {}
    for n, (t, vs) in enumerate(per_type.items()):
        params[f"t_{n}"], params[f"v_{n}"] = t, vs

    def matching(type_col: str, value_col: str) -> str:
        return " OR ".join(
            f"({type_col} = :t_{n} AND {value_col} IN :v_{n})" for n in range(len(per_type))
        )

    def bound(sql: str) -> Any:
        return text(sql).bindparams(
            *(bindparam(f"v_{n}", expanding=True) for n in range(len(per_type)))
        )

    # An invitee is attributed once (SPEC §9): of several referral rows naming the person as
    # invitee under different identifiers, the first touch stays, the later ones go.
    touches = list(
        conn.execute(
            bound(f"SELECT id FROM referral WHERE brand_id = :b AND "
                  f"({matching('invitee_id_type', 'invitee_id_value')}) ORDER BY created_at, id"),
            {"b": brand_id, **params},
        ).scalars()
    )  # fmt: skip
    if len(touches) > 1:
        conn.execute(_in("DELETE FROM referral WHERE id IN :r", r=touches[1:]),
                     {"r": touches[1:]})  # fmt: skip
        counts["referrals_deduplicated"] = len(touches) - 1
    for table, type_col, value_col in FACT_REFERENCES:
        if table == "membership":
            continue
        hashed = ", row_hash = NULL" if table != "referral" else ""
        done = conn.execute(
            bound(f"UPDATE {table} SET {type_col} = :pt, {value_col} = :pv, changed_at = :now"
                  f"{hashed} WHERE brand_id = :b AND ({matching(type_col, value_col)})"),
            {"b": brand_id, "pt": PSEUDONYM, "pv": pseudonym, "now": now, **params},
        ).rowcount  # fmt: skip
        name = table.strip('"')
        counts[name] = counts.get(name, 0) + int(done or 0)
    members = per_type.get("member_no", [])
    if members:
        rows = conn.execute(
            _in("SELECT id FROM membership WHERE brand_id = :b AND member_no IN :m ORDER BY id",
                m=members),
            {"b": brand_id, "m": members},
        ).scalars().all()  # fmt: skip
        for mid in rows:
            number = f"erased:{customer_id}:{mid}"
            conn.execute(
                text("UPDATE membership SET member_no = :n, changed_at = :now, row_hash = NULL "
                     "WHERE id = :m"),
                {"n": number, "now": now, "m": mid},
            )  # fmt: skip
            ident = _identifier(conn, brand_id, "member_no", number, customer_id, now)
            _tombstone(conn, brand_id, f"erased:{customer_id}:m{mid}", customer_id,
                       {PSEUDONYM: tomb_ident, "member_no": ident}, now)  # fmt: skip
        counts["membership"] = len(rows)
    return counts


def _cancel_and_clear(
    conn: Connection, brand_id: int, ids: list[int], now: datetime
) -> dict[str, int]:
    counts: dict[str, int] = {}
    p = {"b": brand_id, "ids": ids, "now": now}
    for name, sql in STOPPED:
        counts[name] = int(conn.execute(_in(sql, ids=ids), p).rowcount or 0)
    for table, by, columns in PERSONAL_COLUMNS:
        sets = ", ".join(f"{c} = {v}" for c, v in columns.items())
        key = "id" if by == "customer" else "customer_id"
        n = conn.execute(
            _in(f"UPDATE {table} SET {sets} WHERE brand_id = :b AND {key} IN :ids", ids=ids), p
        ).rowcount
        counts[f"{table}_cleared"] = int(n or 0)
    # Who tagged them stays when it was a system; a person's name (a console user, a terminal
    # user) does not.
    for table, col, stamp in (("customer_tag_history", "by", ""),
                              ("customer_tag", "added_by", ", changed_at = :now")):  # fmt: skip
        cond = " AND ".join(f"\"{col}\" NOT LIKE '{a}%'" for a in ACTORS_KEPT)
        conn.execute(
            _in(f'UPDATE {table} SET "{col}" = NULL{stamp} WHERE customer_id IN :ids '
                f'AND "{col}" IS NOT NULL AND {cond}', ids=ids),
            p,
        )  # fmt: skip
    return counts


def _wecom(
    conn: Connection, brand_id: int, customer_id: int, external: list[str]
) -> dict[str, int]:
    """The person's rows in WeCom's mirror tables (keyed by external_userid)."""
    counts: dict[str, int] = {}
    p = {"b": brand_id, "e": external}
    for table, col in PERSONAL_ROWS:
        counts[f"{table}_deleted"] = int(
            conn.execute(_in(f"DELETE FROM {table} WHERE brand_id = :b AND {col} IN :e", e=external),
                         p).rowcount or 0
        )  # fmt: skip
    conn.execute(
        _in("UPDATE wecom_transfer SET subject_id = :s WHERE brand_id = :b "
            "AND subject = 'customer' AND subject_id IN :e", e=external),
        {**p, "s": f"erased:{customer_id}"},
    )  # fmt: skip
    # A mass-message task lists its recipients; the person's entries become the tombstone.
    from siyu.wecom.models import WeComMassTask

    t = WeComMassTask.__table__
    like = " OR ".join(
        f"CAST(targets AS TEXT) LIKE :l{n} ESCAPE '\\'" for n in range(len(external))
    )
    rows = conn.execute(
        text(f"SELECT id, targets FROM wecom_mass_task WHERE {like}").columns(t.c.id, t.c.targets),
        {f"l{n}": f'%"{_like(e)}"%' for n, e in enumerate(external)},
    ).all()
    for task_id, targets in rows:
        fixed = [f"erased:{customer_id}" if x in external else x for x in targets]
        conn.execute(t.update().where(t.c.id == task_id).values(targets=fixed))
    counts["wecom_mass_task_rewritten"] = len(rows)
    return counts


def _quotable(ring: pii.Keyring, gone: list[Gone]) -> list[str]:
    """The erased values as another payload would quote them: clear (opened where sealed), and
    a mainland phone also without its +86."""
    out: list[str] = []
    for g in gone:
        value = pii.shown(ring, g.value, g.sealed) or g.value
        out.append(value)
        if g.type == "phone" and value.startswith("+86"):
            out.append(value[3:])
    return out


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _events_quoting(conn: Connection, brand_id: int, values: list[str]) -> int:
    """Events of other subjects (a WeCom callback, a group event) whose payload quotes one of
    the erased values lose their payload. Short values (under 4 characters) would match too
    much and are left alone."""
    values = [v for v in values if len(v) >= 4]
    if not values:
        return 0
    like = " OR ".join(f"CAST(payload AS TEXT) LIKE :l{n} ESCAPE '\\'" for n in range(len(values)))
    return int(
        conn.execute(
            text(f"UPDATE event SET payload = '{{}}' WHERE brand_id = :b AND ({like})"),
            {"b": brand_id, **{f"l{n}": f"%{_like(v)}%" for n, v in enumerate(values)}},
        ).rowcount
        or 0
    )
