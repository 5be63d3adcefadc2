"""A large scheduled push in a few set-based statements (SPEC §7, issue #6).

The common big case — a schedule-triggered SOP whose journey is one send step through WeCom
1:1 or SMS, with one default variant of plain templates — does not need the per-journey path
(enroll each journey, then plan, render and move it on in batches). For one cron instant it
runs, per part of the audience by customer-id range, one transaction of:

1. the plan (one statement into fan_plan): the candidates — the audience (every live
   customer, or the segment's members as of the instant) — with the holdout flag
   (`guards.in_holdout`: SHA-256 in SQL on PostgreSQL) and, outside the holdout, the first
   guard each fails, in the per-journey path's order (opt-out for the channel → reachable: an
   active WeCom friend / a phone → the marketing caps, counted once per fire over the
   outbox), with the newest guide and their store, or the phone;
2. the names the templates show, opened from their seal in Python (`_Names`, a part ahead on
   a connection of its own, while the database stores the previous part), into fan_names;
3. the journeys, inserted already finished (`done`, step 1, the guard's note) or in the holdout,
   `ON CONFLICT DO NOTHING` — only journeys new here go on, so a re-run enrolls nobody twice —
   and the outbox rows of the new journeys that passed every guard, their payload built in SQL
   (plain templates become concatenations, the JSON around them is encoded once per fire):
   on PostgreSQL one statement (the journeys' RETURNING feeds the outbox INSERT), on SQLite
   two, through fan_new; and one audit row for the part.

With PARALLEL > 1 (PostgreSQL), that many lanes on connections of their own take turns at parts.

The SOP's `last_fire_at` is written last: a tick that dies part-way fires the same instant
again, whole parts already stored are no-ops by the unique keys, and the rest is done.
`siyu.sop.engine.tick` sends eligible SOPs here and everything else down the per-journey path;
tests/sop/test_fanout.py checks that both paths store the same journeys, rows and figures.
"""

from __future__ import annotations

import itertools
import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text, update

from siyu import pii
from siyu.audit import service as audit
from siyu.bulk import temp_table
from siyu.sop import guards, lookup, triggers
from siyu.sop.definition import Definition, Variant
from siyu.sop.models import Sop
from siyu.sop.render import FIELDS, plain_parts

if TYPE_CHECKING:
    from siyu.sop.engine import Runtime, TickReport

CHANNELS = ("wecom", "sms")
PART = 100_000  # customer ids per part (one transaction each)
PARALLEL = 2  # lanes of parts in flight on PostgreSQL (2 beat 1 by ~15 %, bench/RESULTS.md)
EVERYONE = "SELECT id FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"
WORK_MEM = "64MB"  # for one part's transaction on PostgreSQL
CONTEXT = ("customer", "staff", "store", "sop")  # what a customer send's templates may read


def eligible(defn: Definition, fired: triggers.Fired) -> bool:
    """Whether this fire can go through the set-based path: a schedule that fired one instant,
    a customer audience, one step that sends through WeCom 1:1 or SMS, one variant (no `when`)
    whose templates are plain text and {{ customer/staff/store/sop fields }}."""
    if defn.trigger.kind != "schedule" or defn.for_groups or len(fired.fires) != 1:
        return False
    if len(defn.steps) != 1 or defn.steps[0].send is None:
        return False
    send = defn.steps[0].send
    if send.channel not in CHANNELS or len(send.variants) != 1 or send.variants[0].when:
        return False
    return all(_plain(t) is not None for t in _templates(send.variants[0]))


def _templates(v: Variant) -> list[str]:
    out = [v.text or ""]
    if v.link:
        out += [v.link.title, v.link.desc or ""]
    if v.miniprogram:
        out.append(v.miniprogram.title)
    return out


def _plain(source: str) -> tuple[Any, ...] | None:
    parts = plain_parts(source)
    if parts is None:
        return None
    for p in parts:
        if isinstance(p, str) or p == ("occurrence", None):
            continue
        ns, attr = p
        if ns not in CONTEXT or attr not in FIELDS[ns]:
            return None  # rendered by Jinja (an error for everyone): the per-journey path
    return parts


# ----- SQL of one fire -----------------------------------------------------------------------


@dataclass
class _Sql:
    """Builds the payload expression; literals become typed bound parameters."""

    pg: bool
    params: dict[str, Any]
    sop: dict[str, str]

    def lit(self, value: Any) -> str:
        name = f"l{len(self.params)}"
        self.params[name] = value
        return f"CAST(:{name} AS {'INTEGER' if isinstance(value, int) else 'TEXT'})"

    def template(self, source: str | None, occurrence: str) -> str:
        if not source:
            return self.lit("")
        out = []
        for p in _plain(source) or ():
            if isinstance(p, str):
                out.append(self.lit(p))
            elif p[0] == "occurrence":
                out.append(self.lit(occurrence))
            else:
                out.append(_FIELD_SQL.get(p) or self.lit(self.sop[p[1]]))
        return "(" + " || ".join(out) + ")" if out else self.lit("")

    def json(self, value: Any) -> str:
        """A JSON expression of a structure whose leaves are literals or `Expr`.

        On PostgreSQL the JSON text is one concatenation cast to JSON: what is constant is
        encoded here, once per fire, and only the expressions are quoted per row (to_json) —
        about half the cost of json_build_object, which rebuilds every constant object and
        looks each argument's type up again for every row."""
        if self.pg:
            out: list[str] = []
            constant = ""
            for piece in _json_pieces(value):
                if isinstance(piece, Expr):
                    if constant:
                        out.append(self.lit(constant))
                    constant = ""
                    out.append(f"coalesce(CAST(to_json({piece.sql}) AS TEXT), 'null')")
                else:
                    constant += piece
            if constant:
                out.append(self.lit(constant))
            return f"CAST(({' || '.join(out)}) AS JSON)"
        if isinstance(value, Expr):
            return value.sql
        if isinstance(value, dict):
            fn = "json_build_object" if self.pg else "json_object"
            args = ", ".join(f"'{k}', {self.json(v)}" for k, v in value.items())
            return f"{fn}({args})"
        if isinstance(value, list):
            fn = "json_build_array" if self.pg else "json_array"
            return f"{fn}({', '.join(self.json(v) for v in value)})"
        return self.lit(value)


@dataclass(frozen=True)
class Expr:
    sql: str


def _json_pieces(value: Any) -> Iterator[str | Expr]:
    """The JSON text of `value` in pieces: encoded text, and the `Expr` leaves in between."""
    if isinstance(value, Expr):
        yield value
    elif isinstance(value, dict):
        yield "{"
        for i, (k, v) in enumerate(value.items()):
            yield (", " if i else "") + json.dumps(k, ensure_ascii=False) + ": "
            yield from _json_pieces(v)
        yield "}"
    elif isinstance(value, list):
        yield "["
        for i, v in enumerate(value):
            if i:
                yield ", "
            yield from _json_pieces(v)
        yield "]"
    else:
        yield json.dumps(value, ensure_ascii=False)


# customer fields from `customer c` / `fan_names n`, the guide's from `staff s` / `store st`
# of the plan row `p` (empty when a customer has no guide, as EMPTY_STAFF / EMPTY_STORE in
# siyu.sop.send).
_FIELD_SQL = {
    ("customer", "id"): "CAST(p.customer_id AS TEXT)",
    ("customer", "name"): "coalesce(n.name, '')",
    ("customer", "gender"): "coalesce(c.gender, '')",
    ("customer", "city"): "coalesce(c.city, '')",
    ("customer", "birthday"): "coalesce(CAST(c.birthday AS TEXT), '')",
    ("staff", "code"): "coalesce(s.code, '')",
    ("staff", "name"): "coalesce(s.name, '')",
    ("store", "code"): "coalesce(st.code, '')",
    ("store", "name"): "coalesce(st.name, '')",
    ("store", "city"): "coalesce(st.city, '')",
    ("store", "region"): "coalesce(st.region, '')",
}


def _payload(q: _Sql, defn: Definition, version: int, kind: str, occurrence: str) -> str:
    """The outbox payload siyu.sop.send.plan_customers builds, as one SQL expression."""
    send = defn.steps[0].send
    assert send is not None
    v = send.variants[0]
    text_ = Expr(q.template(v.text, occurrence))
    sop = {"key": defn.key, "version": version, "step": 0}
    if send.channel == "sms":
        return q.json({"kind": kind, "phone": Expr("p.phone"),
                       "phone_sealed": Expr("p.phone_sealed"), "text": text_, "sop": sop})  # fmt: skip
    att: list[Any] = []
    if v.image:
        att.append({"msgtype": "image", "image": {"pic_url": v.image.pic_url}})
    if v.link:
        att.append({"msgtype": "link", "link": {
            "title": Expr(q.template(v.link.title, occurrence)), "picurl": v.link.picurl or "",
            "desc": Expr(q.template(v.link.desc, occurrence)), "url": v.link.url}})  # fmt: skip
    if v.miniprogram:
        m = v.miniprogram
        att.append({"msgtype": "miniprogram", "miniprogram": {
            "title": Expr(q.template(m.title, occurrence)), "pic_media_id": m.pic_media_id,
            "appid": m.appid, "page": m.page}})  # fmt: skip
    return q.json({"kind": kind, "sender": Expr("coalesce(s.wecom_userid, s.code)"),
                   "external_userid": Expr("p.ext"),
                   "text": text_, "attachments": att, "sop": sop})  # fmt: skip


def holdout_sql(
    conn: Connection, sop_key: str, share: float, column: str
) -> tuple[str, dict[str, Any]]:
    """`guards.in_holdout(sop_key, <column>, share)` as a SQL condition: SHA-256 in SQL on
    PostgreSQL, the Python function itself registered on SQLite.

    in_holdout holds a customer out when the digest's first 8 bytes, read as an unsigned
    big-endian integer u, have u / 2**64 < share, i.e. u < `_bound(share)`. On PostgreSQL
    that is one bytea comparison, digest < the bound's 8 bytes: bytea compares bytewise
    (unsigned, most significant first), and a 32-byte digest whose first 8 bytes equal the
    bound sorts after it, as u = bound is not held."""
    if share <= 0:
        return "1 = 0", {}
    if conn.dialect.name != "postgresql":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.create_function(  # type: ignore[attr-defined]
            "sop_holdout", 1, lambda c: int(guards.in_holdout(sop_key, int(c), share)),
            deterministic=True,
        )  # fmt: skip
        return f"sop_holdout({column}) = 1", {}
    bound = _bound(share)
    if bound >= 2**64:
        return "1 = 1", {}
    digest = f"sha256(convert_to('holdout:' || CAST(:hk AS TEXT) || ':' || {column}, 'UTF8'))"
    return f"{digest} < CAST(:hb AS BYTEA)", {"hk": sop_key, "hb": bound.to_bytes(8, "big")}


def _bound(share: float) -> int:
    """The least u with not (u / 2**64 < share): in_holdout's test is u < this."""
    lo, hi = 0, 2**64
    while lo < hi:
        mid = (lo + hi) // 2
        if mid / 2**64 < share:
            lo = mid + 1
        else:
            hi = mid
    return lo


# ----- running one fire ----------------------------------------------------------------------


def run(rt: Runtime, sop: Sop, defn: Definition, fired: triggers.Fired, report: TickReport) -> None:
    """Fan one eligible fire out (see the module docstring), then store the trigger state."""
    at = fired.fires[0]
    occ = triggers.occurrence_of(at)
    rule = rt.audience_rule(defn)
    g = rt.guards(defn)
    members = rt.members(rule, at) if rule is not None else None
    lo, hi = _span(rt, members)
    parts = [(start, min(start + PART, hi + 1)) for start in range(lo, hi + 1, PART)]
    lanes = PARALLEL if rt.engine.dialect.name == "postgresql" else 1
    lanes = max(1, min(lanes, len(parts)))

    def lane(n: int) -> Counter[Any]:
        """Every `lanes`-th part, on a connection of its own (its temporary tables); the names
        of the next part are opened meanwhile (`_Names`)."""
        mine = parts[n::lanes]
        got: Counter[Any] = Counter()
        with rt.engine.connect() as conn, ThreadPoolExecutor(max_workers=1) as opener:
            try:
                f = _Fire(conn, rt, sop, defn, g, at, occ)
                ours = None
                if members is not None:
                    ours = sorted(c for c in members if (c - lo) // PART % lanes == n)
                f.stage(ours)
                conn.commit()
                names = _Names(rt, pii.keyring(conn), ours) if f.needs_name else None
                ahead = opener.submit(names.read, *mine[0]) if names and mine else None
                for i, (a, b) in enumerate(mine):
                    opened = ahead.result() if ahead else None
                    if names and i + 1 < len(mine):
                        ahead = opener.submit(names.read, *mine[i + 1])
                    got += f.part(a, b, opened)
                    conn.commit()
            finally:
                conn.rollback()
                for t in ("fan_aud", "fan_caps", "fan_plan", "fan_new", "fan_names"):
                    conn.execute(text(f"DROP TABLE IF EXISTS {t}"))
                conn.commit()
        return got

    totals: Counter[Any] = Counter()
    if lanes == 1:
        totals = lane(0) if parts else totals
    else:
        with ThreadPoolExecutor(max_workers=lanes) as pool:
            for got in pool.map(lane, range(lanes)):
                totals += got
    with rt.engine.begin() as conn:
        conn.execute(update(Sop).where(Sop.id == sop.id).values(**fired.state))
    report.fired[sop.key] += totals["new"]
    report.holdout += totals["held"]
    if totals["new"] - totals["held"]:
        report.steps["send"] += totals["new"] - totals["held"]
    report.enqueued += totals["enqueued"]
    for key, n in totals.items():
        if isinstance(key, tuple):
            report.notes[key[1].split(":")[0]] += n


@dataclass
class _Names:
    """The audience's names by part, opened from their seal in Python (the key never reaches
    the database) on a connection of its own: a lane opens the next part's names while the
    database stores this part's rows. Every name of the part's audience is opened, the few
    held out or stopped by a guard included."""

    rt: Runtime
    ring: pii.Keyring
    members: list[int] | None  # sorted; None: every live customer

    def read(self, lo: int, hi: int) -> list[tuple[int, str]]:
        sql = (
            "SELECT id, name_sealed FROM customer WHERE brand_id = :b AND id >= :lo "
            "AND id < :hi AND name_sealed IS NOT NULL"
        )
        params: dict[str, Any] = {"b": self.rt.brand_id, "lo": lo, "hi": hi}
        with self.rt.engine.connect() as conn:
            if self.members is None:
                sql += " AND merged_into_id IS NULL"
            else:
                ids = self.members[bisect_left(self.members, lo) : bisect_left(self.members, hi)]
                if not ids:
                    return []
                if conn.dialect.name == "postgresql":
                    sql += " AND id = ANY(CAST(:ids AS BIGINT[]))"
                    params["ids"] = ids
                else:
                    sql += " AND id IN (SELECT value FROM json_each(:ids))"
                    params["ids"] = json.dumps(ids)
            rows = conn.execute(text(sql), params).all()
        return [(int(c), self.ring.open_(v)) for c, v in rows]


def _span(rt: Runtime, members: set[int] | None) -> tuple[int, int]:
    """The least and greatest customer id of the audience ((1, 0) when it is empty)."""
    if members is not None:
        return (min(members), max(members)) if members else (1, 0)
    with rt.engine.connect() as conn:
        lo, hi = conn.execute(
            text(f"SELECT min(id), max(id) FROM ({EVERYONE}) a"), {"b": rt.brand_id}
        ).one()
    return (int(lo), int(hi)) if lo is not None else (1, 0)


class _Fire:
    """The statements of one fire on one connection (its temporary tables live there)."""

    def __init__(self, conn: Connection, rt: Runtime, sop: Sop, defn: Definition,
                 g: guards.Effective, at: datetime, occ: str) -> None:  # fmt: skip
        version = sop.version
        self.conn, self.rt, self.defn, self.version, self.g = conn, rt, defn, version, g
        self.pg = conn.dialect.name == "postgresql"
        send = defn.steps[0].send
        assert send is not None
        self.channel = send.channel
        self.at, self.occ = at, occ
        self.release = guards.release_at(rt.now, g, rt.tz)
        self.key_prefix = f"sop:{defn.key}:{version}:0:"
        self.p: dict[str, Any] = {
            "b": rt.brand_id, "s": sop.id, "v": version, "occ": occ, "ch": self.channel,
            "now": lookup.ts(conn, rt.now), "at": lookup.ts(conn, at),
            "rel": lookup.ts(conn, self.release), "kp": self.key_prefix, "ks": f":{occ}",
        }  # fmt: skip
        fields = {p for t in _templates(send.variants[0]) for p in _plain(t) or ()}
        self.needs_name = ("customer", "name") in fields
        # the customer row itself is read only for the fields the templates show from it
        self.needs_row = any(("customer", f) in fields for f in ("gender", "city", "birthday"))
        q = _Sql(self.pg, {}, {"key": defn.key, "name": defn.name})
        self.payload_sql = _payload(q, defn, version, g.kind, occ)
        self.payload_params = q.params

    def x(self, sql: str, **extra: Any) -> Any:
        return self.conn.execute(text(sql).execution_options(preserve_rowcount=True),
                                 {**self.p, **extra})  # fmt: skip

    def stage(self, members: list[int] | None) -> None:
        """Temporary tables, the audience (when it is a segment) and the caps."""
        conn = self.conn
        for ddl in (
            "fan_plan (customer_id BIGINT PRIMARY KEY, holdout BOOLEAN, note VARCHAR(200), "
            "staff_id BIGINT, ext VARCHAR(200), phone VARCHAR(200), phone_sealed TEXT)",
            "fan_new (customer_id BIGINT PRIMARY KEY)",
            "fan_names (customer_id BIGINT PRIMARY KEY, name TEXT)",
        ):
            conn.execute(text(f"DROP TABLE IF EXISTS {ddl.split(' ')[0]}"))
            conn.execute(text(f"CREATE TEMPORARY TABLE {ddl}"))
        if members is not None:
            temp_table(conn, "fan_aud", [("customer_id", "BIGINT")], [(c,) for c in members])
            self.source = "SELECT customer_id AS id FROM fan_aud"
        else:
            self.source = EVERYONE
        self._caps()

    def _caps(self) -> None:
        """fan_caps: customers already at their day's or week's marketing messages — every
        row not failed, pending ones included, other than the one this fire would add
        (guards.capped, once for the whole fire)."""
        g, zone = self.g, ZoneInfo(self.rt.tz)
        self.conn.execute(text("DROP TABLE IF EXISTS fan_caps"))
        self.conn.execute(text("CREATE TEMPORARY TABLE fan_caps (customer_id BIGINT PRIMARY KEY)"))
        if g.kind != "marketing":
            self.capped = "1 = 0"
            return
        if g.daily_cap <= 0 or g.weekly_cap <= 0:
            self.capped = "1 = 1"  # nobody is under a cap of nothing
            return
        day = self.release.astimezone(zone).date()
        monday = day - timedelta(days=day.weekday())

        def start(d: Any) -> Any:
            return lookup.ts(self.conn, datetime.combine(d, time(), zone))

        kind = "ob.payload->>'kind'" if self.pg else "json_extract(ob.payload, '$.kind')"
        self.x(
            "INSERT INTO fan_caps (customer_id) SELECT ob.customer_id FROM outbox ob "
            "WHERE ob.brand_id = :b AND ob.customer_id IS NOT NULL AND ob.status <> 'failed' "
            f"AND ob.adapter IN ('wecom', 'sms') AND {kind} = 'marketing' "
            "AND ob.not_before >= :w0 AND ob.not_before < :w1 "
            "AND ob.dedup_key <> CAST(:kp AS TEXT) || ob.customer_id || CAST(:ks AS TEXT) GROUP BY ob.customer_id "
            "HAVING sum(CASE WHEN ob.not_before >= :d0 AND ob.not_before < :d1 THEN 1 ELSE 0 END)"
            " >= :dc OR count(*) >= :wc",
            w0=start(monday), w1=start(monday + timedelta(days=7)), d0=start(day),
            d1=start(day + timedelta(days=1)), dc=g.daily_cap, wc=g.weekly_cap,
        )  # fmt: skip
        self.capped = "cap.customer_id IS NOT NULL"

    def _clear(self, *tables: str) -> None:
        for t in tables:
            self.conn.execute(text(f"{'TRUNCATE' if self.pg else 'DELETE FROM'} {t}"))

    def part(self, lo: int, hi: int, names: list[tuple[int, str]] | None = None) -> Counter[Any]:
        """Customers with lo ≤ id < hi, in the open transaction: candidates, plan, journeys,
        outbox rows, audit (`names`: the part's, opened). Counts: new, held, enqueued,
        (note, text) → journeys."""
        self._clear("fan_plan", "fan_new", "fan_names")
        if self.pg:  # compiling each part's statements took longer than running them
            self.x("SET LOCAL jit = off")
        self._plan(lo, hi)
        if names:
            self._names(names)
        out: Counter[Any] = Counter()
        if self.pg:
            # the part's sorts and hashes in memory (4 MB by default: a spill to disk); not
            # for the plan, which then hashes all the brand's WeCom friends for every part
            self.x(f"SET LOCAL work_mem = '{WORK_MEM}'")
            counts, new = self._enroll_and_send()
        else:
            counts, new = self._enroll(), 0
        for holdout, note, n in counts:
            out["new"] += n
            if holdout:
                out["held"] += n
            elif note:
                out[("note", note)] += n
        if not self.pg and out["new"] - out["held"] - sum(
            v for k, v in out.items() if isinstance(k, tuple)
        ):
            new = self._outbox()
        if new:
            out["enqueued"] = new
            audit.record(
                self.conn, brand_id=self.rt.brand_id, actor=f"sop:{self.defn.key}",
                action="send", target=f"sop:{self.defn.key}:v{self.version}:step0",
                detail={"channel": self.channel, "messages": new},
            )  # fmt: skip
        return out

    def _plan(self, lo: int, hi: int) -> None:
        """fan_plan: the candidates — the audience with lo ≤ id < hi — with the holdout flag
        and, outside the holdout, the first guard failed (null: send), guide and phone —
        siyu.sop.send.plan_customers's order and lookups, as one statement."""
        held_sql, hp = holdout_sql(self.conn, self.defn.key, self.g.holdout, "a.id")
        reach = "o.customer_id IS NULL" if self.channel == "wecom" else "ph.customer_id IS NULL"
        unreachable = ("unreachable: no active WeCom friend" if self.channel == "wecom"
                       else "unreachable: no phone")  # fmt: skip
        self.x(
            "INSERT INTO fan_plan (customer_id, holdout, note, staff_id, ext, phone, phone_sealed) "
            "SELECT f.customer_id, f.holdout, CASE WHEN f.holdout THEN NULL "
            "WHEN oo.customer_id IS NOT NULL THEN :n_out "
            f"WHEN {reach} THEN :n_reach WHEN {self.capped} THEN 'capped: frequency limit' END, "
            f"o.staff_id, o.ext, ph.value, ph.value_sealed FROM (SELECT a.id AS customer_id, "
            f"{held_sql} AS holdout FROM ({self.source}) a WHERE a.id >= :lo AND a.id < :hi) f "
            f"LEFT JOIN (SELECT DISTINCT i.customer_id FROM opt_out x {lookup.RESOLVE} "
            "  WHERE x.brand_id = :b AND x.created_at <= :now "
            "  AND (x.channel IS NULL OR x.channel = :ch) "
            "  AND i.customer_id >= :lo AND i.customer_id < :hi) oo "
            "  ON oo.customer_id = f.customer_id "
            "LEFT JOIN (SELECT * FROM (SELECT i.customer_id, x.staff_id, x.id_value AS ext, "
            "  row_number() OVER (PARTITION BY i.customer_id ORDER BY x.created_at DESC, x.id DESC) AS rn "
            f"  FROM connection x {lookup.RESOLVE} JOIN staff s ON s.id = x.staff_id "
            "  WHERE x.brand_id = :b "
            "  AND x.kind = 'wecom_friend' AND x.id_type = 'external_userid' "
            "  AND x.created_at <= :now AND (x.ended_at IS NULL OR x.ended_at > :now) "
            "  AND i.customer_id >= :lo AND i.customer_id < :hi) q WHERE q.rn = 1) o "
            "  ON o.customer_id = f.customer_id "
            "LEFT JOIN (SELECT * FROM (SELECT customer_id, value, value_sealed, "
            "  row_number() OVER (PARTITION BY customer_id ORDER BY id) AS rn FROM identifier "
            "  WHERE brand_id = :b AND id_type = 'phone' AND status <> 'quarantined' "
            "  AND value_sealed IS NOT NULL AND customer_id >= :lo AND customer_id < :hi) q "
            "  WHERE q.rn = 1) ph ON ph.customer_id = f.customer_id AND :ch = 'sms' "
            "LEFT JOIN fan_caps cap ON cap.customer_id = f.customer_id",
            lo=lo, hi=hi, n_out=f"opted out of {self.channel}", n_reach=unreachable, **hp,
        )  # fmt: skip

    JOURNEYS = (
        "INSERT INTO sop_enrollment (brand_id, sop_id, version, subject, customer_id, "
        "chat_id, occurrence, enrolled_at, holdout, status, step_index, due_at, note) "
        "SELECT :b, :s, :v, 'c:' || p.customer_id, p.customer_id, NULL, :occ, :now, "
        "p.holdout, CASE WHEN p.holdout THEN 'holdout' ELSE 'done' END, "
        "CASE WHEN p.holdout THEN 0 ELSE 1 END, :at, p.note "
        "FROM fan_plan p WHERE true ORDER BY p.customer_id "
        "ON CONFLICT (sop_id, version, subject, occurrence) DO NOTHING "
        "RETURNING customer_id, holdout, note"
    )

    def _rows(self, source: str, order: str = "ORDER BY p.customer_id ") -> str:
        """The outbox rows of the new journeys `k` (customer_id) of `source`."""
        row = "JOIN customer c ON c.id = p.customer_id " if self.needs_row else ""
        return (
            "INSERT INTO outbox (brand_id, dedup_key, adapter, customer_id, payload, status, "
            "attempts, not_before, created_at) "
            f"SELECT :b, CAST(:kp AS TEXT) || p.customer_id || CAST(:ks AS TEXT), :ch, "
            f"p.customer_id, {self.payload_sql}, 'pending', 0, :rel, :now FROM {source} "
            f"JOIN fan_plan p ON p.customer_id = k.customer_id {row}"
            "LEFT JOIN staff s ON s.id = p.staff_id LEFT JOIN store st ON st.id = s.store_id "
            "LEFT JOIN fan_names n ON n.customer_id = p.customer_id "
            f"WHERE true {order}ON CONFLICT (brand_id, dedup_key) DO NOTHING"
        )

    def _enroll_and_send(self) -> tuple[list[tuple[Any, Any, int]], int]:
        """PostgreSQL: the journeys and the outbox rows of the new ones that passed every
        guard in one statement. Returns (holdout, note, count) of the new journeys and the
        number of outbox rows stored."""
        rows = self.x(
            f"WITH ins AS ({self.JOURNEYS}), "
            # no ORDER BY: the journeys come back in customer order already
            f"ob AS ({self._rows('(SELECT customer_id FROM ins WHERE NOT holdout AND note IS NULL) k', '')}"
            " RETURNING 1) "
            "SELECT holdout, note, count(*), (SELECT count(*) FROM ob) FROM ins GROUP BY holdout, note",
            **self.payload_params,
        ).all()  # fmt: skip
        return [(h, n, c) for h, n, c, _ in rows], int(rows[0][3]) if rows else 0

    def _enroll(self) -> list[tuple[Any, Any, int]]:
        """SQLite: the candidates' journeys, finished or in the holdout; only new ones go on
        (fan_new). Returns (holdout, note, count) of the new journeys."""
        rows = self.x(self.JOURNEYS).all()
        new = [(int(c),) for c, h, n in rows if not h and n is None]
        if new:
            raw = self.conn.connection.dbapi_connection
            assert raw is not None
            raw.executemany("INSERT INTO fan_new (customer_id) VALUES (?)", new)  # type: ignore[attr-defined]
        counts = Counter((bool(h), n) for _, h, n in rows)
        return [(h, n, c) for (h, n), c in counts.items()]

    def _names(self, names: list[tuple[int, str]]) -> None:
        """fan_names: the part's names (opened by `_Names`)."""
        raw = self.conn.connection.dbapi_connection
        assert raw is not None
        if self.pg:
            with (
                raw.cursor() as cur,
                cur.copy("COPY fan_names (customer_id, name) FROM STDIN") as cp,
            ):  # type: ignore[attr-defined]
                for row in names:
                    cp.write_row(row)
        else:
            for chunk in _chunks(names, 5000):
                raw.executemany("INSERT INTO fan_names (customer_id, name) VALUES (?, ?)", chunk)  # type: ignore[attr-defined]

    def _outbox(self) -> int:
        """SQLite: the outbox rows of the new journeys (fan_new) that passed every guard."""
        done = self.x(self._rows("fan_new k"), **self.payload_params)
        return int(done.rowcount or 0)


def _chunks(rows: list[Any], n: int) -> Any:
    it = iter(rows)
    while chunk := list(itertools.islice(it, n)):
        yield chunk
