"""Identity resolution (SPEC §4): records that share an identifier are one customer.

A set-based pass: the records and identifier values form a bipartite graph whose connected
components (SciPy, vectorised union-find) are the customers. The first pass of a brand reads
every record; later ones read only the components that records changed since the last pass
can reach (siyu.identity.scope) and give the same outcome.
Values carried by more than K records of one source (a till's placeholder phone) and values an
operator unmerged take no part. Customer ids are stable: a component keeps the oldest id among
its records' customers, merged-away ids redirect to it, and a split keeps the id for the larger
part (reviving the other part's own former id when it had one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sqlalchemy import Connection, Engine, select, text, update

from siyu import pii
from siyu.bulk import bulk_load, fetch_int_columns, int_table, temp_table
from siyu.customers.models import Customer
from siyu.db import bind_ts
from siyu.identity import planner, scope
from siyu.identity.facts import add_all_fact_identifiers, add_reference_records
from siyu.identity.models import Identifier, IdentityPass, SourceRecord

# Profile attributes merge by source priority, then the most recent non-null (SPEC §4).
PROFILE_PRIORITY = ("pos", "mp", "wecom", "oa", "tmall", "jd", "douyin", "youzan")
# A name is its sealed value and its hash, null together: both come from the same record.
PROFILE_FIELDS = ("name_hash", "name_sealed", "gender", "birthday", "city")

STATUSES = ("linked", "unlinked", "quarantined")  # identifier.status by code
STATUS_CODE = (
    "CASE status " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATUSES)) + " END"
)


@dataclass(frozen=True)
class ResolutionResult:
    records: int  # the brand's records
    customers: int  # live customers after the pass
    created: int
    merged: int  # customer ids merged into another this pass
    split: int  # customers created or revived by splitting one
    quarantined: int  # identifier values quarantined by the K-guard
    resolved: int = 0  # records this pass looked at (all of them in a full pass)
    full: bool = True


# Transactions still open when a pass began may commit records stamped before it: the next
# pass reads back this far (as the warehouse sync does).
OVERLAP = timedelta(hours=1)


def resolve(
    engine: Engine,
    *,
    brand_id: int,
    k_guard: int = 5,
    full: bool = False,
    overlap: timedelta | None = None,
) -> ResolutionResult:
    """Run a pass in one transaction: over what changed since the last pass, or everything.

    The first pass of a brand, `full=True`, and a pass with another K than the last one are
    full passes; either way the outcome is the one a full pass would give (SPEC §4).
    """
    with engine.begin() as conn:
        return _resolve(conn, brand_id, k_guard, full=full, overlap=overlap)


@dataclass
class _Graph:
    """The records and identifier values a pass resolves, as NumPy columns sorted by id."""

    rec_id: np.ndarray
    rec_cust: np.ndarray
    rec_first: np.ndarray
    rec_src: np.ndarray
    sources: list[str]
    pair_rec: np.ndarray
    pair_ident: np.ndarray
    ident_id: np.ndarray
    ident_cust: np.ndarray
    ident_before: np.ndarray
    overridden: np.ndarray
    # Values quarantined before and still over K, counted over the whole brand (incremental).
    frozen_ident: np.ndarray
    frozen_src: np.ndarray
    frozen_n: np.ndarray


def _resolve(
    conn: Connection,
    brand_id: int,
    k_guard: int,
    *,
    full: bool = False,
    overlap: timedelta | None = None,
    also: tuple[int, ...] = (),
) -> ResolutionResult:
    now = datetime.now(UTC)
    overlap = OVERLAP if overlap is None else overlap
    b = {"b": brand_id}
    last = _last_pass(conn, brand_id)
    full = full or last is None or last[1] != k_guard
    with planner.index_seeks(conn, brand_id, incremental=not full) as seeks:
        if not full and last is not None:
            full = seeks.most_changed_since(last[0] - overlap)
        result = _pass(conn, brand_id, k_guard, now, last, full, overlap, also, seeks)
    live = conn.execute(
        text("SELECT count(*) FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"), b
    ).scalar_one()
    records = (
        result.resolved
        if full
        else conn.execute(
            text("SELECT count(*) FROM source_record WHERE brand_id = :b"), b
        ).scalar_one()
    )
    return replace(result, records=int(records), customers=int(live))


def _pass(
    conn: Connection,
    brand_id: int,
    k_guard: int,
    now: datetime,
    last: tuple[datetime, int] | None,
    full: bool,
    overlap: timedelta,
    also: tuple[int, ...],
    seeks: planner.IndexSeeks,
) -> ResolutionResult:
    """Resolve the brand (full) or the scope of what changed since `last`; the result's
    `records` and `customers` are left for the caller to count."""
    if full:
        add_all_fact_identifiers(conn, brand_id, now)
        add_reference_records(conn, brand_id, now)
        g = _load_brand(conn, brand_id)
    else:
        assert last is not None
        since = last[0] - overlap
        scope.build(conn, brand_id, since=since, now=now, k_guard=k_guard, seeks=seeks, also=also)
        g = _load_scope(conn, brand_id)
    n_rec, n_ident = len(g.rec_id), len(g.ident_id)
    p_rec = np.searchsorted(g.rec_id, g.pair_rec)
    p_ident = np.searchsorted(g.ident_id, g.pair_ident)

    # K-guard: distinct records per (value, source); one record carries a value at most once.
    # Values the scope holds every carrier of are counted here; frozen ones were counted whole.
    n_src = len(g.sources) or 1
    frozen = np.zeros(n_ident, dtype=bool)
    frozen[np.searchsorted(g.ident_id, g.frozen_ident)] = True
    local = ~frozen[p_ident]
    keys = np.concatenate(
        [
            p_ident[local] * n_src + g.rec_src[p_rec[local]],
            np.searchsorted(g.ident_id, g.frozen_ident) * n_src + g.frozen_src,
        ]
    )
    weights = np.concatenate([np.ones(int(local.sum()), dtype=np.int64), g.frozen_n])
    uniq, inverse = np.unique(keys, return_inverse=True)
    per_src = (uniq, np.bincount(inverse, weights=weights, minlength=len(uniq)).astype(np.int64))
    crowded = per_src[1] > k_guard
    quarantined = np.zeros(n_ident, dtype=bool)
    quarantined[per_src[0][crowded] // n_src] = True
    unlinked = np.zeros(n_ident, dtype=bool)
    unlinked[np.searchsorted(g.ident_id, g.overridden)] = True
    merging = ~(quarantined | unlinked)[p_ident]

    graph = coo_matrix(
        (np.ones(int(merging.sum()), dtype=np.int8), (p_rec[merging], n_rec + p_ident[merging])),
        shape=(n_rec + n_ident, n_rec + n_ident),
    )
    # Components are numbered in order of their first record (lowest id): ties below are
    # broken the same way whether the pass sees the whole brand or part of it.
    _, labels = connected_components(graph, directed=False)
    comp = labels[:n_rec]

    homed_elsewhere = _nowhere if full else _homed_outside_scope(conn)
    cust_of_comp, merges, splits, created, revived = _assign_customers(
        comp, g.rec_cust, g.rec_first, homed_elsewhere
    )
    new_ids = _new_customer_ids(conn, created)
    cust_of_comp[cust_of_comp < 0] = new_ids[-cust_of_comp[cust_of_comp < 0] - 1]
    split_new = sum(1 for _, n in splits if n < 0)
    splits = [(o, int(new_ids[-n - 1]) if n < 0 else n) for o, n in splits]
    new_cust = cust_of_comp[comp]
    # A first pass: customers with one record, split into the new ones (created with its
    # profile) and those that existed (which get theirs below).
    born = sole = None
    if full:
        customer, record = _sole_records(new_cust, g.rec_id)
        new = np.isin(customer, new_ids)
        born, sole = (customer[new], record[new]), (customer[~new], record[~new])
    _create_customers(conn, brand_id, new_ids, now, born)

    _write_records(conn, g.rec_id, g.rec_cust, g.rec_first, new_cust)
    _write_customers(conn, brand_id, merges, revived, splits, new_cust, now)
    ident_status = np.where(quarantined, 2, np.where(unlinked, 1, 0))
    _write_identifiers(
        conn, g.ident_id, g.ident_cust, ident_status, g.ident_before, p_rec, p_ident, new_cust, now
    )
    # Every quarantined value of the brand is in the scope (values without a customer are).
    _write_quarantine(conn, brand_id, g.sources, g.ident_id, per_src, crowded, n_src, now)
    # Profiles: of customers whose records changed hands, and of customers one of whose
    # records changed its name or gender since the last pass (a WeCom edit, a re-import).
    edited = _edited_customers(conn, brand_id, None if last is None else last[0] - overlap)
    touched = np.unique(np.concatenate([new_cust[new_cust != g.rec_cust], edited]))
    if born is not None:
        touched = touched[~np.isin(touched, born[0])]
    _merge_profiles(conn, brand_id, touched, sole=sole)
    _save_pass(conn, brand_id, now, k_guard)
    return ResolutionResult(
        records=0,
        customers=0,
        created=len(new_ids) - split_new,
        merged=len(merges),
        split=len(splits),
        quarantined=int(quarantined.sum()),
        resolved=n_rec,
        full=full,
    )


def _last_pass(conn: Connection, brand_id: int) -> tuple[datetime, int] | None:
    """(when the brand's last pass began, its K); locks the row against a concurrent pass."""
    query = select(IdentityPass.started_at, IdentityPass.k_guard).where(
        IdentityPass.brand_id == brand_id
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return (row[0], int(row[1])) if row else None


def _save_pass(conn: Connection, brand_id: int, started: datetime, k_guard: int) -> None:
    done = conn.execute(
        update(IdentityPass)
        .where(IdentityPass.brand_id == brand_id)
        .values(started_at=started, k_guard=k_guard)
    ).rowcount
    if not done:
        conn.execute(
            IdentityPass.__table__.insert().values(
                brand_id=brand_id, started_at=started, k_guard=k_guard
            )
        )


def _load_brand(conn: Connection, brand_id: int) -> _Graph:
    """Every record, pair and identifier of the brand."""
    sources = _sources(
        conn, "SELECT DISTINCT source FROM source_record WHERE brand_id = :b", brand_id
    )
    rec_id, rec_cust, rec_first, rec_src = fetch_int_columns(
        conn,
        f"SELECT id, customer_id, first_customer_id, {_source_code(sources)} FROM source_record "
        "WHERE brand_id = :b ORDER BY id",
        brand_id=brand_id,
        ncols=4,
    )
    # A store that is (nearly) all this brand's: every pair is read without asking each
    # record's brand, and other brands' few pairs are dropped below (a quarter of the read).
    top = conn.execute(text("SELECT coalesce(max(id), 0) FROM source_record")).scalar_one()
    pair_rec, pair_ident = fetch_int_columns(
        conn,
        "SELECT record_id, identifier_id FROM record_identity"
        if len(rec_id) * 10 >= top * 9
        else "SELECT ri.record_id, ri.identifier_id FROM record_identity ri "
        "JOIN source_record r ON r.id = ri.record_id WHERE r.brand_id = :b",
        brand_id=brand_id,
        ncols=2,
    )
    ident_id, ident_cust, ident_before = fetch_int_columns(
        conn,
        f"SELECT id, customer_id, {STATUS_CODE} FROM identifier WHERE brand_id = :b ORDER BY id",
        brand_id=brand_id,
        ncols=3,
    )
    # Each statement reads what is committed when it runs (PostgreSQL's READ COMMITTED): a
    # record another process committed after the records were read (a WeCom event, an API
    # ingest) can show up among the pairs. Such pairs wait for the next pass, which reads that
    # record as changed since this one began (less OVERLAP). Other brands' pairs go here too.
    seen = _known(rec_id, pair_rec) & _known(ident_id, pair_ident)
    if not seen.all():
        pair_rec, pair_ident = pair_rec[seen], pair_ident[seen]
    empty = np.zeros(0, dtype=np.int64)
    return _Graph(
        rec_id, rec_cust, rec_first, rec_src, sources, pair_rec, pair_ident,
        ident_id, ident_cust, ident_before, _overridden(conn, brand_id, ident_id),
        empty, empty, empty,
    )  # fmt: skip


def _known(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of `values` are in the sorted array `ids`."""
    at = np.searchsorted(ids, values)
    found = at < len(ids)
    found[found] = ids[at[found]] == values[found]
    return found


def _load_scope(conn: Connection, brand_id: int) -> _Graph:
    """The records and identifiers of the scope an incremental pass built (siyu.identity.scope)."""
    sources = _sources(
        conn,
        "SELECT DISTINCT r.source FROM touched_record t CROSS JOIN source_record r "
        "WHERE r.id = t.id "
        "UNION SELECT DISTINCT source FROM frozen_count",
        0,
    )
    code = _source_code(sources)
    rec_id, rec_cust, rec_first, rec_src = fetch_int_columns(
        conn,
        f"SELECT r.id, r.customer_id, r.first_customer_id, {code} FROM touched_record t "
        "CROSS JOIN source_record r WHERE r.id = t.id ORDER BY r.id",
        brand_id=0,
        ncols=4,
    )
    pair_rec, pair_ident = fetch_int_columns(
        conn,
        "SELECT ri.record_id, ri.identifier_id FROM touched_record t "
        "CROSS JOIN record_identity ri WHERE ri.record_id = t.id",
        brand_id=0,
        ncols=2,
    )
    ident_id, ident_cust, ident_before = fetch_int_columns(
        conn,
        f"SELECT i.id, i.customer_id, {STATUS_CODE} FROM touched_ident t "
        "CROSS JOIN identifier i WHERE i.id = t.id ORDER BY i.id",
        brand_id=0,
        ncols=3,
    )
    frozen_ident, frozen_src, frozen_n = fetch_int_columns(
        conn,
        f"SELECT identifier_id, {_source_code(sources)}, n FROM frozen_count",
        brand_id=0,
        ncols=3,
    )
    return _Graph(
        rec_id, rec_cust, rec_first, rec_src, sources, pair_rec, pair_ident,
        ident_id, ident_cust, ident_before, _overridden(conn, brand_id, ident_id),
        frozen_ident, frozen_src, frozen_n,
    )  # fmt: skip


def _overridden(conn: Connection, brand_id: int, ident_id: np.ndarray) -> np.ndarray:
    """The operator-unlinked values among `ident_id`."""
    (overridden,) = fetch_int_columns(
        conn,
        "SELECT i.id FROM identifier_override o JOIN identifier i ON i.brand_id = o.brand_id "
        "AND i.id_type = o.id_type AND i.value = o.value WHERE o.brand_id = :b",
        brand_id=brand_id,
        ncols=1,
    )
    return overridden[np.isin(overridden, ident_id)]


def _homed_outside_scope(conn: Connection) -> Callable[[list[int]], set[int]]:
    """Customer ids among `ids` that records outside the scope still belong to."""

    def homed(ids: list[int]) -> set[int]:
        if not ids:
            return set()
        int_table(conn, "revive_candidate", ["id"], [np.unique(np.asarray(ids, dtype=np.int64))])
        rows = conn.execute(
            text(
                "SELECT DISTINCT r.customer_id FROM revive_candidate c "
                "CROSS JOIN source_record r WHERE r.customer_id = c.id AND NOT EXISTS ("
                " SELECT 1 FROM touched_record t WHERE t.id = r.id)"
            )
        ).scalars()
        return {int(x) for x in rows}

    return homed


def _nowhere(_ids: list[int]) -> set[int]:
    return set()


def _sources(conn: Connection, sql: str, brand_id: int) -> list[str]:
    """Source systems in name order; a source's index is its small code."""
    return sorted(conn.execute(text(sql), {"b": brand_id}).scalars().all())


def _source_code(sources: list[str]) -> str:
    whens = " ".join(f"WHEN '{_sql_str(s)}' THEN {i}" for i, s in enumerate(sources))
    return f"CASE source {whens} ELSE 0 END" if sources else "0"


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _assign_customers(
    comp: np.ndarray,
    rec_cust: np.ndarray,
    rec_first: np.ndarray,
    homed_elsewhere: Callable[[list[int]], set[int]],
) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int]], int, list[int]]:
    """Decide the customer id of every component.

    Returns (customer per component — negative k means the k-th new customer, merges as
    (merged_id, survivor_id), splits as (origin_id, new_or_revived_id) with new ids negative,
    number of customers to create, revived ids). `homed_elsewhere(ids)`: those of `ids` that
    records outside `comp` belong to (an incremental pass sees part of the brand).
    """
    n_comp = int(comp.max()) + 1 if len(comp) else 0
    cust_of_comp = np.zeros(n_comp, dtype=np.int64)
    has = rec_cust > 0
    # Each existing customer goes with the component holding most of its records (ties: lowest).
    pairs, counts = np.unique(np.stack([rec_cust[has], comp[has]]), axis=1, return_counts=True)
    order = np.lexsort((pairs[1], -counts, pairs[0]))
    pairs = pairs[:, order]
    first = np.ones(pairs.shape[1], dtype=bool)
    first[1:] = pairs[0, 1:] != pairs[0, :-1]
    home_cust, home_comp = pairs[0, first], pairs[1, first]
    # The oldest (smallest) customer id in a component survives; the others redirect to it.
    order = np.lexsort((home_cust, home_comp))
    home_cust, home_comp = home_cust[order], home_comp[order]
    lead = np.ones(len(home_comp), dtype=bool)
    lead[1:] = home_comp[1:] != home_comp[:-1]
    cust_of_comp[home_comp[lead]] = home_cust[lead]
    merges = [
        (int(c), int(cust_of_comp[k]))
        for c, k in zip(home_cust[~lead], home_comp[~lead], strict=False)
    ]

    # Components left without a customer: revive a former id of theirs (an undone merge), or new.
    orphan = np.flatnonzero(cust_of_comp == 0)
    if len(orphan) == 0:
        return cust_of_comp, merges, [], 0, []
    none = np.iinfo(np.int64).max
    rec_orphan = (cust_of_comp == 0)[comp]
    # An orphan component that holds records of a customer homed elsewhere was split off.
    origin = np.zeros(n_comp, dtype=np.int64)
    sel = rec_orphan & has
    np.maximum.at(origin, comp[sel], rec_cust[sel])
    former = np.full(n_comp, none)
    sel = rec_orphan & (rec_first > 0)
    np.minimum.at(former, comp[sel], rec_first[sel])
    candidate = former[orphan]
    maybe = candidate != none
    elsewhere = np.fromiter(homed_elsewhere(candidate[maybe].tolist()), dtype=np.int64)
    # A former id is revived unless its customer lives on (here or outside the scope); of two
    # orphans with the same former id, the first (lowest component) takes it.
    revive = maybe & ~np.isin(candidate, np.concatenate([home_cust, elsewhere]))
    taken = np.zeros(len(orphan), dtype=bool)
    _, first_of = np.unique(candidate[revive], return_index=True)
    taken[np.flatnonzero(revive)[first_of]] = True
    created = int((~taken).sum())
    cust_of_comp[orphan] = np.where(taken, candidate, -np.cumsum(~taken))
    split = origin[orphan] != 0
    splits = list(
        zip(origin[orphan][split].tolist(), cust_of_comp[orphan][split].tolist(), strict=True)
    )
    return cust_of_comp, merges, splits, created, candidate[taken].tolist()


def _new_customer_ids(conn: Connection, count: int) -> np.ndarray:
    """Ids for `count` new customers, allocated explicitly so that they map to components
    without a round trip (the pass holds the write lock from its first write on)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    start = conn.execute(text("SELECT coalesce(max(id), 0) FROM customer")).scalar_one()
    return np.arange(start + 1, start + 1 + count, dtype=np.int64)


def _create_customers(
    conn: Connection,
    brand_id: int,
    ids: np.ndarray,
    now: datetime,
    born: tuple[np.ndarray, np.ndarray] | None,
) -> None:
    """Insert the new customers (`ids`, a range). Those in `born` (new customer, its one
    record) take that record's profile in the insert itself: each row written once, at its final size
    (filling the profile in afterwards grew every row in place — most of a first pass's
    profile time at 10M records)."""
    if len(ids) == 0:
        return
    # The ids are a range, made by the database itself rather than sent to it row by row.
    if conn.dialect.name == "postgresql":
        numbers = "SELECT generate_series(CAST(:lo AS BIGINT), CAST(:hi AS BIGINT)) AS id"
    else:
        numbers = (
            "WITH RECURSIVE n(id) AS (SELECT :lo UNION ALL SELECT id + 1 FROM n WHERE id < :hi) "
            "SELECT id FROM n"
        )
    columns, values, rows = "", "", f"({numbers}) AS n"
    if born is not None:
        int_table(conn, "sole_record", ["customer_id", "record_id"], list(born))
        columns = "".join(f", {f}" for f in PROFILE_FIELDS)
        values = "".join(f", r.{f}" for f in PROFILE_FIELDS)
        rows += (
            " LEFT JOIN sole_record s ON s.customer_id = n.id"
            " LEFT JOIN source_record r ON r.id = s.record_id"
        )
    with bulk_load(conn, Customer.__table__, len(ids)):
        conn.execute(
            text(
                f"INSERT INTO customer (id, brand_id, created_at, updated_at{columns}) "
                f"SELECT n.id, :b, :now, :now{values} FROM {rows}"
            ),
            {"b": brand_id, "now": now, "lo": int(ids[0]), "hi": int(ids[-1])},
        )
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('customer', 'id'), (SELECT max(id) FROM customer))"
            )
        )


def _write_records(
    conn: Connection,
    rec_id: np.ndarray,
    rec_cust: np.ndarray,
    rec_first: np.ndarray,
    new_cust: np.ndarray,
) -> None:
    changed = (new_cust != rec_cust) | (rec_first == 0)
    int_table(
        conn, "record_customer", ["record_id", "customer_id"], [rec_id[changed], new_cust[changed]]
    )
    updating = ("customer_id", "first_customer_id")
    with bulk_load(conn, SourceRecord.__table__, int(changed.sum()), updating=updating):
        conn.execute(
            text(
                "UPDATE source_record SET customer_id = rc.customer_id, "
                " first_customer_id = coalesce(source_record.first_customer_id, rc.customer_id) "
                "FROM record_customer rc WHERE rc.record_id = source_record.id"
            )
        )


def _write_customers(
    conn: Connection,
    brand_id: int,
    merges: list[tuple[int, int]],
    revived: list[int],
    splits: list[tuple[int, int]],
    new_cust: np.ndarray,
    now: datetime,
) -> None:
    b = {"b": brand_id, "now": now}
    if revived:
        temp_table(conn, "revived", [("id", "BIGINT")], [(c,) for c in revived])
        conn.execute(
            text(
                "UPDATE customer SET merged_into_id = NULL, updated_at = :now "
                "WHERE id IN (SELECT id FROM revived)"
            ),
            b,
        )
    if merges:
        temp_table(conn, "merge_map", [("merged", "BIGINT"), ("survivor", "BIGINT")], merges)
        conn.execute(
            text(
                "UPDATE customer SET merged_into_id = (SELECT survivor FROM merge_map "
                " WHERE merged = customer.id), updated_at = :now "
                "WHERE id IN (SELECT merged FROM merge_map)"
            ),
            b,
        )
    # Keep redirects one hop long: whoever pointed at a now-merged id points at its survivor.
    while (
        merges
        and conn.execute(
            text(
                "UPDATE customer SET merged_into_id = (SELECT c2.merged_into_id FROM customer c2 "
                " WHERE c2.id = customer.merged_into_id) WHERE brand_id = :b AND merged_into_id IN "
                " (SELECT id FROM customer WHERE merged_into_id IS NOT NULL)"
            ),
            b,
        ).rowcount
    ):
        pass
    log = [("merge", s, m) for m, s in merges]
    log += [("split", o, n) for o, n in splits]
    if log:
        temp_table(
            conn,
            "merge_log",
            [("kind", "VARCHAR(16)"), ("survivor", "BIGINT"), ("other", "BIGINT")],
            log,
            keyed=False,
        )
        conn.execute(
            text(
                "INSERT INTO customer_merge (brand_id, kind, survivor_id, other_id, created_at, reason) "
                "SELECT :b, kind, survivor, other, :now, 'identity resolution' FROM merge_log"
            ),
            b,
        )
        conn.execute(
            text(
                "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
                " recorded_at, payload) SELECT :b, 'customer.' || kind || 'd', "
                " 'customer.' || kind || ':' || other || ':' || survivor || ':' || :stamp, survivor, "
                " :now, :now, '{}' FROM merge_log"
            ),
            {**b, "stamp": now.isoformat()},
        )


def _write_identifiers(
    conn: Connection,
    ident_id: np.ndarray,
    ident_cust: np.ndarray,
    ident_status: np.ndarray,
    ident_before: np.ndarray,
    p_rec: np.ndarray,
    p_ident: np.ndarray,
    new_cust: np.ndarray,
    now: datetime,
) -> None:
    """Point every value at its customer: the component's (linked), the oldest carrier's
    (unlinked), none (quarantined). Only values whose customer or status changes are written
    (and get changed_at)."""
    best = np.full(len(ident_id), np.iinfo(np.int64).max)
    np.minimum.at(best, p_ident, new_cust[p_rec])
    best[best == np.iinfo(np.int64).max] = 0
    best[ident_status == 2] = 0
    changed = (best != ident_cust) | (ident_status != ident_before)
    int_table(
        conn,
        "identifier_customer",
        ["id", "customer_id", "status"],
        [ident_id[changed], best[changed], ident_status[changed]],
    )
    status = "CASE ic.status " + " ".join(f"WHEN {i} THEN '{s}'" for i, s in enumerate(STATUSES))
    updating = ("customer_id", "status", "changed_at")
    with bulk_load(conn, Identifier.__table__, int(changed.sum()), updating=updating):
        conn.execute(
            text(
                "UPDATE identifier SET customer_id = NULLIF(ic.customer_id, 0), "
                f"status = {status} END, changed_at = :now "
                "FROM identifier_customer ic WHERE ic.id = identifier.id"
            ),
            {"now": now},
        )


def _write_quarantine(
    conn: Connection,
    brand_id: int,
    sources: list[str],
    ident_id: np.ndarray,
    per_src: tuple[np.ndarray, np.ndarray],
    crowded: np.ndarray,
    n_src: int,
    now: datetime,
) -> None:
    """List every source's count for each quarantined value (`siyu identity quarantined`)."""
    keys, counts = per_src
    q_ident = np.unique(keys[crowded] // n_src)
    listed = np.isin(keys // n_src, q_ident)
    rows = [
        (int(ident_id[k // n_src]), sources[int(k % n_src)], int(c))
        for k, c in zip(keys[listed], counts[listed], strict=False)
    ]
    b = {"b": brand_id, "now": now}
    conn.execute(text("DELETE FROM quarantined_identifier WHERE brand_id = :b"), b)
    temp_table(
        conn,
        "quarantine_rows",
        [("identifier_id", "BIGINT"), ("source", "VARCHAR(64)"), ("record_count", "BIGINT")],
        rows,
        keyed=False,
    )
    conn.execute(
        text(
            "INSERT INTO quarantined_identifier (brand_id, id_type, value, source, record_count, "
            " updated_at) SELECT :b, i.id_type, i.value, q.source, q.record_count, :now "
            "FROM quarantine_rows q JOIN identifier i ON i.id = q.identifier_id"
        ),
        b,
    )


def _edited_customers(conn: Connection, brand_id: int, since: datetime | None) -> np.ndarray:
    """Customers with a record updated since `since` (by the index on brand, updated_at)."""
    if since is None:
        return np.empty(0, dtype=np.int64)
    ids = conn.execute(
        text(
            "SELECT DISTINCT customer_id FROM source_record WHERE brand_id = :b "
            "AND updated_at >= :since AND customer_id IS NOT NULL"
        ),
        {"b": brand_id, "since": bind_ts(conn, since)},
    ).scalars()
    return np.fromiter(ids, dtype=np.int64)


def _sole_records(new_cust: np.ndarray, rec_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The customers a full pass gives exactly one record, and that record: the brand's
    records are all in a full pass, so these customers have no other."""
    cust, first, count = np.unique(new_cust, return_index=True, return_counts=True)
    one = count == 1
    return cust[one], rec_id[first[one]]


def _merge_profiles(
    conn: Connection,
    brand_id: int,
    customer_ids: np.ndarray,
    *,
    sole: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Name (sealed, with its hash), gender, birthday, city: best-priority source first, then
    the most recent value.

    sole: (customers, their one record), known to have no other record: their profile is that
    record's, copied in one join without ranking — most customers of a first pass."""
    if sole is not None and len(customer_ids):
        alone = np.isin(sole[0], customer_ids)
        int_table(conn, "sole_record", ["customer_id", "record_id"],
                  [sole[0][alone], sole[1][alone]])  # fmt: skip
        with bulk_load(conn, Customer.__table__, int(alone.sum()), updating=PROFILE_FIELDS):
            conn.execute(
                text(
                    f"UPDATE customer SET {', '.join(f'{f} = r.{f}' for f in PROFILE_FIELDS)} "
                    "FROM sole_record s CROSS JOIN source_record r "
                    "WHERE r.id = s.record_id AND s.customer_id = customer.id"
                )
            )
        customer_ids = customer_ids[~np.isin(customer_ids, sole[0])]
    if len(customer_ids) == 0:
        return
    int_table(conn, "touched_customer", ["id"], [customer_ids])
    rank = (
        "CASE r.source "
        + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(PROFILE_PRIORITY))
        + f" ELSE {len(PROFILE_PRIORITY)} END"
    )
    order = f"{rank}, r.updated_at DESC, r.id DESC"
    if conn.dialect.name == "postgresql":
        # One join of the touched customers to their records, each field the first non-null
        # value in priority order. A correlated seek per customer would need the index on
        # source_record.customer_id, and after a big pass's UPDATE of that column siyu.bulk has
        # rebuilt it in this transaction: PostgreSQL may not use an index built over
        # HOT-updated rows by the transaction that built it (pg_index.indcheckxmin), so each
        # seek became a scan of every record: 250k persons' first import had not finished
        # this statement after 13 minutes (bench/RESULTS.md).
        firsts = ", ".join(
            f"(array_agg(r.{f} ORDER BY {order}) FILTER (WHERE r.{f} IS NOT NULL))[1] AS {f}"
            for f in PROFILE_FIELDS
        )
        conn.execute(
            text(
                f"UPDATE customer SET {', '.join(f'{f} = p.{f}' for f in PROFILE_FIELDS)} "
                f"FROM (SELECT t.id, {firsts} FROM touched_customer t "
                "LEFT JOIN source_record r ON r.customer_id = t.id GROUP BY t.id) p "
                "WHERE customer.id = p.id"
            )
        )
        return
    # Per field, the first non-null value in priority order over the customer's records: each
    # a seek of the customer's few records by their customer_id index (a window over all the
    # touched customers' records sorted them five times: 3x slower at 1M records).
    sets = ", ".join(
        f"{f} = (SELECT r.{f} FROM source_record r WHERE r.customer_id = customer.id "
        f"AND r.{f} IS NOT NULL ORDER BY {order} LIMIT 1)"
        for f in PROFILE_FIELDS
    )
    conn.execute(text(f"UPDATE customer SET {sets} WHERE id IN (SELECT id FROM touched_customer)"))


class IdentityError(ValueError):
    """A user-facing identity problem; the message says what to do."""


def unmerge(
    engine: Engine,
    *,
    brand_id: int,
    id_type: str,
    value: str,
    k_guard: int,
    note: str | None = None,
    full: bool = False,
) -> ResolutionResult:
    """Stop `type:value` from merging anything and re-resolve: its customer splits (SPEC §4).

    `value` is the normalised value as a user types it; a phone or email is looked up by its
    hash (siyu.pii)."""
    with engine.begin() as conn:
        shown, value = value, pii.stored_value(pii.keyring(conn), id_type, value)
        ident = _identifier_id_or_raise(conn, brand_id, id_type, value, shown)
        exists = conn.execute(
            text(
                "SELECT 1 FROM identifier_override WHERE brand_id = :b AND id_type = :t AND value = :v"
            ),
            {"b": brand_id, "t": id_type, "v": value},
        ).first()
        if exists:
            raise IdentityError(f"{id_type}:{shown} is already unmerged; `relink` undoes that")
        conn.execute(
            text(
                "INSERT INTO identifier_override (brand_id, id_type, value, created_at, note) "
                "VALUES (:b, :t, :v, :now, :note)"
            ),
            {"b": brand_id, "t": id_type, "v": value, "now": datetime.now(UTC), "note": note},
        )
        return _resolve(conn, brand_id, k_guard, full=full, also=(ident,))


def relink(
    engine: Engine, *, brand_id: int, id_type: str, value: str, k_guard: int, full: bool = False
) -> ResolutionResult:
    """Undo an unmerge: the value merges again and the customers it joins become one."""
    with engine.begin() as conn:
        shown, value = value, pii.stored_value(pii.keyring(conn), id_type, value)
        gone = conn.execute(
            text(
                "DELETE FROM identifier_override WHERE brand_id = :b AND id_type = :t AND value = :v"
            ),
            {"b": brand_id, "t": id_type, "v": value},
        ).rowcount
        if not gone:
            raise IdentityError(f"{id_type}:{shown} was not unmerged; nothing to relink")
        ident = _identifier_id_or_raise(conn, brand_id, id_type, value, shown)
        return _resolve(conn, brand_id, k_guard, full=full, also=(ident,))


def _identifier_id_or_raise(
    conn: Connection, brand_id: int, id_type: str, value: str, shown: str
) -> int:
    found = conn.execute(
        text("SELECT id FROM identifier WHERE brand_id = :b AND id_type = :t AND value = :v"),
        {"b": brand_id, "t": id_type, "v": value},
    ).scalar_one_or_none()
    if found is None:
        raise IdentityError(f"no record carries {id_type}:{shown}")
    return int(found)


@dataclass(frozen=True)
class QuarantineRow:
    id_type: str
    value: str
    source: str
    record_count: int


def quarantined(conn: Connection, *, brand_id: int) -> list[QuarantineRow]:
    """Quarantined values with their per-source counts; phones and emails opened for display."""
    ring = pii.keyring(conn)
    rows = conn.execute(
        text(
            "SELECT q.id_type, q.value, i.value_sealed, q.source, q.record_count "
            "FROM quarantined_identifier q LEFT JOIN identifier i ON i.brand_id = q.brand_id "
            " AND i.id_type = q.id_type AND i.value = q.value WHERE q.brand_id = :b"
        ),
        {"b": brand_id},
    ).all()
    out = [
        QuarantineRow(t, pii.shown(ring, v, sealed) or v, src, n) for t, v, sealed, src, n in rows
    ]
    return sorted(out, key=lambda r: (r.id_type, r.value, -r.record_count, r.source))
