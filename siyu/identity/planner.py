"""How PostgreSQL should plan an incremental identity pass: by the size of its scope.

An incremental pass joins its scope (temporary tables, siyu.identity.scope) to the brand's big
tables. While the scope is a small part of the brand, index seeks from the scope are the right
plan, and PostgreSQL's cost model does not always see it (it prefers hash joins over whole
tables up to scopes of several thousand rows, and that cost grows with the brand): the pass
switches hash joins, merge joins and sequential scans off. Once the scope is a large part of the
brand (the pass right after an import: every record is new or touched), the same switches turn
each join into a nested loop over the brand — quadratic when the statistics still describe the
table before the import, as they do under siyu.bulk's BIG_LOAD: at 40k records the pass took
495 s instead of 1.7 s (bench/RESULTS.md) — so the planner gets its own choice back, and keeps
it for the rest of the pass. The scope is measured as it grows
(siyu.identity.scope) after the scans by time, which want no steering. When more than half the
brand changed, a full pass gets there faster than the scope (`most_changed_since`).

Settings are changed transaction-locally and put back to what they were before the pass (not
to PostgreSQL's defaults), also when the pass fails. SQLite is steered by the joins' written
order instead (siyu.identity.scope); there this module does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, text

# The plans a small scope must not use.
SETTINGS = ("enable_hashjoin", "enable_mergejoin", "enable_seqscan")
# A scope of at most this share of the brand's records is small.
SMALL_SCOPE = 0.05
# When more than this share of the brand's records changed, a full pass is the faster way to
# the same outcome (bench/RESULTS.md: 6.9 s against 12.1 s for 250k records).
FULL_PAST = 0.5


class IndexSeeks:
    """Forces index seeks while the scope is small (see `scope_is`); `release` undoes it."""

    def __init__(self, conn: Connection, brand_id: int, brand_records: int | None) -> None:
        self.conn = conn
        self.brand_id = brand_id
        self.brand_records = brand_records
        self.active = conn.dialect.name == "postgresql" and brand_records is not None
        self.saved: dict[str, str] = {}
        self.forced = False

    def most_changed_since(self, since: datetime) -> bool:
        """Did more than FULL_PAST of the brand's records change since `since`? (Counted by
        the index on (brand_id, updated_at), and no further than that share.) FULL_PAST ≥ 1
        never switches."""
        if not self.active or FULL_PAST >= 1:
            return False
        assert self.brand_records is not None
        cap = int(FULL_PAST * self.brand_records)
        changed = self.conn.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM source_record WHERE brand_id = :b "
                "AND updated_at >= :since LIMIT :cap) c"
            ),
            {"b": self.brand_id, "since": since, "cap": cap + 1},
        ).scalar_one()
        if changed > cap:
            self.active = False
        return changed > cap

    def small(self, scope_records: int) -> bool:
        """Is a scope of this many records small for the brand?"""
        assert self.brand_records is not None
        return scope_records <= SMALL_SCOPE * self.brand_records

    def scope_is(self, scope_records: int) -> None:
        """The scope now holds this many records: force index seeks if that is small, else
        give the planner its choice back. A scope only grows, so once released stays released."""
        if not self.active:
            return
        if self.small(scope_records):
            if not self.forced:
                self._force()
        else:
            self.release()
            self.active = False

    def _force(self) -> None:
        for name in SETTINGS:
            self.saved[name] = self.conn.execute(
                text("SELECT current_setting(:n)"), {"n": name}
            ).scalar_one()
            self._set(name, "off")
        self.forced = True

    def release(self) -> None:
        """Put the settings back as they were before `_force`."""
        if not self.forced:
            return
        self.forced = False
        if _failed(self.conn):
            # The transaction (or the savepoint around this pass) must be rolled back before
            # anything runs, and rolling back undoes the SET LOCALs with it.
            return
        for name, value in self.saved.items():
            self._set(name, value)

    def _set(self, name: str, value: str) -> None:
        # set_config(…, true) is SET LOCAL: it ends with the transaction whatever happens.
        self.conn.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def _failed(conn: Connection) -> bool:
    """Is the connection's PostgreSQL transaction aborted by an error?"""
    raw = conn.connection.dbapi_connection
    return raw is not None and raw.info.transaction_status == TransactionStatus.INERROR


@contextmanager
def index_seeks(conn: Connection, brand_id: int, *, incremental: bool) -> Iterator[IndexSeeks]:
    """Steer a pass's plans by its scope; a full pass (or SQLite) is never steered."""
    steer = incremental and conn.dialect.name == "postgresql"
    seeks = IndexSeeks(conn, brand_id, _brand_records(conn, brand_id) if steer else None)
    try:
        yield seeks
    finally:
        seeks.release()


def _brand_records(conn: Connection, brand_id: int) -> int:
    return int(
        conn.execute(
            text("SELECT count(*) FROM source_record WHERE brand_id = :b"), {"b": brand_id}
        ).scalar_one()
    )
