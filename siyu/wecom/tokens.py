"""Where access tokens live between calls: in memory, or in the operational store for all processes.

WeCom's gettoken is rate-limited and every process of a deployment must use the same token, so
the production store is a table (`wecom_access_token`), keyed by (corp, SHA-256 of the secret).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from siyu.db import utcnow
from siyu.wecom.models import WeComAccessToken


@dataclass(frozen=True)
class StoredToken:
    access_token: str
    expires_at: datetime


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenStore(Protocol):
    def get(self, corp_id: str, secret_hash: str) -> StoredToken | None: ...

    def put(self, corp_id: str, secret_hash: str, token: StoredToken) -> None: ...

    def invalidate(self, corp_id: str, secret_hash: str, access_token: str) -> None:
        """Forget the token, but only if it is still `access_token` (another process may have
        stored a fresh one meanwhile)."""
        ...


class MemoryTokenStore:
    """One process only: for tests and the simulator."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], StoredToken] = {}
        self._lock = threading.Lock()

    def get(self, corp_id: str, secret_hash: str) -> StoredToken | None:
        with self._lock:
            return self._tokens.get((corp_id, secret_hash))

    def put(self, corp_id: str, secret_hash: str, token: StoredToken) -> None:
        with self._lock:
            self._tokens[(corp_id, secret_hash)] = token

    def invalidate(self, corp_id: str, secret_hash: str, access_token: str) -> None:
        with self._lock:
            current = self._tokens.get((corp_id, secret_hash))
            if current is not None and current.access_token == access_token:
                del self._tokens[(corp_id, secret_hash)]


class DbTokenStore:
    """Shared by every process on the operational store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, corp_id: str, secret_hash: str) -> StoredToken | None:
        t = WeComAccessToken
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.access_token, t.expires_at).where(
                    t.corp_id == corp_id, t.secret_hash == secret_hash
                )
            ).first()
        return None if row is None else StoredToken(row[0], row[1])

    def put(self, corp_id: str, secret_hash: str, token: StoredToken) -> None:
        t = WeComAccessToken
        # Delete + insert in one transaction: portable across SQLite and PostgreSQL, and a
        # concurrent writer of the same key simply loses (both tokens are valid).
        try:
            with self._engine.begin() as conn:
                conn.execute(delete(t).where(t.corp_id == corp_id, t.secret_hash == secret_hash))
                conn.execute(
                    t.__table__.insert().values(
                        corp_id=corp_id,
                        secret_hash=secret_hash,
                        access_token=token.access_token,
                        expires_at=token.expires_at,
                        fetched_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # another process stored its token at the same moment; either is valid

    def invalidate(self, corp_id: str, secret_hash: str, access_token: str) -> None:
        t = WeComAccessToken
        with self._engine.begin() as conn:
            conn.execute(
                delete(t).where(
                    t.corp_id == corp_id,
                    t.secret_hash == secret_hash,
                    t.access_token == access_token,
                )
            )
