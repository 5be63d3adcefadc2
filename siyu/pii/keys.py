"""The data key that protects personal data at rest (SPEC §12), and what is derived from it.

One 32-byte data key per database. It comes from the setting `SIYU_PII_KEY` (base64), or from
a key file (`pii_key_file`, default `<data_dir>/pii.key`) that Siyu writes once, with mode
0600, when a database is created or upgraded to schema 0014 and no key exists yet. From the
data key, HKDF-SHA256 derives three independent keys:

- the sealing key: AES-256-GCM with a random 96-bit nonce; a sealed value is
  `v1:` + base64url(nonce ‖ ciphertext ‖ tag), the `v1` naming the key it was sealed with so
  that a later key can be told apart (rotation is not implemented yet: docs/pii.md);
- the lookup key: HMAC-SHA256 over `id_type NUL value`, its first 128 bits in hex (32
  characters: short index keys, and a collision among a brand's values is out of reach) —
  deterministic, so stored identifiers still join and match by equality, and computable in
  DuckDB (`duckdb_macros`);
- a fingerprint, stored in the `pii_key` table, so that opening a database with the wrong key
  (or none) is a clear error instead of silently finding nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from siyu.config import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
LOOKUP_HEX = 32  # a lookup hash is HMAC-SHA256 truncated to 128 bits (RFC 2104 §5)
KEY_FILE = "pii.key"


class PiiError(Exception):
    """A problem with personal-data protection; the message says what to do."""


class PiiKeyMissing(PiiError):
    pass


class PiiKeyMismatch(PiiError):
    pass


class PiiTampered(PiiError):
    pass


def _derive(data_key: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"siyu/pii/{purpose}".encode()
    ).derive(data_key)


class Keyring:
    """Seal, open and hash personal data with one data key."""

    def __init__(self, data_key: bytes, key_id: int = 1) -> None:
        if len(data_key) != KEY_BYTES:
            raise PiiError(f"a PII data key is {KEY_BYTES} bytes, not {len(data_key)}")
        self.key_id = key_id
        self._aead = AESGCM(_derive(data_key, f"seal/v{key_id}"))
        self._lookup_key = _derive(data_key, "lookup/v1")
        self._lookup = hmac.new(self._lookup_key, digestmod=hashlib.sha256)
        self.fingerprint = _derive(data_key, "fingerprint/v1").hex()
        self._prefix = f"v{key_id}:"

    def seal(self, value: str) -> str:
        """The value encrypted (AES-256-GCM, fresh nonce): `v1:` + base64url."""
        nonce = os.urandom(NONCE_BYTES)
        box = nonce + self._aead.encrypt(nonce, value.encode(), None)
        return self._prefix + base64.urlsafe_b64encode(box).decode().rstrip("=")

    def open_(self, sealed: str) -> str:
        """The clear value of `sealed`; PiiTampered if it was altered or is not ours."""
        version, sep, body = sealed.partition(":")
        if not sep or not version.startswith("v") or not version[1:].isdigit():
            raise PiiTampered("not a sealed value (expected v1:…); it was altered or mis-stored")
        if version != self._prefix[:-1]:
            raise PiiKeyMismatch(
                f"value sealed with key {version}, but this database's key is v{self.key_id}"
            )
        try:
            box = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            if len(box) < NONCE_BYTES + 16:
                raise ValueError("too short")
            return self._aead.decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], None).decode()
        except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
            raise PiiTampered(
                "a sealed personal-data value failed its integrity check: it was altered in "
                "the database, or sealed with another key"
            ) from None

    def open_or_none(self, sealed: str | None) -> str | None:
        return None if sealed is None else self.open_(sealed)

    def lookup_hash(self, id_type: str, value: str) -> str:
        """HMAC-SHA256 of `id_type NUL value`, 128 bits as hex: the same input, the same hash."""
        h = self._lookup.copy()
        h.update(f"{id_type}\0{value}".encode())
        return h.hexdigest()[:LOOKUP_HEX]

    def duckdb_macros(self) -> str:
        """`siyu_lookup_hash(id_type, value)` as a DuckDB TEMP macro: HMAC-SHA256 spelled out
        with DuckDB's sha256, so an import hashes whole columns without leaving SQL. Only for
        in-memory connections (the key material is in the macro's text)."""
        block = self._lookup_key.ljust(64, b"\0")
        ipad = bytes(b ^ 0x36 for b in block).hex()
        opad = bytes(b ^ 0x5C for b in block).hex()
        return (
            "CREATE OR REPLACE TEMP MACRO siyu_lookup_hash(t, v) AS CASE WHEN v IS NULL "
            f"THEN NULL ELSE left(sha256(unhex('{opad}') || unhex(sha256(unhex('{ipad}') || "
            f"encode(t || chr(0) || v)))), {LOOKUP_HEX}) END;"
        )


@dataclass(frozen=True)
class KeySource:
    """Where a database's data key comes from: the setting, else the key file."""

    configured: str | None
    path: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> KeySource:
        path = settings.pii_key_file or settings.data_dir / KEY_FILE
        return cls(settings.pii_key, Path(path))

    def load(self) -> Keyring | None:
        """The keyring, or None when neither the setting nor the key file holds a key."""
        if self.configured:
            return Keyring(_decode(self.configured, "SIYU_PII_KEY"))
        try:
            raw = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return Keyring(_decode(raw, f"key file {self.path}"))

    def generate(self) -> Keyring:
        """Write a new key file (0600, never over an existing one) and return its keyring."""
        if self.configured:
            raise PiiError("SIYU_PII_KEY is set; Siyu does not generate a key then")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = os.urandom(KEY_BYTES)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first: use that one
            ring = self.load()
            assert ring is not None
            return ring
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.b64encode(key).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return Keyring(key)

    def missing(self, fingerprint: str | None) -> PiiKeyMissing:
        held = f" (key fingerprint {fingerprint[:12]}…)" if fingerprint else ""
        return PiiKeyMissing(
            f"this database holds personal data sealed with a key{held}, but no key was found: "
            f"SIYU_PII_KEY is not set and {self.path} does not exist. Restore the key file from "
            "your backup (or set SIYU_PII_KEY to its content); without it phone numbers, emails "
            "and names cannot be read, and Siyu will not create a new key over sealed data."
        )


def _decode(value: str, where: str) -> bytes:
    try:
        key = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PiiError(f"{where}: not base64; expected the base64 of {KEY_BYTES} bytes") from None
    if len(key) != KEY_BYTES:
        raise PiiError(f"{where}: holds {len(key)} bytes; a PII key is {KEY_BYTES} bytes")
    return key


# --- Which key belongs to which database ------------------------------------------------------

_sources: WeakKeyDictionary[Engine, KeySource] = WeakKeyDictionary()
_rings: WeakKeyDictionary[Engine, Keyring] = WeakKeyDictionary()
_lock = threading.Lock()


def attach(engine: Engine, settings: Settings) -> None:
    """Tell `engine` where its key is (siyu.db.make_engine does this for every engine)."""
    _sources[engine] = KeySource.from_settings(settings)


def source_of(bind: Engine | Connection) -> KeySource:
    engine = bind if isinstance(bind, Engine) else bind.engine
    found = _sources.get(engine)
    if found is None:
        raise PiiKeyMissing(
            "this database connection has no PII key source; open it with "
            "siyu.db.make_engine(settings)"
        )
    return found


def keyring(bind: Engine | Connection) -> Keyring:
    """The keyring of the database behind `bind`, loaded once per engine."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    ring = _rings.get(engine)
    if ring is not None:
        return ring
    source = source_of(engine)
    with _lock:
        ring = _rings.get(engine) or source.load()
        if ring is None:
            raise source.missing(None)
        _rings[engine] = ring
    return ring


def _stored_fingerprint(conn: Connection, key_id: int = 1) -> str | None:
    if not inspect(conn).has_table("pii_key"):
        return None
    row = conn.execute(
        text("SELECT fingerprint FROM pii_key WHERE key_id = :k"), {"k": key_id}
    ).first()
    return None if row is None else str(row[0])


def _holds_sealed_data(conn: Connection) -> bool:
    tables = set(inspect(conn).get_table_names())
    checks = [("identifier", "value_sealed"), ("customer", "name_sealed")]
    for table, column in checks:
        if table in tables and column in {c["name"] for c in inspect(conn).get_columns(table)}:
            found = conn.execute(
                text(f"SELECT 1 FROM {table} WHERE {column} IS NOT NULL LIMIT 1")
            ).first()
            if found:
                return True
    return False


def open_or_create(conn: Connection) -> Keyring:
    """The database's keyring; on a database without sealed data and without a key, a new
    key file is written first (`siyu init`, or the upgrade to schema 0014)."""
    source = source_of(conn)
    engine = conn.engine
    with _lock:
        ring = source.load()
        if ring is None:
            fingerprint = _stored_fingerprint(conn)
            if fingerprint is not None or _holds_sealed_data(conn):
                raise source.missing(fingerprint)
            ring = source.generate()
        _rings[engine] = ring
    return ring


def verify(conn: Connection) -> Keyring:
    """The key is there and is the one this database was sealed with; the first time, record
    its fingerprint. Run on every open (siyu.migrate.upgrade)."""
    ring = open_or_create(conn)
    stored = _stored_fingerprint(conn, ring.key_id)
    if stored is None:
        from siyu.pii.models import PiiKey

        conn.execute(
            PiiKey.__table__.insert().values(key_id=ring.key_id, fingerprint=ring.fingerprint)
        )
    elif stored != ring.fingerprint:
        raise PiiKeyMismatch(
            f"the PII key from {_where(source_of(conn))} is not the one this database was sealed "
            f"with (fingerprint {stored[:12]}…, this key {ring.fingerprint[:12]}…). Use the "
            "key file that belongs to this database; a different key cannot read its data."
        )
    return ring


def _where(source: KeySource) -> str:
    return "SIYU_PII_KEY" if source.configured else str(source.path)
