"""A large scheduled push in a few set-based statements (SPEC §7, issue #6).

The common big case — a schedule-triggered SOP whose journey is one send step through WeCom
1:1 or SMS, with one default variant of plain templates — does not need the per-journey path
(enroll each journey, then plan, render and move it on in batches). For one cron instant it
runs, per part of the audience by customer-id range, one transaction of:

1. the candidates: the audience (every live customer, or the segment's members as of the
   instant) with the holdout flag (`guards.in_holdout`: SHA-256 in SQL on PostgreSQL);
2. the plan: the first guard each non-holdout candidate fails, in the per-journey path's order
   (opt-out for the channel → reachable: an active WeCom friend / a phone → the marketing caps,
   counted once per fire over the outbox), with the newest guide and their store, or the phone;
3. the journeys, inserted already finished (`done`, step 1, the guard's note) or in the holdout,
   `ON CONFLICT DO NOTHING` — only journeys new here go on, so a re-run enrolls nobody twice;
4. the outbox rows of the new journeys that passed every guard, their payload built in SQL
   (plain templates become concatenations; names are opened from their seal in Python), and
   one audit row for the part.

With PARALLEL > 1 (PostgreSQL), that many lanes on connections of their own take turns at parts.

The SOP's `last_fire_at` is written last: a tick that dies part-way fires the same instant
again, whole parts already stored are no-ops by the unique keys, and the rest is done.
`siyu.sop.engine.tick` sends eligible SOPs here and everything else down the per-journey path;
tests/sop/test_fanout.py checks that both paths store the same journeys, rows and figures.
"""

from __future__ import annotations

import itertools
from collections import Counter
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
PARALLEL = 1  # lanes of parts in flight on PostgreSQL (2 was slower on a loaded 2-core machine)
EVERYONE = "SELECT id FROM customer WHERE brand_id = :b AND merged_into_id IS NULL"
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
        """A JSON expression of a structure whose leaves are literals or `Expr`."""
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


# customer fields from `customer c` / `fan_names n`, the guide's from the plan row `p`
# (empty when a customer has no guide, as EMPTY_STAFF / EMPTY_STORE in siyu.sop.send).
_FIELD_SQL = {
    ("customer", "id"): "CAST(p.customer_id AS TEXT)",
    ("customer", "name"): "coalesce(n.name, '')",
    ("customer", "gender"): "coalesce(c.gender, '')",
    ("customer", "city"): "coalesce(c.city, '')",
    ("customer", "birthday"): "coalesce(CAST(c.birthday AS TEXT), '')",
    ("staff", "code"): "coalesce(p.staff_code, '')",
    ("staff", "name"): "coalesce(p.staff_name, '')",
    ("store", "code"): "coalesce(p.st_code, '')",
    ("store", "name"): "coalesce(p.st_name, '')",
    ("store", "city"): "coalesce(p.st_city, '')",
    ("store", "region"): "coalesce(p.st_region, '')",
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
    return q.json({"kind": kind, "sender": Expr("p.sender"), "external_userid": Expr("p.ext"),
                   "text": text_, "attachments": att, "sop": sop})  # fmt: skip


def holdout_sql(
    conn: Connection, sop_key: str, share: float, column: str
) -> tuple[str, dict[str, Any]]:
    """`guards.in_holdout(sop_key, <column>, share)` as a SQL condition: SHA-256 in SQL on
    PostgreSQL (the first 8 bytes, compared with the exact integer bound the float test
    implies), the Python function itself registered on SQLite."""
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
    bound = _bound(share)  # held ⇔ unsigned(first 8 bytes) < bound
    if bound >= 2**64:
        return "1 = 1", {}
    h = (f"CAST(CAST('x' || encode(substring(sha256(convert_to('holdout:' || CAST(:hk AS TEXT) "
         f"|| ':' || {column}, 'UTF8')) FROM 1 FOR 8), 'hex') AS BIT(64)) AS BIGINT)")  # fmt: skip
    if bound <= 2**63:  # unsigned < bound ⇔ signed in [0, bound)
        return f"{h} BETWEEN 0 AND :hb", {"hk": sop_key, "hb": bound - 1}
    # unsigned ≥ bound ⇔ signed in [bound - 2**64, -1]
    return f"NOT ({h} BETWEEN :hb AND -1)", {"hk": sop_key, "hb": bound - 2**64}


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
        """Every `lanes`-th part, on a connection of its own (its temporary tables)."""
        mine = parts[n::lanes]
        got: Counter[Any] = Counter()
        with rt.engine.connect() as conn:
            try:
                f = _Fire(conn, rt, sop, defn, g, at, occ)
                if members is not None:
                    f.stage([c for c in members if (c - lo) // PART % lanes == n])
                else:
                    f.stage(None)
                conn.commit()
                for a, b in mine:
                    got += f.part(a, b)
                    conn.commit()
            finally:
                conn.rollback()
                for t in ("fan_aud", "fan_caps", "fan_cand", "fan_plan", "fan_new", "fan_names"):
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
        self.needs_name = any(
            ("customer", "name") in (_plain(t) or ()) for t in _templates(send.variants[0])
        )
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
            "fan_cand (customer_id BIGINT PRIMARY KEY, holdout BOOLEAN)",
            "fan_plan (customer_id BIGINT PRIMARY KEY, note VARCHAR(200), staff_code VARCHAR(64), "
            "staff_name VARCHAR(200), sender VARCHAR(64), ext VARCHAR(200), st_code VARCHAR(64), "
            "st_name VARCHAR(200), st_city VARCHAR(100), st_region VARCHAR(100), "
            "phone VARCHAR(200), phone_sealed TEXT)",
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

    def part(self, lo: int, hi: int) -> Counter[Any]:
        """Customers with lo ≤ id < hi, in the open transaction: candidates, plan, journeys,
        outbox rows, audit. Counts: new, held, enqueued, (note, text) → journeys."""
        self._clear("fan_cand", "fan_plan", "fan_new", "fan_names")
        held_sql, hp = holdout_sql(self.conn, self.defn.key, self.g.holdout, "a.id")
        self.x(
            f"INSERT INTO fan_cand (customer_id, holdout) SELECT a.id, {held_sql} "
            f"FROM ({self.source}) a WHERE a.id >= :lo AND a.id < :hi",
            lo=lo, hi=hi, **hp,
        )  # fmt: skip
        if self.pg:
            self.x("ANALYZE fan_cand")
        self._plan(lo, hi)
        out: Counter[Any] = Counter()
        for holdout, note, n in self._enroll():
            out["new"] += n
            if holdout:
                out["held"] += n
            elif note:
                out[("note", note)] += n
        if out["new"] - out["held"] - sum(v for k, v in out.items() if isinstance(k, tuple)):
            out["enqueued"] = self._outbox()
        return out

    def _plan(self, lo: int, hi: int) -> None:
        """fan_plan: each non-holdout candidate's first failed guard (null: send), guide and
        phone — siyu.sop.send.plan_customers's order and lookups, as one statement."""
        reach = "o.customer_id IS NULL" if self.channel == "wecom" else "ph.customer_id IS NULL"
        unreachable = ("unreachable: no active WeCom friend" if self.channel == "wecom"
                       else "unreachable: no phone")  # fmt: skip
        self.x(
            "INSERT INTO fan_plan (customer_id, note, staff_code, staff_name, sender, ext, "
            "st_code, st_name, st_city, st_region, phone, phone_sealed) "
            "SELECT f.customer_id, CASE WHEN oo.customer_id IS NOT NULL THEN :n_out "
            f"WHEN {reach} THEN :n_reach WHEN {self.capped} THEN 'capped: frequency limit' END, "
            "o.staff_code, o.staff_name, o.sender, o.ext, o.st_code, o.st_name, o.st_city, "
            "o.st_region, ph.value, ph.value_sealed FROM fan_cand f "
            f"LEFT JOIN (SELECT DISTINCT i.customer_id FROM opt_out x {lookup.RESOLVE} "
            "  WHERE x.brand_id = :b AND x.created_at <= :now "
            "  AND (x.channel IS NULL OR x.channel = :ch) "
            "  AND i.customer_id >= :lo AND i.customer_id < :hi) oo "
            "  ON oo.customer_id = f.customer_id "
            "LEFT JOIN (SELECT * FROM (SELECT i.customer_id, s.code AS staff_code, "
            "  s.name AS staff_name, coalesce(s.wecom_userid, s.code) AS sender, x.id_value AS ext, "
            "  st.code AS st_code, st.name AS st_name, st.city AS st_city, st.region AS st_region, "
            "  row_number() OVER (PARTITION BY i.customer_id ORDER BY x.created_at DESC, x.id DESC) AS rn "
            f"  FROM connection x {lookup.RESOLVE} JOIN staff s ON s.id = x.staff_id "
            "  LEFT JOIN store st ON st.id = s.store_id WHERE x.brand_id = :b "
            "  AND x.kind = 'wecom_friend' AND x.id_type = 'external_userid' "
            "  AND x.created_at <= :now AND (x.ended_at IS NULL OR x.ended_at > :now) "
            "  AND i.customer_id >= :lo AND i.customer_id < :hi) q WHERE q.rn = 1) o "
            "  ON o.customer_id = f.customer_id "
            "LEFT JOIN (SELECT * FROM (SELECT customer_id, value, value_sealed, "
            "  row_number() OVER (PARTITION BY customer_id ORDER BY id) AS rn FROM identifier "
            "  WHERE brand_id = :b AND id_type = 'phone' AND status <> 'quarantined' "
            "  AND value_sealed IS NOT NULL AND customer_id >= :lo AND customer_id < :hi) q "
            "  WHERE q.rn = 1) ph ON ph.customer_id = f.customer_id AND :ch = 'sms' "
            "LEFT JOIN fan_caps cap ON cap.customer_id = f.customer_id "
            "WHERE NOT f.holdout",
            lo=lo, hi=hi, n_out=f"opted out of {self.channel}", n_reach=unreachable,
        )  # fmt: skip

    def _enroll(self) -> list[tuple[Any, Any, int]]:
        """The candidates' journeys, finished or in the holdout; only new ones go on (fan_new).
        Returns (holdout, note, count) of the new journeys."""
        insert = (
            "INSERT INTO sop_enrollment (brand_id, sop_id, version, subject, customer_id, "
            "chat_id, occurrence, enrolled_at, holdout, status, step_index, due_at, note) "
            "SELECT :b, :s, :v, 'c:' || f.customer_id, f.customer_id, NULL, :occ, :now, "
            "f.holdout, CASE WHEN f.holdout THEN 'holdout' ELSE 'done' END, "
            "CASE WHEN f.holdout THEN 0 ELSE 1 END, :at, p.note "
            "FROM fan_cand f LEFT JOIN fan_plan p ON p.customer_id = f.customer_id "
            "WHERE true ORDER BY f.customer_id "
            "ON CONFLICT (sop_id, version, subject, occurrence) DO NOTHING "
            "RETURNING customer_id, holdout, note"
        )
        if self.pg:
            return [tuple(r) for r in self.x(
                f"WITH ins AS ({insert}), go AS (INSERT INTO fan_new (customer_id) "
                "SELECT customer_id FROM ins WHERE NOT holdout AND note IS NULL) "
                "SELECT holdout, note, count(*) FROM ins GROUP BY holdout, note"
            ).all()]  # fmt: skip
        rows = self.x(insert).all()
        new = [(int(c),) for c, h, n in rows if not h and n is None]
        if new:
            raw = self.conn.connection.dbapi_connection
            assert raw is not None
            raw.executemany("INSERT INTO fan_new (customer_id) VALUES (?)", new)  # type: ignore[attr-defined]
        counts = Counter((bool(h), n) for _, h, n in rows)
        return [(h, n, c) for (h, n), c in counts.items()]

    def _names(self) -> None:
        """fan_names: the new recipients' names, opened from their seal (in Python: the key
        never reaches the database)."""
        rows = self.x(
            "SELECT k.customer_id, c.name_sealed FROM fan_new k JOIN customer c "
            "ON c.id = k.customer_id WHERE c.name_sealed IS NOT NULL"
        ).all()
        if not rows:
            return
        ring = pii.keyring(self.conn)
        names = [(int(c), ring.open_(s)) for c, s in rows]
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
        if self.needs_name:
            self._names()
        done = self.x(
            "INSERT INTO outbox (brand_id, dedup_key, adapter, customer_id, payload, status, "
            "attempts, not_before, created_at) "
            f"SELECT :b, CAST(:kp AS TEXT) || p.customer_id || CAST(:ks AS TEXT), :ch, "
            f"p.customer_id, {self.payload_sql}, "
            "'pending', 0, :rel, :now FROM fan_new k JOIN fan_plan p ON p.customer_id = "
            "k.customer_id JOIN customer c ON c.id = p.customer_id "
            "LEFT JOIN fan_names n ON n.customer_id = p.customer_id "
            "WHERE true ORDER BY p.customer_id ON CONFLICT (brand_id, dedup_key) DO NOTHING",
            **self.payload_params,
        )  # fmt: skip
        new = int(done.rowcount or 0)
        if new:
            audit.record(
                self.conn, brand_id=self.rt.brand_id, actor=f"sop:{self.defn.key}",
                action="send", target=f"sop:{self.defn.key}:v{self.version}:step0",
                detail={"channel": self.channel, "messages": new},
            )  # fmt: skip
        return new


def _chunks(rows: list[Any], n: int) -> Any:
    it = iter(rows)
    while chunk := list(itertools.islice(it, n)):
        yield chunk
