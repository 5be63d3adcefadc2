"""The SOP scheduler: one tick fires triggers, enrolls, and advances every due journey.

Exactly once without a distributed transaction: every effect of a step is idempotent by key —
outbox rows by `sop:{key}:{version}:{step}:{subject}:{occurrence}`, staff tasks by the same
key, tags by (customer, tag) — and a journey moves past a step only after its effects are
stored. A tick that dies in between redoes the step, and the keys make the redo a no-op.
On PostgreSQL a tick holds an advisory lock, so several `siyu sop run` processes take turns;
on SQLite the database's single writer serialises them.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    and_,
    cast,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from siyu.audit import service as audit
from siyu.automation import outbox
from siyu.bulk import temp_table
from siyu.config import Settings
from siyu.db import advisory_key, utcnow
from siyu.segments import evaluate
from siyu.segments import service as segment_service
from siyu.segments.rules import parse
from siyu.sop import fanout as set_based
from siyu.sop import guards, lookup, send, service, triggers
from siyu.sop.definition import Definition, when_rule
from siyu.sop.models import Sop, SopEnrollment, StaffTask
from siyu.sop.render import render
from siyu.tags import service as tag_service

MAX_ROUNDS = 64  # sweeps per tick (a journey without waits finishes in one tick)
BATCH = 20_000


@dataclass
class TickReport:
    fired: Counter[str] = field(default_factory=Counter)  # sop key → new journeys
    holdout: int = 0
    steps: Counter[str] = field(default_factory=Counter)  # step kind → journeys through it
    enqueued: int = 0
    tasks: int = 0
    notes: Counter[str] = field(default_factory=Counter)  # why someone was not reached
    busy: bool = False  # another process held the tick
    errors: dict[str, str] = field(default_factory=dict)  # sop key → why it could not fire


class Runtime:
    """What a tick reads besides the store: brand settings and, when a rule needs it, the
    warehouse (synced once per tick, on first use)."""

    def __init__(self, settings: Settings, engine: Engine, brand_id: int, now: datetime) -> None:
        self.settings = settings
        self.engine = engine
        self.brand_id = brand_id
        self.tz = settings.timezone
        self.now = now
        self._wh: Any = None
        self._defs: dict[tuple[int, int], Definition] = {}

    def close(self) -> None:
        if self._wh is not None:
            self._wh.con.close()

    def members(self, rule: dict[str, Any], as_of: datetime) -> set[int]:
        """Who a segment rule selects as of `as_of` (the segments compiler, in the warehouse)."""
        if self._wh is None:
            from siyu.warehouse.service import open_synced

            self._wh = open_synced(self.settings)
        from siyu.metrics.scope import Scope

        ev = evaluate.prepare(
            self._wh.con, parse(rule), scope=Scope(self.brand_id, self.tz), as_of=as_of,
            constants=self.settings.metric_constants,
        )  # fmt: skip
        return {int(i) for i in evaluate.member_ids(self._wh.con, ev)}

    def audience_rule(self, defn: Definition) -> dict[str, Any] | None:
        a = defn.audience
        if a.rule is not None:
            return a.rule
        if a.segment is not None:
            with self.engine.connect() as conn:
                seg = segment_service.get_by_name_or_raise(
                    conn, brand_id=self.brand_id, name=a.segment
                )
            return seg.rule
        return None

    def definition(self, conn: Connection, sop_id: int, version: int) -> Definition:
        key = (sop_id, version)
        if key not in self._defs:
            self._defs[key] = service.definition_of(conn, sop_id, version)
        return self._defs[key]

    def guards(self, defn: Definition) -> guards.Effective:
        return guards.effective(dict(self.settings.sop), defn.guards)


def lock_key(conn: Connection, brand_id: int) -> int:
    """The advisory lock a tick of this brand holds on PostgreSQL."""
    return advisory_key(conn, "sop-tick", brand_id)


def tick(
    settings: Settings,
    engine: Engine,
    brand_id: int,
    now: datetime | None = None,
    *,
    fanout: bool = True,
) -> TickReport:
    """One pass over the brand's active SOPs: fire them (enroll their journeys), advance every
    due journey, then fan out the fires that siyu.sop.fanout takes (a one-step scheduled send
    to a customer audience; `fanout=False` sends them down the per-journey path too).

    A fan-out runs in the first sweep where its journeys would have been: after the journeys
    enrolled before it (older ones, earlier SOPs), before later SOPs' — so when several SOPs
    send to the same customers in one tick, the caps pick the same winners on both paths."""
    now = now or utcnow()
    report = TickReport()
    lock = None
    if engine.dialect.name == "postgresql":
        lock = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        key = lock_key(lock, brand_id)
        if not lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            lock.close()
            report.busy = True
            return report
    rt = Runtime(settings, engine, brand_id, now)
    try:
        with engine.connect() as conn:
            sops = service.load(
                conn,
                select(Sop)
                .where(Sop.brand_id == brand_id, Sop.status == "active")
                .order_by(Sop.id),
            )
        later: list[Later] = []
        for sop in sops:
            try:
                if (big := _fire(rt, sop, report, fanout)) is not None:
                    later.append(Later(_watermark(rt), sop, *big))
            except segment_service.SegmentError as e:  # e.g. its segment was deleted since
                report.errors[sop.key] = str(e)
        _advance(rt, report, later)
    finally:
        rt.close()
        if lock is not None:
            lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            lock.close()
    return report


# ----- enrolling -----------------------------------------------------------------------------


def _fire(
    rt: Runtime, sop: Sop, report: TickReport, fanout: bool
) -> tuple[Definition, triggers.Fired] | None:
    """Enroll the SOP's new journeys and store its trigger state; a fire the set-based
    fan-out takes is returned instead, untouched, for after the sweep."""
    with rt.engine.connect() as conn:
        defn = rt.definition(conn, sop.id, sop.version)
        fired = triggers.fire(conn, sop, defn, now=rt.now, tz=rt.tz)
    if fanout and set_based.eligible(defn, fired):
        return defn, fired
    rule = rt.audience_rule(defn)
    g = rt.guards(defn)
    hits = list(fired.hits)
    if defn.trigger.kind == "schedule":
        for at in fired.fires:
            occ = triggers.occurrence_of(at)
            if defn.audience.groups is not None:
                with rt.engine.connect() as conn:
                    grps = lookup.groups(conn, rt.brand_id, defn.audience.groups.stores)
                hits += [triggers.Hit(None, occ, at, g_["chat_id"]) for g_ in grps]
            else:
                who = rt.members(rule, at) if rule is not None else _everyone(rt)
                hits += [triggers.Hit(c, occ, at) for c in sorted(who)]
    elif rule is not None and hits:
        inside = rt.members(rule, rt.now)
        hits = [h for h in hits if h.customer_id in inside]
    rows = []
    for h in hits:
        held = h.customer_id is not None and guards.in_holdout(defn.key, h.customer_id, g.holdout)
        subject = f"g:{h.chat_id}" if h.chat_id else f"c:{h.customer_id}"
        rows.append((subject, h.customer_id, h.chat_id, h.occurrence, lookup_ts(h.at), held))
    with rt.engine.begin() as conn:
        new = _insert_enrollments(conn, rt, sop, rows)
        conn.execute(update(Sop).where(Sop.id == sop.id).values(**fired.state))
    report.fired[sop.key] += new[0]
    report.holdout += new[1]
    return None


@dataclass
class Later:
    """A fire for siyu.sop.fanout, run once the sweep has passed journey id `after`."""

    after: int
    sop: Sop
    defn: Definition
    fired: triggers.Fired


def _watermark(rt: Runtime) -> int:
    with rt.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT coalesce(max(id), 0) FROM sop_enrollment")).scalar() or 0
        )


def _fan(rt: Runtime, f: Later, report: TickReport) -> None:
    try:
        set_based.run(rt, f.sop, f.defn, f.fired, report)
    except segment_service.SegmentError as e:
        report.errors[f.sop.key] = str(e)


def lookup_ts(at: datetime) -> datetime:
    return at.astimezone(ZoneInfo("UTC"))


def _everyone(rt: Runtime) -> set[int]:
    """Every live customer of the brand (a schedule without an audience)."""
    with rt.engine.connect() as conn:
        return {int(r[0]) for r in conn.execute(
            text("SELECT id FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"),
            {"b": rt.brand_id},
        )}  # fmt: skip


def _insert_enrollments(
    conn: Connection, rt: Runtime, sop: Sop, rows: list[tuple[Any, ...]]
) -> tuple[int, int]:
    """Insert journeys that do not exist yet; (new, of which in the holdout)."""
    if not rows:
        return 0, 0
    temp_table(
        conn, "sop_new",
        [("subject", "VARCHAR(100)"), ("customer_id", "BIGINT"), ("chat_id", "VARCHAR(64)"),
         ("occurrence", "VARCHAR(64)"), ("due_at", "VARCHAR(40)"), ("holdout", "INTEGER")],
        [(s, c, ch, o, lookup.ts(conn, at) if conn.dialect.name != "postgresql" else at.isoformat(),
          1 if h else 0) for s, c, ch, o, at, h in rows],
        keyed=False,
    )  # fmt: skip
    pg = conn.dialect.name == "postgresql"
    due = "CAST(due_at AS TIMESTAMPTZ)" if pg else "due_at"
    flag = "holdout = 1"
    res = conn.execute(
        text(
            "INSERT INTO sop_enrollment (brand_id, sop_id, version, subject, customer_id, chat_id, "
            "occurrence, enrolled_at, holdout, status, step_index, due_at) "
            f"SELECT :b, :s, :v, subject, customer_id, chat_id, occurrence, :now, {flag}, "
            f"CASE WHEN {flag} THEN 'holdout' ELSE 'active' END, 0, {due} FROM sop_new "
            "WHERE true ON CONFLICT (sop_id, version, subject, occurrence) DO NOTHING"
        ).execution_options(preserve_rowcount=True),
        {"b": rt.brand_id, "s": sop.id, "v": sop.version, "now": lookup.ts(conn, rt.now)},
    )
    new = int(res.rowcount or 0)
    held = 0
    if new:
        held = int(conn.execute(
            text("SELECT count(*) FROM sop_enrollment WHERE sop_id = :s AND holdout "
                 "AND enrolled_at = :now"), {"s": sop.id, "now": lookup.ts(conn, rt.now)},
        ).scalar() or 0)  # fmt: skip
    conn.execute(text("DROP TABLE sop_new"))
    return new, held


# ----- advancing -----------------------------------------------------------------------------


@dataclass
class Move:
    step_index: int
    due_at: datetime
    note: str | None = None


def _advance(rt: Runtime, report: TickReport, later: list[Later] | None = None) -> None:
    """Run the due journeys' steps in sweeps: each sweep reads the due ids once, then works
    through them in batches of BATCH by primary key (re-checking each row is still due). A
    journey whose next step needs no wait goes on in the next sweep, up to MAX_ROUNDS sweeps
    a tick. Reading the ids once keeps a sweep linear in the number of due journeys.

    The first sweep runs each fan-out of `later` when it has passed the ids enrolled before
    that SOP fired — where the fan-out's journeys would have been."""
    waiting = list(later or [])
    due = due_journeys(rt.brand_id, rt.now)
    pg = rt.engine.dialect.name == "postgresql"
    for _ in range(MAX_ROUNDS):
        with rt.engine.connect() as conn:
            ids = list(
                conn.execute(
                    select(SopEnrollment.id)
                    .join(Sop, Sop.id == SopEnrollment.sop_id)
                    .where(due)
                    .order_by(SopEnrollment.id)
                ).scalars()
            )
        for part in _batches(ids, [f.after for f in waiting]):
            while waiting and waiting[0].after < part[0]:
                _fan(rt, waiting.pop(0), report)
            these = _among(part, pg)
            with rt.engine.connect() as conn:
                rows = conn.execute(
                    select(SopEnrollment.id, SopEnrollment.sop_id, SopEnrollment.version,
                           SopEnrollment.step_index, SopEnrollment.customer_id,
                           SopEnrollment.chat_id, SopEnrollment.occurrence, SopEnrollment.due_at)
                    .join(Sop, Sop.id == SopEnrollment.sop_id)
                    .where(due, these)
                    .order_by(SopEnrollment.id)
                ).all()  # fmt: skip
            batches: dict[tuple[int, int, int], list[Any]] = defaultdict(list)
            for r in rows:
                batches[(r.sop_id, r.version, r.step_index)].append(r)
            for (sop_id, version, step), group in batches.items():
                with rt.engine.connect() as conn:
                    defn = rt.definition(conn, sop_id, version)
                moves = _run_step(rt, defn, version, step, group, report)
                _save(rt, defn, moves)
        while waiting:
            _fan(rt, waiting.pop(0), report)
        if not ids:
            return


def due_journeys(brand_id: int, now: datetime) -> Any:
    """The journeys a sweep runs: active, due, of an active SOP (join `Sop`)."""
    return and_(
        SopEnrollment.brand_id == brand_id,
        # a literal, not a bound value: the partial index ix_sop_enrollment_due (WHERE
        # status = 'active') stays usable in a generic plan (psycopg prepares a statement
        # run five times on a connection, and PostgreSQL may then plan without the values)
        SopEnrollment.status == literal_column("'active'"),
        SopEnrollment.due_at <= now,
        Sop.status == "active",
    )


def _batches(ids: list[int], cuts: list[int]) -> list[list[int]]:
    """`ids` (ascending) in runs of at most BATCH, also cut after each id in `cuts`."""
    out: list[list[int]] = []
    bounds = sorted({bisect_right(ids, c) for c in cuts} | {0, len(ids)})
    for lo, hi in itertools.pairwise(bounds):
        out += [ids[i : min(i + BATCH, hi)] for i in range(lo, hi, BATCH)]
    return out


def _among(ids: list[int], pg: bool) -> Any:
    """SopEnrollment.id in `ids`: on PostgreSQL one array parameter (id = ANY), not thousands
    of bound values."""
    if pg:
        return SopEnrollment.id == func.any(cast(ids, ARRAY(BigInteger)))
    return SopEnrollment.id.in_(ids)


def _save(rt: Runtime, defn: Definition, moves: dict[int, Move]) -> None:
    """Move the journeys on: one UPDATE per distinct (step, due, note), ids in chunks."""
    end = len(defn.steps)
    same: dict[tuple[int, datetime, str | None], list[int]] = defaultdict(list)
    for jid, m in moves.items():
        same[(m.step_index, m.due_at, m.note[:200] if m.note else None)].append(jid)
    pg = rt.engine.dialect.name == "postgresql"
    chunk = 50_000 if pg else 5000
    with rt.engine.begin() as conn:
        for (step, due, note), ids in same.items():
            values: dict[str, Any] = {"step_index": step, "due_at": due}
            if step >= end:
                values["status"] = "done"
            if note:
                values["note"] = note
            for i in range(0, len(ids), chunk):
                part = ids[i : i + chunk]
                conn.execute(update(SopEnrollment).where(_among(part, pg)).values(**values))


def _run_step(
    rt: Runtime, defn: Definition, version: int, step: int, rows: list[Any], report: TickReport
) -> dict[int, Move]:
    s = defn.steps[step]
    report.steps[s.kind] += len(rows)
    nxt = {r.id: Move(step + 1, r.due_at) for r in rows}
    journeys = [send.Journey(r.id, r.customer_id, r.chat_id, r.occurrence) for r in rows]
    ids = sorted({r.customer_id for r in rows if r.customer_id is not None})
    if s.wait is not None:
        w = s.wait
        for r in rows:
            nxt[r.id] = Move(step + 1, wait_until(r.due_at, w, rt.tz))
    elif s.branch is not None:
        yes = rt.members(s.branch.when, rt.now) & set(ids)
        for r in rows:
            label = s.branch.then if r.customer_id in yes else s.branch.else_
            nxt[r.id] = Move(defn.target(step, label), r.due_at)
    elif s.send is not None:
        g = rt.guards(defn)
        with rt.engine.connect() as conn:
            if defn.for_groups:
                plan = send.plan_groups(conn, brand_id=rt.brand_id, tz=rt.tz, defn=defn,
                                        version=version, step=step, journeys=journeys, g=g,
                                        now=rt.now)  # fmt: skip
            else:
                plan = send.plan_customers(conn, brand_id=rt.brand_id, tz=rt.tz, defn=defn,
                                           version=version, step=step, journeys=journeys,
                                           variant_of=choose_variants(rt, s.send, ids), g=g,
                                           now=rt.now)  # fmt: skip
        report.enqueued += _enqueue(rt, defn, version, step, s.send.channel, plan.items)
        for jid, note in plan.notes.items():
            nxt[jid].note = note
            report.notes[note.split(":")[0]] += 1
    elif s.tag is not None or s.untag is not None:
        t = s.tag or s.untag
        assert t is not None
        with rt.engine.begin() as conn:
            tag_id = tag_service.get_or_create_tag(
                conn, brand_id=rt.brand_id, group=t.group, name=t.name
            )
            fn = tag_service.tag_customers if s.tag is not None else tag_service.untag_customers
            fn(
                conn,
                brand_id=rt.brand_id,
                tag_id=tag_id,
                customer_ids=ids,
                by=f"sop:{defn.key}",
                source="sop",
            )
    elif s.task is not None:
        report.tasks += _tasks(rt, defn, version, step, journeys, nxt)
    elif s.webhook is not None:
        items = []
        with rt.engine.connect() as conn:
            profiles = lookup.profiles(conn, ids)
        for j in journeys:
            ctx = {"customer": profiles.get(j.customer_id or 0, {}), "sop": {"key": defn.key, "name": defn.name},
                   "occurrence": j.occurrence, "staff": send.EMPTY_STAFF, "store": send.EMPTY_STORE}  # fmt: skip
            try:
                body = {
                    k: render(v, ctx) if isinstance(v, str) else v
                    for k, v in s.webhook.body.items()
                }
            except Exception as e:
                nxt[j.id].note = f"render error: {e}"
                continue
            items.append(outbox.Enqueue(
                send.dedup_key(defn, version, step, j), "webhook", j.customer_id,
                {"url": s.webhook.url, "body": body, "sop": {"key": defn.key, "version": version, "step": step}},
            ))  # fmt: skip
        report.enqueued += _enqueue(rt, defn, version, step, "webhook", items)
    return nxt


def _enqueue(
    rt: Runtime, defn: Any, version: int, step: int, channel: str, items: list[outbox.Enqueue]
) -> int:
    """Write the step's sends to the outbox; each step and tick that sends anything is one
    audit row with the message count (SPEC §12: every send is audited)."""
    new = outbox.enqueue(rt.engine, rt.brand_id, items)
    if new:
        with rt.engine.begin() as conn:
            audit.record(
                conn, brand_id=rt.brand_id, actor=f"sop:{defn.key}", action="send",
                target=f"sop:{defn.key}:v{version}:step{step}",
                detail={"channel": channel, "messages": new},
            )  # fmt: skip
    return new


def choose_variants(rt: Runtime, s: Any, ids: list[int]) -> dict[int, int]:
    """customer → index of the first variant whose `when` selects them (the default last)."""
    out: dict[int, int] = {}
    left = set(ids)
    for i, v in enumerate(s.variants):
        if not left:
            break
        if v.when is None:
            out.update({c: i for c in left})
            break
        hit = rt.members(when_rule(v.when), rt.now) & left
        out.update({c: i for c in hit})
        left -= hit
    return out


def wait_until(start: datetime, w: Any, tz: str) -> datetime:
    """When a wait step ends. Without `until`: start + the duration. With it: HH:MM brand
    time `days` calendar days later ({days: 1, until: "10:00"} = 10:00 the next day; {until:
    "10:00"} alone = the next 10:00)."""
    at = start + timedelta(hours=w.hours, minutes=w.minutes)
    if not w.until:
        return at + timedelta(days=w.days)
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    h, m = (int(x) for x in w.until.split(":"))
    out = datetime.combine(local.date() + timedelta(days=w.days), time(h, m), zone)
    if out < local:
        out += timedelta(days=1)
    return out.astimezone(ZoneInfo("UTC"))


def _tasks(
    rt: Runtime, defn: Definition, version: int, step: int, journeys: list[send.Journey],
    nxt: dict[int, Move],
) -> int:  # fmt: skip
    t = defn.steps[step].task
    assert t is not None
    ids = [j.customer_id for j in journeys if j.customer_id is not None]
    with rt.engine.connect() as conn:
        owners = lookup.owners(conn, rt.brand_id, ids, rt.now)
        profiles = lookup.profiles(conn, ids)
    rows = []
    for j in journeys:
        owner = owners.get(j.customer_id or 0)
        if owner is None:
            nxt[j.id].note = "unreachable: no guide (no active WeCom friend)"
            continue
        ctx = {"customer": profiles.get(j.customer_id or 0, {}), "staff": owner.staff,
               "store": owner.store, "sop": {"key": defn.key, "name": defn.name},
               "occurrence": j.occurrence}  # fmt: skip
        try:
            title, body = render(t.title, ctx), render(t.body, ctx) if t.body else None
        except Exception as e:
            nxt[j.id].note = f"render error: {e}"
            continue
        rows.append({"brand_id": rt.brand_id, "dedup_key": send.dedup_key(defn, version, step, j),
                     "staff_id": owner.staff_id, "customer_id": j.customer_id, "title": title[:200],
                     "body": body, "due_at": rt.now + timedelta(days=t.due_days), "status": "open",
                     "sop_key": defn.key, "sop_version": version, "step_index": step,
                     "created_at": rt.now})  # fmt: skip
    if not rows:
        return 0
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if rt.engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(StaffTask.__table__).on_conflict_do_nothing(
        index_elements=["brand_id", "dedup_key"]
    )
    with rt.engine.begin() as conn:
        res = conn.execute(stmt, rows)
        return int(res.rowcount or 0)
