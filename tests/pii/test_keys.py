"""The PII key (siyu.pii.keys): sealing, hashing, where the key lives and what happens without it."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from siyu import pii
from siyu.cli import app
from siyu.config import Settings
from siyu.runtime import open_brand
from tests.factories import run_import, write_dir

RECORDS = "records.csv", "record_id,source,phone,name\nA,pos,13800138000,王小明\n"


def ring() -> pii.Keyring:
    return pii.Keyring(os.urandom(32))


def test_seal_opens_to_the_value_and_never_repeats() -> None:
    r = ring()
    a, b = r.seal("+8613800138000"), r.seal("+8613800138000")
    assert a != b and a.startswith("v1:") and "13800138000" not in a  # fresh nonce each time
    assert r.open_(a) == r.open_(b) == "+8613800138000"
    assert r.open_(r.seal("王小明")) == "王小明"


def test_tampered_or_foreign_ciphertext_is_refused() -> None:
    r = ring()
    sealed = r.seal("+8613800138000")
    body = sealed[3:]
    flipped = sealed[:3] + body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(pii.PiiTampered, match="failed its integrity check"):
        r.open_(flipped)
    with pytest.raises(pii.PiiTampered, match="failed its integrity check"):
        ring().open_(sealed)  # another key
    with pytest.raises(pii.PiiTampered, match="not a sealed value"):
        r.open_("+8613800138000")
    with pytest.raises(pii.PiiKeyMismatch, match="key v2"):
        r.open_("v2:" + body)


def test_lookup_hash_is_deterministic_keyed_and_the_same_in_duckdb() -> None:
    r = ring()
    h = r.lookup_hash("phone", "+8613800138000")
    assert h == r.lookup_hash("phone", "+8613800138000") and len(h) == 32
    assert h != r.lookup_hash("email", "+8613800138000")  # the type is part of the input
    assert h != ring().lookup_hash("phone", "+8613800138000")  # and the key
    con = duckdb.connect()
    con.execute(r.duckdb_macros())
    got = con.execute(
        "SELECT siyu_lookup_hash('phone', '+8613800138000'), siyu_lookup_hash('name', '王小明'), "
        "siyu_lookup_hash('phone', NULL)"
    ).fetchone()
    assert got == (h, r.lookup_hash("name", "王小明"), None)


def test_the_key_file_is_written_once_with_mode_0600(settings: Settings) -> None:
    engine, _ = open_brand(settings)
    engine.dispose()
    key_file = settings.data_dir / "pii.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_bytes()
    assert len(base64.b64decode(first.strip())) == 32
    engine, _ = open_brand(settings)  # a second open reads it, never rewrites it
    engine.dispose()
    assert key_file.read_bytes() == first


def test_a_configured_key_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(data_dir=tmp_path / "data", pii_key=key)
    run_import(settings, write_dir(tmp_path / "in", dict([RECORDS])))
    assert not (settings.data_dir / "pii.key").exists()
    engine, _ = open_brand(settings)
    assert pii.keyring(engine).fingerprint == pii.Keyring(base64.b64decode(key)).fingerprint
    engine.dispose()
    with pytest.raises(pii.PiiError, match="SIYU_PII_KEY: holds 3 bytes"):
        open_brand(Settings(data_dir=tmp_path / "data", pii_key="YWJj"))


def test_missing_key_with_sealed_data_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    run_import(settings, write_dir(tmp_path / "in", dict([RECORDS])))
    key_file = settings.data_dir / "pii.key"
    saved = key_file.read_bytes()
    key_file.unlink()
    with pytest.raises(pii.PiiKeyMissing, match="no key was found") as e:
        open_brand(settings)
    assert "Restore the key file from your backup" in str(e.value)
    assert not key_file.exists()  # never replaced by a new key over sealed data
    env = {"SIYU_DATABASE_URL": settings.database_url} if settings.database_url else {}
    shown = CliRunner().invoke(
        app, ["--data-dir", str(settings.data_dir), "customer", "show", "1"], env=env
    )
    assert shown.exit_code == 2 and "no key was found" in shown.output
    assert "Traceback" not in shown.output
    # Another key is refused too, not silently used.
    key_file.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    with pytest.raises(pii.PiiKeyMismatch, match="not the one this database was sealed with"):
        open_brand(settings)
    key_file.write_bytes(saved)  # the right key back: everything reads again
    engine, _ = open_brand(settings)
    engine.dispose()
