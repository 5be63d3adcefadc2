"""What an incremental identity pass must re-resolve (SPEC §4), as two temporary tables.

A full pass over a brand is a fixpoint: every customer is exactly one connected component.
Between passes only records change (new ones, new or changed identifiers), so only the
components those records belong to — before or after the change — can change. This module
finds them with indexed lookups, never a scan of the brand:

- `touched_record`: the records changed since the last pass (and any never resolved), every
  record of the customers they belonged to (their old component, which may split), and, round
  by round, every record sharing a merging identifier with one already in, together with all
  the records of its customer — until nothing new joins.
- `touched_ident`: every identifier those records carry, plus the identifiers that pointed at
  their old customers (values a changed record dropped), every identifier without a customer
  (new values, quarantined values) and every operator-unlinked value.

The K-guard stays exact: a value's count is its count over all the brand's records. Values in
the scope that are not quarantined have all their carriers in the scope (that is how the scope
grows), so counting them there is counting them everywhere. A value already quarantined that
stays over K merges nothing before or after, so its carriers need not join; its per-source
counts come from the store (`frozen_count`). Such values are few (a till's placeholder phone),
and all of them are recounted every pass, so a value that falls back to K or below (a record
dropped it) is noticed and its carriers join the scope.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, text

from siyu.identity.facts import FACT_REFERENCES, add_reference_records
from siyu.identity.planner import IndexSeeks


def _temp(conn: Connection, name: str, ddl: str) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({ddl})"))


def _analyze(conn: Connection, *names: str) -> None:
    """Fresh statistics for the planner (PostgreSQL guesses temp tables' sizes otherwise)."""
    if conn.dialect.name == "postgresql":
        for name in names:
            conn.execute(text(f"ANALYZE {name}"))


def build(
    conn: Connection,
    brand_id: int,
    *,
    since: datetime,
    now: datetime,
    k_guard: int,
    seeks: IndexSeeks,
    also: tuple[int, ...] = (),
) -> int:
    """Fill touched_record / touched_ident / frozen / frozen_count; returns the rounds taken.

    `also`: identifier ids whose carriers must be re-resolved whatever changed (an operator
    just unmerged or relinked them). `seeks` is told the scope's size as it grows: the scans
    by time (records, facts) run before it may force index seeks (siyu.identity.planner).
    """
    # Joins are written temp table first as CROSS JOIN: SQLite then loops over the (small)
    # scope and seeks the big tables by index, instead of scanning them; `+col` keeps SQLite
    # off an index that would read the whole brand. PostgreSQL plans from fresh statistics.
    b = {"b": brand_id, "since": since, "now": now}
    _temp(conn, "touched_record", "id BIGINT PRIMARY KEY, round INTEGER")
    _temp(conn, "touched_ident", "id BIGINT PRIMARY KEY, round INTEGER")
    _temp(conn, "old_customer", "id BIGINT PRIMARY KEY")
    _temp(conn, "frozen", "id BIGINT PRIMARY KEY")
    _temp(conn, "frozen_count", "identifier_id BIGINT, source VARCHAR(64), n BIGINT")

    # Records changed since the last pass, and records never resolved.
    changed = conn.execute(
        text(
            "INSERT INTO touched_record (id, round) "
            "SELECT id, 0 FROM source_record WHERE brand_id = :b AND updated_at >= :since "
            "UNION SELECT id, 0 FROM source_record WHERE +brand_id = :b AND customer_id IS NULL"
        ),
        b,
    ).rowcount
    # Values facts named since the last pass that no record carries yet.
    _add_fact_identifiers(conn, brand_id, since, now)
    seeks.scope_is(changed)
    conn.execute(
        text(
            "INSERT INTO old_customer (id) SELECT DISTINCT r.customer_id FROM touched_record t "
            "CROSS JOIN source_record r WHERE r.id = t.id AND r.customer_id IS NOT NULL"
        )
    )
    # Identifiers to look at: those of the old customers (a changed record may have dropped
    # them), every one without a customer (new or quarantined), every unlinked one.
    conn.execute(
        text(
            "INSERT INTO touched_ident (id, round) "
            "SELECT id, 0 FROM identifier WHERE +brand_id = :b AND customer_id IS NULL "
            "UNION SELECT i.id, 0 FROM old_customer o CROSS JOIN identifier i "
            " WHERE i.customer_id = o.id "
            "UNION SELECT i.id, 0 FROM identifier_override o JOIN identifier i "
            " ON i.brand_id = o.brand_id AND i.id_type = o.id_type AND i.value = o.value "
            " WHERE o.brand_id = :b"
        ),
        b,
    )
    if also:
        conn.execute(
            text(
                "INSERT INTO touched_ident (id, round) SELECT i.id, 0 FROM identifier i "
                f"WHERE i.id IN ({', '.join(str(int(x)) for x in also)}) AND NOT EXISTS ("
                "SELECT 1 FROM touched_ident t WHERE t.id = i.id)"
            )
        )
    _analyze(conn, "touched_record", "touched_ident", "old_customer")
    # A value no record carries any more (or only a fact names) gets a record of its own.
    add_reference_records(conn, brand_id, now, candidates="touched_ident")
    conn.execute(
        text(
            "INSERT INTO touched_record (id, round) SELECT r.id, 0 FROM source_record r "
            "WHERE +r.brand_id = :b AND r.customer_id IS NULL AND NOT EXISTS ("
            " SELECT 1 FROM touched_record t WHERE t.id = r.id)"
        ),
        b,
    )
    # Quarantined values: recount every one; those still over K stay out of the expansion.
    conn.execute(
        text(
            "INSERT INTO frozen_count (identifier_id, source, n) "
            "SELECT ri.identifier_id, r.source, count(*) FROM touched_ident t "
            "CROSS JOIN identifier i CROSS JOIN record_identity ri CROSS JOIN source_record r "
            "WHERE i.id = t.id AND i.customer_id IS NULL AND i.status = 'quarantined' "
            "AND ri.identifier_id = i.id "
            "AND r.id = ri.record_id GROUP BY ri.identifier_id, r.source"
        )
    )
    conn.execute(
        text(
            "INSERT INTO frozen (id) SELECT identifier_id FROM frozen_count "
            "GROUP BY identifier_id HAVING max(n) > :k"
        ),
        {"k": k_guard},
    )
    conn.execute(
        text("DELETE FROM frozen_count WHERE identifier_id NOT IN (SELECT id FROM frozen)")
    )
    return _close(conn, seeks)


def _close(conn: Connection, seeks: IndexSeeks) -> int:
    """Grow the scope round by round until it is closed under shared values and customers;
    `seeks` hears its size (records) after every step that grows it."""
    size = conn.execute(text("SELECT count(*) FROM touched_record")).scalar_one()
    k = 0
    while True:
        _analyze(conn, "touched_record", "touched_ident")
        seeks.scope_is(size)
        r = {"k": k, "next": k + 1}
        # The whole customer of every record that joined in this round.
        size += conn.execute(
            text(
                "INSERT INTO touched_record (id, round) SELECT DISTINCT r2.id, :k "
                "FROM touched_record t CROSS JOIN source_record r CROSS JOIN source_record r2 "
                "WHERE r.id = t.id AND r2.customer_id = r.customer_id AND t.round = :k "
                "AND NOT EXISTS ("
                " SELECT 1 FROM touched_record x WHERE x.id = r2.id)"
            ),
            r,
        ).rowcount
        seeks.scope_is(size)
        # Every value those records carry.
        conn.execute(
            text(
                "INSERT INTO touched_ident (id, round) SELECT DISTINCT ri.identifier_id, :k "
                "FROM touched_record t CROSS JOIN record_identity ri "
                "WHERE ri.record_id = t.id AND t.round = :k AND NOT EXISTS ("
                " SELECT 1 FROM touched_ident x WHERE x.id = ri.identifier_id)"
            ),
            r,
        )
        # Every record carrying one of the values that may merge: the next round.
        grown = conn.execute(
            text(
                "INSERT INTO touched_record (id, round) SELECT DISTINCT ri.record_id, :next "
                "FROM touched_ident t CROSS JOIN record_identity ri "
                "WHERE ri.identifier_id = t.id AND t.round = :k "
                "AND NOT EXISTS (SELECT 1 FROM frozen f WHERE f.id = t.id) "
                "AND NOT EXISTS (SELECT 1 FROM touched_record x WHERE x.id = ri.record_id)"
            ),
            r,
        ).rowcount
        size += grown
        k += 1
        if not grown:
            return k


def _add_fact_identifiers(conn: Connection, brand_id: int, since: datetime, now: datetime) -> None:
    refs = " UNION ".join(
        f"SELECT {ty} AS id_type, {va} AS value FROM {table} "
        f"WHERE brand_id = :b AND changed_at >= :since AND {va} IS NOT NULL"
        for table, ty, va in FACT_REFERENCES
    )
    conn.execute(
        text(
            "INSERT INTO identifier (brand_id, id_type, value, status, changed_at) "
            f"SELECT :b, r.id_type, r.value, 'linked', :now FROM ({refs}) r WHERE NOT EXISTS ("
            "SELECT 1 FROM identifier i "
            "WHERE i.brand_id = :b AND i.id_type = r.id_type AND i.value = r.value) "
            "ORDER BY r.id_type, r.value"
        ),
        {"b": brand_id, "since": since, "now": now},
    )
