"""An incremental identity pass gives exactly what a full pass gives (SPEC §4), on both engines.

Two brands of one database receive the same random batches of records and orders through
`siyu import`, and the same unmerges and relinks. One brand's passes are incremental (no
overlap, so they really see only what changed); the other's are full passes. After every
step both brands must agree on everything a user can see: which records are one customer,
which ids survive and where merged-away ids redirect, the merge and split history, every
identifier's status and customer, the quarantine list, the profiles and the explanations.
Customer ids are global, so each brand's ids are compared by their rank within the brand.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from siyu.config import Settings
from siyu.customers import service as customer_service
from siyu.db import make_engine
from siyu.identity import planner
from siyu.identity import service as identity_service
from siyu.identity.normalize import normalize
from siyu.imports import service as import_service
from siyu.migrate import upgrade
from siyu.orgs import service as org_service
from tests.factories import write_dir

K = 2  # a small K makes quarantines (and values falling back under K) frequent
PHONES = [f"1380013800{i}" for i in range(5)]
UNIONIDS = [f"U{i}" for i in range(4)]
MEMBERS = [f"M{i}" for i in range(4)]
NICKS = [f"nick{i}" for i in range(3)]
SOURCES = ["pos", "mp", "wecom"]

record_row = st.tuples(
    st.integers(0, 11),  # record key: a later batch may change an earlier record
    st.sampled_from(SOURCES),
    st.one_of(st.none(), st.sampled_from(PHONES)),
    st.one_of(st.none(), st.sampled_from(UNIONIDS)),
    st.one_of(st.none(), st.sampled_from(MEMBERS)),
)
order_ref = st.one_of(
    st.tuples(st.just("phone"), st.sampled_from(PHONES)),
    st.tuples(st.just("member_no"), st.sampled_from(MEMBERS)),
    st.tuples(st.just("tmall_nick"), st.sampled_from(NICKS)),  # only orders name these
)
operator_step = st.tuples(
    st.sampled_from(["unmerge", "relink"]),
    st.one_of(
        st.tuples(st.just("phone"), st.sampled_from(PHONES)),
        st.tuples(st.just("unionid"), st.sampled_from(UNIONIDS)),
    ),
)
batch = st.tuples(
    st.lists(record_row, max_size=6),
    st.lists(order_ref, max_size=3),
    st.lists(operator_step, max_size=2),
)


def _csv(rows: list[tuple[int, str, str | None, str | None, str | None]]) -> str:
    latest = {key: row for key, *row in rows}  # one row per record in a file
    lines = ["record_id,source,phone,unionid,member_no"]
    for key, (source, phone, unionid, member) in sorted(latest.items()):
        lines.append(f"R{key},{source},{phone or ''},{unionid or ''},{member or ''}")
    return "\n".join(lines) + "\n"


def _orders(refs: list[tuple[str, str]], step: int) -> str:
    lines = ["order_id,platform,id_type,id_value,created_at,amount_fen,status"]
    for n, (ty, value) in enumerate(refs):
        lines.append(f"O{step}_{n},tmall,{ty},{value},2025-07-01T10:00:00+08:00,1000,paid")
    return "\n".join(lines) + "\n"


def _state(engine: Engine, brand_id: int) -> dict[str, object]:
    """Everything a user can see of the brand's identities, customer ids as ranks."""
    with engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                text("SELECT id FROM customer WHERE brand_id = :b ORDER BY id"), {"b": brand_id}
            )
        ]
        rank = {cid: n for n, cid in enumerate(ids)}
        rank[None] = None

        def q(sql: str) -> list[tuple[object, ...]]:
            return [tuple(r) for r in conn.execute(text(sql), {"b": brand_id})]

        keys = dict(q("SELECT id, record_key FROM source_record WHERE brand_id = :b"))
        customers = sorted(
            (rank[c], rank[m], name)
            for c, m, name in q(
                "SELECT id, merged_into_id, name_hash FROM customer WHERE brand_id = :b"
            )
        )
        views = {}
        for cid, merged, _ in q(
            "SELECT id, merged_into_id, name_hash FROM customer WHERE brand_id = :b"
        ):
            if merged is None:
                view = customer_service.get_view(conn, brand_id=brand_id, customer_id=cid)
                views[rank[cid]] = (
                    sorted(keys[r.id] for r in view.records),
                    [(keys[link.frm], keys[link.to], link.via) for link in view.links],
                    sorted(view.not_merging),
                    view.orders.orders,
                )
        return {
            "records": sorted(
                (key, rank[c])
                for key, c in q(
                    "SELECT record_key, customer_id FROM source_record WHERE brand_id = :b"
                )
            ),
            "customers": customers,
            "identifiers": sorted(
                (ty, v, st_, rank[c])
                for ty, v, st_, c in q(
                    "SELECT id_type, value, status, customer_id FROM identifier WHERE brand_id = :b"
                )
            ),
            "quarantine": sorted(
                q(
                    "SELECT id_type, value, source, record_count FROM quarantined_identifier "
                    "WHERE brand_id = :b"
                )
            ),
            "history": sorted(
                (kind, rank[s], rank[o])
                for kind, s, o in q(
                    "SELECT kind, survivor_id, other_id FROM customer_merge WHERE brand_id = :b"
                )
            ),
            "views": views,
        }


def _outcome(result: identity_service.ResolutionResult | None) -> tuple[int, ...] | None:
    if result is None:
        return None
    return (
        result.records,
        result.customers,
        result.created,
        result.merged,
        result.split,
        result.quarantined,
    )


@hsettings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(batch, min_size=1, max_size=4))
def test_incremental_passes_equal_full_passes(
    settings: Settings, tmp_path: Path, batches: list
) -> None:
    engine = make_engine(settings)
    upgrade(engine)
    with engine.begin() as conn:
        n = conn.execute(text("SELECT count(*) FROM brand")).scalar_one()
        brands = [
            org_service.get_or_create_brand(
                conn, code=f"{kind}{n}", name=kind, timezone="Asia/Shanghai"
            )
            for kind in ("incremental", "full")
        ]
    full_resolve = functools.partial(identity_service.resolve, full=True)
    seen: dict[int, list[identity_service.ResolutionResult]] = {b: [] for b in brands}
    try:
        # The incremental brand's passes stay incremental however much of it a batch changes
        # (a real brand turns to a full pass past half of it: siyu.identity.planner).
        with (
            mock.patch.object(identity_service, "OVERLAP", timedelta(0)),
            mock.patch.object(planner, "FULL_PAST", 1.0),
        ):
            for step, (records, orders, operator) in enumerate(batches):
                files = {"records.csv": _csv(records)} if records else {}
                if orders:
                    files["orders.csv"] = _orders(orders, step)
                folder = write_dir(tmp_path / f"b{n}_{step}", files)
                outcomes: list[object] = []
                for brand_id, full in zip(brands, (False, True), strict=True):
                    passes: list[identity_service.ResolutionResult] = []
                    if files:
                        with mock.patch.object(
                            import_service.identity_service,
                            "resolve",
                            full_resolve if full else identity_service.resolve,
                        ):
                            summary = import_service.import_directory(
                                engine,
                                folder,
                                brand_id=brand_id,
                                timezone="Asia/Shanghai",
                                k_guard=K,
                                report_dir=tmp_path / "reports",
                            )
                        assert summary.identity is not None
                        passes.append(summary.identity)
                    for action, (ty, value) in operator:
                        change = getattr(identity_service, action)
                        try:
                            result = change(
                                engine,
                                brand_id=brand_id,
                                id_type=ty,
                                value=normalize(ty, value),
                                k_guard=K,
                                full=full,
                            )
                            passes.append(result)
                        except identity_service.IdentityError as e:
                            outcomes.append(str(e))
                    outcomes += [_outcome(p) for p in passes]
                    seen[brand_id] += passes
                half = len(outcomes) // 2
                assert outcomes[:half] == outcomes[half:]
                assert _state(engine, brands[0]) == _state(engine, brands[1])
    finally:
        engine.dispose()
    # The incremental brand's passes after its first really were incremental.
    assert all(p.full for p in seen[brands[1]])
    assert not any(p.full for p in seen[brands[0]][1:])


def test_resolve_command_runs_an_incremental_or_a_full_pass(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siyu.cli import app

    src = write_dir(
        tmp_path / "in",
        {
            "records.csv": "record_id,source,phone,unionid\nA,pos,13800138000,\nB,mp,13800138000,U1\n"
        },
    )
    runner = CliRunner()
    data = str(tmp_path / "data")
    assert runner.invoke(app, ["--data-dir", data, "import", str(src)]).exit_code == 0
    again = runner.invoke(app, ["--data-dir", data, "identity", "resolve"])
    assert again.exit_code == 0, again.output
    # The import's own pass ran moments ago: the overlap re-reads its two records, no more.
    said = " ".join(again.output.split())  # Rich wraps at the terminal width
    assert "(2 records touched since the last pass): 2 records → 1 customers; 0 created" in said
    full = runner.invoke(app, ["--data-dir", data, "identity", "resolve", "--full"])
    assert full.exit_code == 0, full.output
    assert "(every record): 2 records → 1 customers; 0 created" in " ".join(full.output.split())


def test_a_renamed_record_renames_its_customer_on_the_next_pass(settings: Settings) -> None:
    """A WeCom edit (or a re-import) changes a record's name without changing who it belongs
    to; the customer's profile must follow on the next incremental pass."""
    from siyu import pii
    from siyu.identity.records import upsert_record
    from siyu.runtime import open_brand

    engine, brand = open_brand(settings)

    def put(key: str, source: str, name: str, **ids: str) -> None:
        with engine.begin() as conn:
            upsert_record(conn, brand_id=brand, record_key=key, source=source, identifiers=ids, name=name)  # fmt: skip

    def name_of(key: str) -> str:
        with engine.connect() as conn:
            sealed = conn.execute(
                text(
                    "SELECT c.name_sealed FROM customer c "
                    "JOIN source_record r ON r.customer_id = c.id WHERE r.record_key = :k"
                ),
                {"k": key},
            ).scalar_one()
        return pii.keyring(engine).open_(sealed)

    put("wecom:wmA", "wecom", "小王", external_userid="wmA", unionid="oU1")
    put("wecom:wmB", "wecom", "阿李", external_userid="wmB")
    identity_service.resolve(engine, brand_id=brand)
    assert name_of("wecom:wmA") == "小王"
    put("wecom:wmA", "wecom", "王芳", external_userid="wmA")  # edit_external_contact
    identity_service.resolve(engine, brand_id=brand)
    assert (name_of("wecom:wmA"), name_of("wecom:wmB")) == ("王芳", "阿李")
    engine.dispose()
