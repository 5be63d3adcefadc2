"""Saved segments: create, update, list, and refresh membership with entry/exit events.

A refresh computes the members in the warehouse (one statement), then — in one operational
transaction that first bumps the segment's refresh counter (which serialises concurrent
refreshes of a segment) — reads the current members, diffs the two sets in DuckDB, writes the
entries and exits in bulk and records one `segment.entered` / `segment.exited` event per
customer, keyed `segment.<entered|exited>:<segment>:<customer>:<refresh>` so the SOP engine
sees each change exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session

from siyu.bulk import temp_table
from siyu.metrics.constants import Constants
from siyu.metrics.scope import Scope
from siyu.segments import evaluate
from siyu.segments.models import Segment
from siyu.segments.rules import Node, RuleError, parse


class SegmentError(ValueError):
    """A request about segments that cannot be done; the message says why."""


@dataclass
class RefreshResult:
    segment: str
    refresh_no: int
    members: int
    entered: int
    exited: int


def parse_or_raise(rule: Any) -> Node:
    """The parsed rule; a SegmentError names the failing node."""
    try:
        return parse(rule)
    except RuleError as e:
        raise SegmentError(f"invalid rule — {e}") from None


def get_by_name_or_raise(conn: Connection, *, brand_id: int, name: str) -> Segment:
    with Session(bind=conn) as session:
        seg = session.scalars(
            select(Segment).where(Segment.brand_id == brand_id, Segment.name == name)
        ).one_or_none()
        if seg is not None:
            session.expunge(seg)
            return seg
    known = list_names(conn, brand_id=brand_id)
    hint = f" (saved: {', '.join(known)})" if known else " (none saved yet)"
    raise SegmentError(f"no segment named {name!r}{hint}")


def get_or_raise(conn: Connection, *, brand_id: int, name_or_id: str) -> Segment:
    """The segment of that name or, for digits no segment is named, of that id."""
    try:
        return get_by_name_or_raise(conn, brand_id=brand_id, name=name_or_id)
    except SegmentError:
        if not (name_or_id.isascii() and name_or_id.isdigit() and len(name_or_id) < 19):
            raise
        with Session(bind=conn) as session:
            seg = session.get(Segment, int(name_or_id))
            if seg is None or seg.brand_id != brand_id:
                raise
            session.expunge(seg)
            return seg


def current_members(
    conn: Connection, *, brand_id: int, within: tuple[str, dict[str, Any]] | None
) -> dict[int, int]:
    """Members at the last refresh per segment id, counting only the customers the subquery
    `within` selects (siyu.customers.service.readable_customer_ids; None: everyone)."""
    where, params = "", {"b": brand_id}
    if within is not None:
        where = f" AND m.customer_id IN ({within[0]})"
        params.update(within[1])
    rows = conn.execute(
        text(
            "SELECT m.segment_id, count(*) FROM segment_member m JOIN segment s "
            "ON s.id = m.segment_id WHERE s.brand_id = :b AND m.exited_at IS NULL"
            f"{where} GROUP BY m.segment_id"
        ),
        params,
    )
    return {int(sid): int(n) for sid, n in rows}


def list_names(conn: Connection, *, brand_id: int) -> list[str]:
    return list(
        conn.execute(
            select(Segment.name).where(Segment.brand_id == brand_id).order_by(Segment.name)
        ).scalars()
    )


def list_all(conn: Connection, *, brand_id: int) -> list[Segment]:
    with Session(bind=conn) as session:
        segs = list(
            session.scalars(
                select(Segment).where(Segment.brand_id == brand_id).order_by(Segment.name)
            )
        )
        for s in segs:
            session.expunge(s)
        return segs


def create(
    conn: Connection, *, brand_id: int, name: str, rule: Any, description: str | None = None
) -> int:
    """Save a validated rule under a new name; its id."""
    parse_or_raise(rule)
    if not name.strip():
        raise SegmentError("a segment needs a name")
    if name in list_names(conn, brand_id=brand_id):
        raise SegmentError(f"a segment named {name!r} exists; use `siyu segments update`")
    now = datetime.now(UTC)
    return int(
        conn.execute(
            Segment.__table__.insert()
            .values(
                brand_id=brand_id,
                name=name,
                description=description,
                rule=rule,
                version=1,
                created_at=now,
                updated_at=now,
                refresh_no=0,
                member_count=0,
            )
            .returning(Segment.id)
        ).scalar_one()
    )


def update_rule(conn: Connection, *, brand_id: int, name: str, rule: Any) -> int:
    """Replace a segment's rule; the new version number. Members change at the next refresh."""
    parse_or_raise(rule)
    seg = get_by_name_or_raise(conn, brand_id=brand_id, name=name)
    conn.execute(
        update(Segment)
        .where(Segment.id == seg.id)
        .values(rule=rule, version=Segment.version + 1, updated_at=datetime.now(UTC))
    )
    return seg.version + 1


def refresh(
    engine: Engine,
    con: duckdb.DuckDBPyConnection,
    *,
    scope: Scope,
    name: str,
    constants: Constants,
    as_of: datetime | None = None,
) -> RefreshResult:
    """Recompute a saved segment's members as of `as_of` (default now) and record who entered
    and who left."""
    now = datetime.now(UTC)
    as_of = as_of or now
    with engine.connect() as conn:
        seg = get_by_name_or_raise(conn, brand_id=scope.brand_id, name=name)
    ev = evaluate.prepare(
        con, parse_or_raise(seg.rule), scope=scope, as_of=as_of, constants=constants
    )
    new = evaluate.member_ids(con, ev)
    with engine.begin() as conn:
        refresh_no = int(
            conn.execute(
                update(Segment)
                .where(Segment.id == seg.id)
                .values(refresh_no=Segment.refresh_no + 1)
                .returning(Segment.refresh_no)
            ).scalar_one()
        )
        old = np.array(
            conn.execute(
                text(
                    "SELECT customer_id FROM segment_member "
                    "WHERE segment_id = :s AND exited_at IS NULL"
                ),
                {"s": seg.id},
            )
            .scalars()
            .all(),
            dtype=np.int64,
        )
        entered, exited = _diff(con, new, old)
        payload = json.dumps(
            {
                "segment_id": seg.id,
                "segment": seg.name,
                "version": seg.version,
                "refresh": refresh_no,
            },  # fmt: skip
            ensure_ascii=False,
        )
        common = {"s": seg.id, "no": refresh_no, "now": now, "b": scope.brand_id, "p": payload}
        if len(entered):
            temp_table(
                conn, "segment_change", [("customer_id", "BIGINT")], [(int(c),) for c in entered]
            )
            conn.execute(
                text(
                    "INSERT INTO segment_member (segment_id, customer_id, entered_at, "
                    "entered_refresh) SELECT :s, customer_id, :now, :no FROM segment_change"
                ),
                common,
            )
            _events(conn, "segment.entered", common)
        if len(exited):
            temp_table(
                conn, "segment_change", [("customer_id", "BIGINT")], [(int(c),) for c in exited]
            )
            conn.execute(
                text(
                    "UPDATE segment_member SET exited_at = :now, exited_refresh = :no "
                    "WHERE segment_id = :s AND exited_at IS NULL "
                    "AND customer_id IN (SELECT customer_id FROM segment_change)"
                ),
                common,
            )
            _events(conn, "segment.exited", common)
        conn.execute(text("DROP TABLE IF EXISTS segment_change"))
        conn.execute(
            update(Segment)
            .where(Segment.id == seg.id)
            .values(refreshed_at=now, member_count=len(new))
        )
    return RefreshResult(seg.name, refresh_no, len(new), len(entered), len(exited))


def _diff(
    con: duckdb.DuckDBPyConnection, new: np.ndarray, old: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(entered, exited) customer ids: set differences computed in DuckDB."""
    con.register("_seg_new", {"customer_id": new})
    con.register("_seg_old", {"customer_id": old})
    try:
        entered = con.execute(
            "SELECT customer_id FROM _seg_new EXCEPT SELECT customer_id FROM _seg_old ORDER BY 1"
        ).fetchnumpy()["customer_id"]
        exited = con.execute(
            "SELECT customer_id FROM _seg_old EXCEPT SELECT customer_id FROM _seg_new ORDER BY 1"
        ).fetchnumpy()["customer_id"]
    finally:
        con.unregister("_seg_new")
        con.unregister("_seg_old")
    return np.asarray(entered, dtype=np.int64), np.asarray(exited, dtype=np.int64)


def _events(conn: Connection, kind: str, params: dict[str, Any]) -> None:
    payload = "CAST(:p AS JSON)" if conn.dialect.name == "postgresql" else ":p"
    conn.execute(
        text(
            "INSERT INTO event (brand_id, type, idempotency_key, customer_id, occurred_at, "
            f"recorded_at, payload) SELECT :b, '{kind}', "
            f"'{kind}:' || CAST(:s AS VARCHAR(20)) || ':' || CAST(customer_id AS VARCHAR(20)) "
            f"|| ':' || CAST(:no AS VARCHAR(20)), customer_id, :now, :now, {payload} "
            "FROM segment_change"
        ),
        params,
    )
