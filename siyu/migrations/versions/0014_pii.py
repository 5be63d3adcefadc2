"""Personal data at rest: phones and emails hashed for matching and sealed for display, names
sealed (siyu.pii, SPEC §12)

Converts a database's clear values in place, in batches, with the database's PII key (loaded,
or written once as `<data_dir>/pii.key` when there is none — nothing was sealed before this
revision, so a new key loses nothing):

- `identifier`: phone/email `value` → lookup hash, the value sealed into `value_sealed`, a
  phone's last four digits into `tail_hash`; the same hash in `identifier_override`,
  `quarantined_identifier` and every fact's `id_value` (orders, connections, deliveries,
  interactions, surveys, opt-outs, both sides of referrals);
- facts whose natural key (`row_key`, an md5) was computed over the clear value get the key the
  same writer computes now (the import's, connections.service's, or the 退订 reply's form), so a
  re-import matches them; `row_hash` (a hash over clear values) is cleared, the next import
  compares those rows value by value and stores a new one;
- `source_record` / `customer` names → `name_hash` + `name_sealed`; reference records named
  `ref:phone:+86…` are renamed to the hash; WeCom's last-seen contact name → its hash;
- `referral.completed` event keys that hold an invitee phone/email; SMS outbox payloads (the
  phone becomes its hash plus `phone_sealed`); phone numbers in SMS errors and in audit-log
  search queries are masked.

Downgrade is refused: going back would write personal data in clear again; restore the backup
taken before the upgrade instead.

Revision ID: 0014_pii
Revises: 0010_delivery
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Connection, text

import siyu.db
from siyu import pii
from siyu.bulk import temp_table

revision: str = "0014_pii"
down_revision: str | None = "0010_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
PII = ("phone", "email")
IN_PII = "('phone', 'email')"


def upgrade() -> None:
    op.create_table(
        "pii_key",
        sa.Column("key_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", siyu.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_pii_key")),
    )
    op.add_column("identifier", sa.Column("value_sealed", sa.Text(), nullable=True))
    op.add_column("identifier", sa.Column("tail_hash", sa.String(length=64), nullable=True))
    for table in ("source_record", "customer"):
        op.add_column(table, sa.Column("name_hash", sa.String(length=64), nullable=True))
        op.add_column(table, sa.Column("name_sealed", sa.Text(), nullable=True))
    op.add_column(
        "wecom_external_contact", sa.Column("name_hash", sa.String(length=64), nullable=True)
    )

    bind = op.get_bind()
    ring = pii.open_or_create(bind)
    _identifiers(bind, ring)
    _keyed_values(bind, ring)
    _facts(bind, ring)
    _referrals(bind, ring)
    _names(bind, ring)
    _events(bind, ring)
    _outbox(bind, ring)
    _audit(bind)

    # Native DROP COLUMN on both engines (SQLite ≥ 3.35): no table copy, no foreign-key dance.
    for table in ("source_record", "customer", "wecom_external_contact"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN name")
    op.create_index("ix_identifier_brand_id_tail_hash", "identifier", ["brand_id", "tail_hash"])
    op.create_index("ix_customer_brand_id_name_hash", "customer", ["brand_id", "name_hash"])
    bind.execute(
        text("INSERT INTO pii_key (key_id, fingerprint, created_at) VALUES (:k, :f, :now)"),
        {"k": ring.key_id, "f": ring.fingerprint, "now": _now(bind)},
    )


def downgrade() -> None:
    raise NotImplementedError(
        "0014_pii cannot be downgraded: it would write phone numbers, emails and names in "
        "clear again. Restore the backup taken before the upgrade instead."
    )


# --- helpers ------------------------------------------------------------------------------


def _now(bind: Connection) -> Any:
    now = datetime.now(UTC)
    return now if bind.dialect.name == "postgresql" else siyu.db.sqlite_ts(now)


def _batches(bind: Connection, sql: str, params: dict[str, Any] | None = None) -> Iterator[list]:
    """Rows of `sql` (which selects `id` first, filters `id > :last` and orders by id), a
    batch at a time, so memory stays flat on a big table."""
    last = -1
    while True:
        rows = bind.execute(text(sql), {**(params or {}), "last": last, "n": BATCH}).all()
        if not rows:
            return
        last = rows[-1][0]
        yield [tuple(r) for r in rows]


def _update_by_id(
    bind: Connection, table: str, columns: Sequence[tuple[str, str]], rows: list[tuple]
) -> None:
    """UPDATE table SET columns FROM a temp table of (id, *columns) rows."""
    if not rows:
        return
    temp_table(bind, "pii_convert", [("id", "BIGINT"), *columns], rows)
    sets = ", ".join(f"{c} = pii_convert.{c}" for c, _ in columns)
    bind.execute(
        text(f'UPDATE "{table}" SET {sets} FROM pii_convert WHERE pii_convert.id = "{table}".id')
    )


def _md5(parts: Sequence[object]) -> str:
    return hashlib.md5("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (
        value.replace(tzinfo=None)
        if value.tzinfo is None
        else value.astimezone(UTC).replace(tzinfo=None)
    )


def _duck_ts(at: datetime) -> str:
    """CAST(TIMESTAMP AS VARCHAR) as DuckDB writes it (the import keyed facts with it)."""
    base = at.strftime("%Y-%m-%d %H:%M:%S")
    return base + ("." + f"{at.microsecond:06d}".rstrip("0") if at.microsecond else "")


def _iso_us(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


# --- identifiers ----------------------------------------------------------------------------


def _identifiers(bind: Connection, ring: pii.Keyring) -> None:
    for rows in _batches(
        bind,
        "SELECT id, id_type, value FROM identifier WHERE id > :last "
        f"AND id_type IN {IN_PII} ORDER BY id LIMIT :n",
    ):
        out = [
            (
                i,
                ring.lookup_hash(t, v),
                ring.seal(v),
                pii.tail_hash(ring, v) if t == "phone" else None,
            )
            for i, t, v in rows
        ]
        _update_by_id(
            bind,
            "identifier",
            [("value", "VARCHAR(64)"), ("value_sealed", "TEXT"), ("tail_hash", "VARCHAR(64)")],
            out,
        )


def _keyed_values(bind: Connection, ring: pii.Keyring) -> None:
    """Overrides and quarantine rows: small tables keyed by the value itself."""
    for table in ("identifier_override", "quarantined_identifier"):
        rows = bind.execute(
            text(f"SELECT DISTINCT brand_id, id_type, value FROM {table} WHERE id_type IN {IN_PII}")
        ).all()
        for b, t, v in rows:
            bind.execute(
                text(
                    f"UPDATE {table} SET value = :h WHERE brand_id = :b AND id_type = :t "
                    "AND value = :v"
                ),
                {"h": ring.lookup_hash(t, v), "b": b, "t": t, "v": v},
            )


# --- facts ----------------------------------------------------------------------------------

# Per fact table: extra columns read, and the natural-key forms its writers computed from
# (row, value) — the import's (siyu.imports.loaders._row_key) first.
KeyForm = Callable[[dict[str, Any], str], str]


def _import_connection(r: dict[str, Any], v: str) -> str:
    return _md5([r["kind"], r["id_type"], v, r["staff_code"], r["group_code"], _iso_us(r["at"])])


def _service_connection(r: dict[str, Any], v: str) -> str:
    return _md5([r["kind"], r["id_type"], v, r["staff_id"], r["group_id"], _iso_us(r["at"])])


FACTS: dict[str, tuple[str, str, list[KeyForm]]] = {
    "order": ("", "", []),
    "connection": (
        ", x.kind, x.staff_id, x.group_id, s.code AS staff_code, g.code AS group_code",
        " LEFT JOIN staff s ON s.id = x.staff_id LEFT JOIN chat_group g ON g.id = x.group_id",
        [_import_connection, _service_connection],
    ),
    "delivery": (
        ", x.channel, x.status",
        "",
        [lambda r, v: _md5([r["id_type"], v, r["channel"], _duck_ts(r["at"]), r["status"]])],
    ),
    "interaction": (
        ", x.kind",
        "",
        [lambda r, v: _md5([r["id_type"], v, r["kind"], _duck_ts(r["at"])])],
    ),
    "survey_response": (
        ", x.score",
        "",
        [lambda r, v: _md5([r["id_type"], v, _duck_ts(r["at"]), r["score"]])],
    ),
    "opt_out": (
        ", x.channel",
        "",
        [
            lambda r, v: _md5([r["id_type"], v, _duck_ts(r["at"])]),
            lambda r, v: hashlib.md5(
                f"reply|{r['channel']}|{r['id_type']}|{v}".encode()
            ).hexdigest(),
        ],
    ),
}


def _facts(bind: Connection, ring: pii.Keyring) -> None:
    for table, (extra, joins, forms) in FACTS.items():
        keyed = bool(forms)
        cols = "x.id, x.id_type, x.id_value" + (", x.row_key, x.created_at" if keyed else "")
        sql = (
            f'SELECT {cols}{extra} FROM "{table}" x{joins} WHERE x.id > :last '
            f"AND x.id_type IN {IN_PII} ORDER BY x.id LIMIT :n"
        )
        names = ["id", "id_type", "id_value"] + (["row_key", "at"] if keyed else [])
        names += [c.split(" AS ")[-1].split(".")[-1] for c in extra.split(", ")[1:]]
        for rows in _batches(bind, sql):
            out = []
            for row in rows:
                r = dict(zip(names, row, strict=True))
                clear, hashed = r["id_value"], ring.lookup_hash(r["id_type"], r["id_value"])
                if not keyed:
                    out.append((r["id"], hashed))
                    continue
                r["at"] = _utc(r["at"])
                key = r["row_key"]
                for form in forms:
                    if form(r, clear) == key:
                        key = form(r, hashed)
                        break
                out.append((r["id"], hashed, key))
            columns = [("id_value", "VARCHAR(64)")] + (
                [("row_key", "VARCHAR(32)")] if keyed else []
            )
            _update_by_id(bind, table, columns, out)
        # The stored row hashes were computed over clear values.
        bind.execute(text(f'UPDATE "{table}" SET row_hash = NULL WHERE id_type IN {IN_PII}'))


def _referrals(bind: Connection, ring: pii.Keyring) -> None:
    for side in ("referrer", "invitee"):
        for rows in _batches(
            bind,
            f"SELECT id, {side}_id_type, {side}_id_value FROM referral WHERE id > :last "
            f"AND {side}_id_type IN {IN_PII} ORDER BY id LIMIT :n",
        ):
            out = [(i, ring.lookup_hash(t, v)) for i, t, v in rows]
            _update_by_id(bind, "referral", [(f"{side}_id_value", "VARCHAR(64)")], out)


# --- names and record keys ------------------------------------------------------------------


def _names(bind: Connection, ring: pii.Keyring) -> None:
    for rows in _batches(
        bind,
        "SELECT id, name, record_key FROM source_record WHERE id > :last AND (name IS NOT NULL "
        "OR record_key LIKE 'ref:phone:%' OR record_key LIKE 'ref:email:%') ORDER BY id LIMIT :n",
    ):
        out = []
        for i, name, key in rows:
            kind, _, value = key[4:].partition(":") if key.startswith("ref:") else ("", "", "")
            if kind in PII:
                key = f"ref:{kind}:{ring.lookup_hash(kind, value)}"
            out.append((i, pii.name_hash(ring, name), _seal(ring, name), key))
        _update_by_id(
            bind,
            "source_record",
            [("name_hash", "VARCHAR(64)"), ("name_sealed", "TEXT"), ("record_key", "VARCHAR(200)")],
            out,
        )
    bind.execute(text("UPDATE source_record SET row_hash = NULL"))  # hashed clear names
    for rows in _batches(
        bind,
        "SELECT id, name FROM customer WHERE id > :last AND name IS NOT NULL ORDER BY id LIMIT :n",
    ):
        out = [(i, pii.name_hash(ring, n), _seal(ring, n)) for i, n in rows]
        _update_by_id(
            bind, "customer", [("name_hash", "VARCHAR(64)"), ("name_sealed", "TEXT")], out
        )
    contacts = bind.execute(
        text(
            "SELECT brand_id, external_userid, name FROM wecom_external_contact "
            "WHERE name IS NOT NULL"
        )  # fmt: skip
    ).all()
    for b, ext, name in contacts:
        bind.execute(
            text(
                "UPDATE wecom_external_contact SET name_hash = :h WHERE brand_id = :b "
                "AND external_userid = :e"
            ),  # fmt: skip
            {"h": pii.name_hash(ring, name), "b": b, "e": ext},
        )


def _seal(ring: pii.Keyring, value: str | None) -> str | None:
    return None if value is None else ring.seal(value)


# --- events, outbox, audit ------------------------------------------------------------------


def _events(bind: Connection, ring: pii.Keyring) -> None:
    prefix = "referral.completed:"
    for rows in _batches(
        bind,
        "SELECT id, idempotency_key FROM event WHERE id > :last AND type = 'referral.completed' "
        "AND (idempotency_key LIKE 'referral.completed:phone:%' "
        "OR idempotency_key LIKE 'referral.completed:email:%') ORDER BY id LIMIT :n",
    ):
        out = []
        for i, key in rows:
            kind, _, value = key[len(prefix) :].partition(":")
            out.append((i, f"{prefix}{kind}:{ring.lookup_hash(kind, value)}"))
        _update_by_id(bind, "event", [("idempotency_key", "VARCHAR(200)")], out)


def _outbox(bind: Connection, ring: pii.Keyring) -> None:
    pg = bind.dialect.name == "postgresql"
    payload = "CAST(:p AS JSON)" if pg else ":p"
    for rows in _batches(
        bind,
        "SELECT id, payload, error FROM outbox WHERE id > :last AND adapter = 'sms' "
        "ORDER BY id LIMIT :n",
    ):
        for i, body, error in rows:
            data = json.loads(body) if isinstance(body, str) else dict(body or {})
            phone = data.get("phone")
            if isinstance(phone, str) and phone and "phone_sealed" not in data:
                data["phone"] = ring.lookup_hash("phone", phone)
                data["phone_sealed"] = ring.seal(phone)
            bind.execute(
                text(f"UPDATE outbox SET payload = {payload}, error = :e WHERE id = :i"),
                {
                    "p": json.dumps(data, ensure_ascii=False),
                    "e": pii.redact(error) if error else error,
                    "i": i,
                },
            )


def _audit(bind: Connection) -> None:
    for rows in _batches(
        bind,
        "SELECT id, detail FROM audit_log WHERE id > :last AND detail IS NOT NULL "
        "ORDER BY id LIMIT :n",
    ):
        for i, detail in rows:
            masked = pii.redact(detail)
            if masked != detail:
                bind.execute(
                    text("UPDATE audit_log SET detail = :d WHERE id = :i"), {"d": masked, "i": i}
                )
