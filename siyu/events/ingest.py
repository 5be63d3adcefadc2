"""Recording integration events (SPEC §3 Event) in bulk: validate each in Python, resolve every
customer key of the batch in a few set-based queries, and write the batch with one
INSERT … ON CONFLICT DO NOTHING RETURNING — no ORM object per event (issue #7 benchmark,
bench/ingest.py).

`record_many` takes several requests' batches at once (the API's group commit): one
write for all of them — one transaction on SQLite, one INSERT statement on PostgreSQL (`_unit`)
— each request answered on its own, in its own order.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Engine, bindparam, text

from siyu import pii
from siyu.auth.principal import Principal
from siyu.customers import service as customers
from siyu.identity.normalize import InvalidIdentifier, parse_key
from siyu.raw_insert import sqlite_insert_count

MAX_EVENTS = 1_000
MAX_PAYLOAD = 10_000  # characters of the payload as compact JSON
TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# Types Siyu emits itself: an integration may not forge them.
RESERVED = ("segment.", "lifecycle.", "tag.", "message.", "wecom.", "identity.")
FIELDS = frozenset({"type", "idempotency_key", "customer", "occurred_at", "payload"})


class Rejected(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# A valid event as it will be stored: (idempotency key, type, customer key or None, occurred_at
# as stored — UTC text, payload as compact JSON text). A plain tuple: a batch makes a thousand.
Valid = tuple[str, str, str | None, str, str]
Checked = list[Valid | Rejected]  # one request's events, in order


_NEVER = datetime.max.replace(tzinfo=UTC)  # a `now` no instant is after


@lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    return ZoneInfo(name)


def _instant(value: Any, tz: str, now: datetime) -> str:
    """An ISO 8601 timestamp as the UTC text stored (siyu.db.sqlite_ts's form, also what
    PostgreSQL is sent); one without an offset is a local time of the brand."""
    if not isinstance(value, str):
        raise Rejected("occurred_at", "an ISO 8601 timestamp, e.g. 2025-11-01T09:00:00+08:00")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Rejected("occurred_at", f"{value!r} is not an ISO 8601 timestamp") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=_zone(tz))
    try:
        at = at.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00: before year 1 in UTC
        raise Rejected("occurred_at", f"{value} is out of range") from None
    if at > now:
        raise Rejected("occurred_at", f"{value} is in the future")
    return _utc_text(at)


# A timestamp in the shape integrations send — `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1–6
# digits, then nothing, `Z` or a `±HH:MM` offset — keeps its seconds and fraction in UTC: only the
# minute moves. Events of a stream share their minutes, so each minute is converted once
# (`_utc_minute`) and the rest of the text is appended: a few slices and a cache lookup, where
# `_instant` parses a datetime, converts it and formats it again.
_DIGITS = frozenset("0123456789")


def _fast_instant(value: str, tz: str) -> str | None:
    """`_instant(value, …)` without the future check, for the shape above; None for any other
    shape (or a minute `_utc_minute` declines), which `_instant` then parses whole."""
    n = len(value)
    if n < 19 or value[16] != ":" or value[13] != ":" or value[10] not in "T ":
        return None
    sec = value[17:19]
    if not _DIGITS.issuperset(sec) or sec > "59":
        return None
    rest = value[19:]
    zone = "Z" if rest[-1:] == "Z" else rest[-6:] if rest[-6:-5] in ("+", "-") else ""
    if zone not in ("", "Z") and not (_DIGITS.issuperset(zone[1:3] + zone[4:]) and zone[3] == ":"):
        return None
    frac = rest[: len(rest) - len(zone)]
    if frac:
        if not 2 <= len(frac) <= 7 or frac[0] != "." or not _DIGITS.issuperset(frac[1:]):
            return None
        frac = frac[1:].ljust(6, "0")
    else:
        frac = "000000"
    minute = _utc_minute(value[:16], zone, tz)
    return None if minute is None else f"{minute}:{sec}.{frac}"


@lru_cache(maxsize=16_384)
def _utc_minute(local: str, zone: str, tz: str) -> str | None:
    """The UTC minute (`YYYY-MM-DD HH:MM`) of minute `local` at offset `zone` (or the brand's
    zone); None unless every second of that minute has one whole-minute offset (a local mean
    time before 1901 has seconds in its offset; a transition inside the minute changes it)."""
    try:
        first = _instant(f"{local}:00{zone}", tz, _NEVER)
        last = _instant(f"{local}:59{zone}", tz, _NEVER)
    except Rejected:
        return None
    if first[16:] != ":00.000000" or last != f"{first[:16]}:59.000000":
        return None
    return first[:16]


def _utc_text(at: datetime) -> str:
    """A UTC instant (aware) in the form SQLAlchemy stores on SQLite (siyu.db.sqlite_ts):
    `2025-11-01 01:00:00.000000`. Cut from orjson's ISO form, which omits a zero fraction:
    ~0.3 µs where isoformat takes ~0.9 and strftime more."""
    iso = orjson.dumps(at).decode()  # "2025-11-01T01:00:00[.000120]+00:00" with the quotes
    return f"{iso[1:11]} {iso[12:20]}{iso[20:27] if iso[20] == '.' else '.000000'}"


@lru_cache(maxsize=4_096)
def _type_error(kind: str) -> str | None:
    """Why `kind` is not a type an integration may send, or None (types repeat: memoised)."""
    if len(kind) > 64 or not TYPE.match(kind):
        return "a dotted lower-case name of at most 64 characters, e.g. coupon.expiring"
    if kind.startswith(RESERVED):
        return f"{kind!r} is emitted by Siyu itself"
    return None


def _parse(item: Any, tz: str, now: datetime, now_text: str) -> Valid | Rejected:
    if type(item) is not dict:
        return Rejected("", "an event is an object")
    if not FIELDS.issuperset(item):
        return Rejected(sorted(set(item) - FIELDS)[0], "unknown field")
    kind = item.get("type")
    wrong = _type_error(kind if type(kind) is str else "")
    if wrong is not None:
        return Rejected("type", wrong)
    key = item.get("idempotency_key")
    if type(key) is not str or not 1 <= len(key) <= 200:
        return Rejected("idempotency_key", "a string of 1–200 characters")
    payload = item.get("payload", {})
    if type(payload) is not dict:
        return Rejected("payload", f"an object of at most {MAX_PAYLOAD:,} characters as JSON")
    try:
        as_json = orjson.dumps(payload).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return Rejected("payload", "holds a value JSON cannot carry exactly")
    if len(as_json) > MAX_PAYLOAD:
        return Rejected("payload", f"an object of at most {MAX_PAYLOAD:,} characters as JSON")
    customer = item.get("customer")
    value = item.get("occurred_at")
    # most timestamps are converted by their minute; any other shape is parsed whole
    at = _fast_instant(value, tz) if type(value) is str else None
    if at is not None:
        if at > now_text:  # the stored form sorts as the instants do
            return Rejected("occurred_at", f"{value} is in the future")
    else:
        try:
            at = _instant(value, tz, now)
        except Rejected as e:
            return e
    return key, kind, None if customer is None else str(customer), at, as_json  # type: ignore[return-value]


def check(items: list[Any], tz: str) -> Checked:
    """Validate one request's events (JSON-decoded) without the database: each becomes a
    `Valid` row or the `Rejected` that says why. Done as a request arrives, so that it overlaps
    the transaction in progress (siyu.events.api.GroupCommit)."""
    now = datetime.now(UTC)
    now_text = _utc_text(now)
    return [_parse(item, tz, now, now_text) for item in items]


class _Raw:
    """The transaction's DBAPI cursor: the hot path skips SQLAlchemy's compilation and row
    objects (as siyu.bulk does). A list travels as one JSON text parameter, expanded by the
    database (json_each / json_array_elements_text): orjson encodes it in C, where binding a
    Python list as an array (psycopg) costs microseconds per element."""

    def __init__(self, conn: Connection) -> None:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        self.pg = conn.dialect.name == "postgresql"
        self.cur = raw.cursor()

    def rows(self, sql: str, params: list[Any]) -> list[Any]:
        params = [orjson.dumps(p).decode() if isinstance(p, list) else p for p in params]
        self.cur.execute(sql, params)
        return list(self.cur.fetchall())

    # One unique-index lookup per value, driven from the values whatever the table statistics
    # say: a freshly imported table looks empty to PostgreSQL's planner, which then scans it
    # (a LATERAL subquery with LIMIT is always a nested loop).
    def customers(self, brand_id: int, ids: list[int]) -> list[Any]:
        """(id, merged_into_id) of those of `ids` that exist (PostgreSQL)."""
        sql = (
            "SELECT c.id, c.merged_into_id FROM json_array_elements_text(%s::json) AS x(v) "
            "CROSS JOIN LATERAL (SELECT id, merged_into_id FROM customer "
            "WHERE id = x.v::bigint AND brand_id = %s LIMIT 1) c"
        )
        return self.rows(sql, [ids, brand_id])

    def identifiers(self, brand_id: int, id_type: str, values: list[str]) -> list[Any]:
        """(value, customer_id) of those of `values` that are identifiers of type `id_type`
        (PostgreSQL)."""
        sql = (
            "SELECT i.value, i.customer_id FROM json_array_elements_text(%s::json) AS x(v) "
            "CROSS JOIN LATERAL (SELECT value, customer_id FROM identifier WHERE brand_id = %s "
            "AND id_type = %s AND value = x.v LIMIT 1) i"
        )
        return self.rows(sql, [values, brand_id, id_type])

    def lookup(self, brand_id: int, ids: list[int], per_type: dict[str, list[str]],
               keys: list[str]) -> tuple[list[Any], list[Any], list[str] | None]:  # fmt: skip
        """`customers(ids)`; (id_type, value, customer_id) of every type's `identifiers`; and on
        SQLite, which of the idempotency `keys` are stored already (`_insert`), else None.
        PostgreSQL answers a group that names customers both ways (or by several identifier
        types) in one statement: each query is a round trip, ~50 µs of the server's CPU on
        loopback TCP."""
        if not self.pg:
            return self._sqlite_lookup(brand_id, ids, per_type, keys)
        if len(per_type) + bool(ids) < 2:
            found = self.customers(brand_id, ids) if ids else []
            return found, [(t, *r) for t, values in per_type.items()
                           for r in self.identifiers(brand_id, t, values)], None  # fmt: skip
        pairs = [{"t": t, "v": v} for t, values in per_type.items() for v in values]
        sql = (
            "SELECT NULL, c.id::text, c.merged_into_id FROM json_array_elements_text(%s::json) "
            "AS x(v) CROSS JOIN LATERAL (SELECT id, merged_into_id FROM customer "
            "WHERE id = x.v::bigint AND brand_id = %s LIMIT 1) c "
            "UNION ALL SELECT x.t, i.value, i.customer_id FROM json_to_recordset(%s::json) "
            "AS x(t text, v text) CROSS JOIN LATERAL (SELECT value, customer_id FROM identifier "
            "WHERE brand_id = %s AND id_type = x.t AND value = x.v LIMIT 1) i"
        )
        rows = self.rows(sql, [ids, brand_id, pairs, brand_id])
        return [r[1:] for r in rows if r[0] is None], [r for r in rows if r[0] is not None], None

    def _sqlite_lookup(self, brand_id: int, ids: list[int], per_type: dict[str, list[str]],
                       keys: list[str]) -> tuple[list[Any], list[Any], list[str]]:  # fmt: skip
        """`lookup` on SQLite: one statement answering one row, each part one JSON array
        (`json_group_array`). CPython's sqlite3 gives the GIL up around every step and every
        statement, and from the writer's thread taking it back waits for the event loop's,
        which is validating the next requests (bench/ingest.py)."""

        def dumps(values: list[Any]) -> str:  # text: a blob would be read as JSONB
            return orjson.dumps(values).decode()

        parts = [
            "(SELECT json_group_array(json_array(c.id, c.merged_into_id)) FROM json_each(?) x "
            "CROSS JOIN customer c WHERE c.id = x.value AND c.brand_id = ?)",
            "(SELECT json_group_array(e.idempotency_key) FROM json_each(?) x CROSS JOIN event e "
            "WHERE e.brand_id = ? AND e.idempotency_key = x.value)",
        ]
        params: list[Any] = [dumps(ids), brand_id, dumps(keys), brand_id]
        for id_type, values in per_type.items():
            parts.append(
                "(SELECT json_group_array(json_array(i.value, i.customer_id)) FROM json_each(?) "
                "x CROSS JOIN identifier i WHERE i.brand_id = ? AND i.id_type = ? "
                "AND i.value = x.value)"
            )
            params += [dumps(values), brand_id, id_type]
        self.cur.execute(f"SELECT {', '.join(parts)}", params)
        found, stored, *identified = map(orjson.loads, self.cur.fetchone())
        return found, [(t, *r) for t, rows in zip(per_type, identified, strict=True)
                       for r in rows], stored  # fmt: skip


@lru_cache(maxsize=65_536)
def _classify(key: str, ring: pii.Keyring) -> int | tuple[str, str, str] | str:
    """A customer key as an id, as `(type, normalised value, value as stored)` — an HMAC for a
    phone or an email (siyu.pii, ~2 µs) — or why it is neither. Keys repeat: memoised, per
    keyring."""
    if key.isascii() and key.isdigit():
        return int(key) if len(key) <= 18 else f"no customer {key}"
    try:
        id_type, value = parse_key(key)
    except InvalidIdentifier as e:
        return str(e)
    return id_type, value, pii.stored_value(ring, id_type, value)


def _resolve(
    raw: _Raw, ring: pii.Keyring, brand_id: int, keys: set[str], idempotency: list[str]
) -> tuple[dict[str, int], dict[str, str], list[str] | None]:
    """Customer keys (an id or `type:value`) → live customer id, set-based; why the others
    name no customer, worded as `siyu.customers.service.resolve_key_or_raise` words it; and
    on SQLite, which `idempotency` keys are stored already (read with them: `_Raw.lookup`).
    Phones and emails are looked up by their lookup hash, as the store holds them (siyu.pii)."""
    found: dict[str, int] = {}
    why: dict[str, str] = {}
    by_id: dict[str, int] = {}
    by_value: dict[str, tuple[str, str, str]] = {}
    for key in keys:
        kind = _classify(key, ring)
        if type(kind) is int:
            by_id[key] = kind
        elif type(kind) is str:
            why[key] = kind
        else:
            by_value[key] = kind  # type: ignore[assignment]
    per_type: dict[str, set[str]] = defaultdict(set)  # type → values as stored
    for id_type, _, stored in by_value.values():
        per_type[id_type].add(stored)
    rows, identified, already = raw.lookup(
        brand_id, list(set(by_id.values())),
        {t: list(values) for t, values in per_type.items()}, idempotency,
    )  # fmt: skip
    live = {int(r[0]): int(r[1] or r[0]) for r in rows}
    for key, cid in by_id.items():
        if cid in live:
            found[key] = live[cid]
        else:
            why[key] = f"no customer {cid}"
    known = {(t, stored): cid for t, stored, cid in identified}
    for key, (id_type, value, stored) in by_value.items():
        cid = known.get((id_type, stored), key)  # the key itself: not found
        if cid is None:
            why[key] = (
                f"{id_type}:{value} is quarantined (shared by too many records) and names "
                "no customer; see `siyu identity quarantined`"
            )
        elif cid is key:
            why[key] = f"no customer has {id_type}:{value}"
        else:
            found[key] = int(cid)
    return found, why, already


def _outside(conn: Connection, principal: Principal, ids: set[int]) -> set[int]:
    """Those of `ids` the principal may not read (an empty set for a whole-brand role)."""
    scope = customers.readable_customer_ids(principal)
    if scope is None or not ids:
        return set()
    sql, params = scope
    readable = conn.execute(
        text(f"SELECT DISTINCT r.customer_id FROM ({sql}) r WHERE r.customer_id IN :ids")
        .bindparams(bindparam("ids", expanding=True)),
        {**params, "ids": sorted(ids)},
    ).scalars()  # fmt: skip
    return ids - {int(x) for x in readable}


TABLE = "event"
COLUMNS = ("brand_id", "type", "idempotency_key", "customer_id", "occurred_at", "recorded_at",
           "payload")  # fmt: skip
PG_INSERT = (
    f"INSERT INTO event ({', '.join(COLUMNS)}) SELECT %s, t.t, t.k, t.c, "
    "(t.a || '+00')::timestamptz, %s, t.p FROM json_to_recordset(%s::json) AS t(t text, k text, "
    "c bigint, a text, p json) ON CONFLICT DO NOTHING RETURNING idempotency_key"
)


def _insert(raw: _Raw, brand_id: int, rows: list[tuple[Valid, int | None]], now: datetime,
            stored: list[str] | None) -> set[str]:  # fmt: skip
    """Insert the (event, customer id) rows, skipping idempotency keys already stored (or twice
    in `rows`); the keys inserted. PostgreSQL: one statement over the rows as one JSON
    document (each payload embedded as the JSON text validated, not encoded again), RETURNING
    the keys. SQLite: multi-row VALUES (its JSON functions would parse every row's object once
    per column), returning only a count — RETURNING would step once per row — so the keys
    created are those not `stored` already, as read under the same write lock (`_unit`)."""
    if not rows:
        return set()
    if raw.pg:
        fragment = orjson.Fragment
        # in key order: two writers (siyu.events.api.GroupCommit) inserting the same keys in
        # different orders could each wait for the other's. The sort is stable: of a key sent
        # twice, the first is still the one stored, as `answer` says.
        doc = orjson.dumps(
            [{"t": v[1], "k": v[0], "c": c, "a": v[3], "p": fragment(v[4])}
             for v, c in sorted(rows, key=lambda row: row[0][0])]
        ).decode()  # fmt: skip
        raw.cur.execute(PG_INSERT, [brand_id, now, doc])
        return {k for (k,) in raw.cur.fetchall()}
    assert stored is not None
    new = {v[0] for v, _ in rows}.difference(stored)
    recorded = _utc_text(now)
    values = [(brand_id, v[1], v[0], c, v[3], recorded, v[4]) for v, c in rows]
    inserted = sqlite_insert_count(raw.cur.connection, TABLE, COLUMNS, values)
    if inserted != len(new):  # cannot happen under the write lock; never answer wrong
        raise RuntimeError(f"{inserted} events inserted where {len(new)} keys were new")
    return new


@contextmanager
def _unit(engine: Engine) -> Iterator[Connection]:
    """The connection a group is recorded on. SQLite: one transaction (the insert may take
    several statements, and one commit is most of the cost). PostgreSQL: autocommit, which
    saves the BEGIN and COMMIT round trips (a one-event group makes two statements instead of
    four): the group's only write is one INSERT statement, atomic by itself, and at READ
    COMMITTED (the server's default, which Siyu keeps) every statement reads its own snapshot
    inside a transaction too, so the lookups before it see exactly what they would there.

    On SQLite the transaction takes the write lock before its first read (BEGIN IMMEDIATE;
    Python's sqlite3 would begin only at the insert): the keys `_Raw.lookup` reads as stored
    are then exactly those `_insert` skips, as no other writer can commit in between."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            with conn.begin():
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn


def record_many(engine: Engine, brand_id: int, batches: list[tuple[Principal, Checked]]
                ) -> set[str]:  # fmt: skip
    """Store each valid event of every batch (as `check` left them) once, in one write (`_unit`):
    the idempotency keys created. An event whose customer is unknown, or outside its caller's
    scope, becomes a Rejected in its batch. Each batch's answer is then `answer`'s — built
    by the caller, so that a writer thread does only the writing."""
    now = datetime.now(UTC)
    valid = [v for _, checked in batches for v in checked if type(v) is tuple]
    keys = {v[2] for v in valid if v[2] is not None}
    with _unit(engine) as conn:
        raw = _Raw(conn)
        # SQLite reads which idempotency keys are stored with the customers (`_insert`)
        idempotency = [] if raw.pg else list({v[0] for v in valid})
        found, why, stored = _resolve(raw, pii.keyring(conn), brand_id, keys, idempotency)
        rows: list[tuple[Valid, int | None]] = []
        for who, checked in batches:
            hidden: set[int] = set()  # customers outside the caller's scope
            if customers.readable_customer_ids(who) is not None:  # not the whole brand
                named = {found[v[2]] for v in checked if type(v) is tuple and v[2] in found}
                hidden = _outside(conn, who, named)
            for n, v in enumerate(checked):
                if type(v) is not tuple:
                    continue
                cid = None
                if v[2] is not None:
                    cid = found.get(v[2])
                    if cid is None or cid in hidden:
                        # outside the scope reads exactly like a customer that does not exist
                        checked[n] = Rejected("customer", why.get(v[2]) or f"no customer {v[2]}")
                        continue
                rows.append((v, cid))
        return _insert(raw, brand_id, rows, now, stored)


def answer(checked: Checked, created: set[str]) -> dict[str, Any]:
    """One request's answer after `record_many`: created / duplicate / rejected per item, in
    order. Takes the keys it answers `created` out of `created`: a key sent twice (in one
    request, or in two of one group, answered in order) is created once, then a duplicate."""
    out: list[dict[str, Any]] = []
    rejected = duplicate = 0
    for n, v in enumerate(checked):
        if type(v) is not tuple:
            field = f"events[{n}].{v.field}" if v.field else f"events[{n}]"
            out.append({"status": "rejected", "field": field, "message": str(v)})
            rejected += 1
        elif v[0] in created:
            created.discard(v[0])
            out.append({"status": "created", "idempotency_key": v[0]})
        else:
            out.append({"status": "duplicate", "idempotency_key": v[0]})
            duplicate += 1
    return {"created": len(out) - rejected - duplicate, "duplicate": duplicate,
            "rejected": rejected, "results": out}  # fmt: skip
