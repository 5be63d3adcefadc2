"""A send step 发送 for a batch of journeys: guards in order, render, and the outbox rows.

Shared by the scheduler (which enqueues the rows) and the dry run (which only counts them).
Guards in order: opt-out for the channel → reachable on the channel (an active WeCom friend, a
phone) → marketing caps; quiet hours then hold what is left until morning (`not_before`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from siyu.automation.outbox import Enqueue
from siyu.sop import guards, lookup
from siyu.sop.definition import Definition, Send, Variant
from siyu.sop.render import render

EMPTY_STORE = {"code": "", "name": "", "city": "", "region": ""}
EMPTY_STAFF = {"code": "", "name": ""}


@dataclass(frozen=True)
class Journey:
    id: int
    customer_id: int | None
    chat_id: str | None
    occurrence: str


@dataclass
class Planned:
    items: list[Enqueue] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # journey id → why it was not sent
    counts: Counter[str] = field(default_factory=Counter)  # the guard funnel, in order
    samples: dict[int, str] = field(default_factory=dict)  # variant index → one rendered text
    held: int = 0  # rows held by quiet hours


def dedup_key(defn: Definition, version: int, step: int, j: Journey) -> str:
    who = f"group:{j.chat_id}" if j.chat_id else str(j.customer_id)
    return f"sop:{defn.key}:{version}:{step}:{who}:{j.occurrence}"


def content(v: Variant, ctx: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The rendered text and the WeCom attachment objects of a variant."""
    text = render(v.text, ctx) if v.text else ""
    att: list[dict[str, Any]] = []
    if v.image:
        att.append({"msgtype": "image", "image": {"pic_url": v.image.pic_url}})
    if v.link:
        att.append({"msgtype": "link", "link": {
            "title": render(v.link.title, ctx), "picurl": v.link.picurl or "",
            "desc": render(v.link.desc, ctx) if v.link.desc else "", "url": v.link.url}})  # fmt: skip
    if v.miniprogram:
        m = v.miniprogram
        att.append({"msgtype": "miniprogram", "miniprogram": {
            "title": render(m.title, ctx), "pic_media_id": m.pic_media_id, "appid": m.appid,
            "page": m.page}})  # fmt: skip
    return text, att


def plan_customers(
    conn: Connection,
    *,
    brand_id: int,
    tz: str,
    defn: Definition,
    version: int,
    step: int,
    journeys: list[Journey],
    variant_of: dict[int, int],
    g: guards.Effective,
    now: datetime,
) -> Planned:
    send = defn.steps[step].send
    assert send is not None
    p = Planned()
    p.counts["audience"] = len(journeys)
    ids = [j.customer_id for j in journeys if j.customer_id is not None]
    channel = send.channel
    out = lookup.opted_out(conn, brand_id, ids, channel, now)
    live = _drop(
        p, journeys, lambda j: j.customer_id in out, f"opted out of {channel}", "after opt-out"
    )
    ids = [j.customer_id for j in live if j.customer_id is not None]
    owners = lookup.owners(conn, brand_id, ids, now)
    phones = lookup.phones(conn, brand_id, ids) if channel == "sms" else {}
    if channel == "wecom":
        live = _drop(
            p,
            live,
            lambda j: j.customer_id not in owners,
            "unreachable: no active WeCom friend",
            "reachable",
        )
    else:
        live = _drop(
            p, live, lambda j: j.customer_id not in phones, "unreachable: no phone", "reachable"
        )
    at = guards.release_at(now, g, tz)
    keys = {j.customer_id: dedup_key(defn, version, step, j) for j in live}
    capped = guards.capped(conn, brand_id, {c: (k, at) for c, k in keys.items() if c}, g, tz)
    live = _drop(
        p, live, lambda j: j.customer_id in capped, "capped: frequency limit", "under caps"
    )
    profiles = lookup.profiles(conn, [j.customer_id for j in live if j.customer_id])
    sop = {"key": defn.key, "version": version, "step": step}
    for j in live:
        cid = j.customer_id
        assert cid is not None
        vi = variant_of.get(cid)
        if vi is None:
            p.notes[j.id] = "no variant matches"
            p.counts["no variant"] += 1
            continue
        owner = owners.get(cid)
        ctx = {
            "customer": profiles.get(cid, {"id": cid}),
            "staff": owner.staff if owner else EMPTY_STAFF,
            "store": owner.store if owner else EMPTY_STORE,
            "sop": {"key": defn.key, "name": defn.name},
            "occurrence": j.occurrence,
        }
        try:
            text, att = content(send.variants[vi], ctx)
        except Exception as e:  # a value the template cannot take (StrictUndefined)
            p.notes[j.id] = f"render error: {e}"[:200]
            p.counts["render error"] += 1
            continue
        p.samples.setdefault(vi, text)
        if channel == "wecom":
            assert owner is not None
            payload = {"kind": g.kind, "sender": owner.sender,
                       "external_userid": owner.external_userid, "text": text,
                       "attachments": att, "sop": sop}  # fmt: skip
        else:
            phone, sealed = phones[cid]  # the hash keys the delivery; the number stays sealed
            payload = {"kind": g.kind, "phone": phone, "phone_sealed": sealed, "text": text,
                       "sop": sop}  # fmt: skip
        p.items.append(Enqueue(keys[cid], channel, cid, payload, at))
    p.counts["sent"] = len(p.items)
    if at != now:
        p.held = len(p.items)
    return p


def _drop(p: Planned, journeys: list[Journey], test: Any, note: str, label: str) -> list[Journey]:
    keep = []
    for j in journeys:
        if test(j):
            p.notes[j.id] = note
        else:
            keep.append(j)
    p.counts[label] = len(keep)
    return keep


def plan_groups(
    conn: Connection,
    *,
    brand_id: int,
    tz: str,
    defn: Definition,
    version: int,
    step: int,
    journeys: list[Journey],
    g: guards.Effective,
    now: datetime,
) -> Planned:
    send: Send | None = defn.steps[step].send
    assert send is not None
    p = Planned()
    p.counts["audience"] = len(journeys)
    known = {x["chat_id"]: x for x in lookup.groups(conn, brand_id, None)}
    at = guards.release_at(now, g, tz)
    sop = {"key": defn.key, "version": version, "step": step}
    default = len(send.variants) - 1
    for j in journeys:
        grp = known.get(j.chat_id or "")
        if grp is None:
            p.notes[j.id] = "group no longer exists"
            continue
        ctx = {"customer": {}, "staff": grp["staff"], "store": grp["store"],
               "group": grp["group"], "sop": {"key": defn.key, "name": defn.name},
               "occurrence": j.occurrence}  # fmt: skip
        vi = _group_variant(send, grp["store"]["code"], default)
        try:
            text, att = content(send.variants[vi], ctx)
        except Exception as e:
            p.notes[j.id] = f"render error: {e}"[:200]
            continue
        p.samples.setdefault(vi, text)
        payload = {"kind": g.kind, "sender": grp["sender"], "chat_id": j.chat_id, "text": text,
                   "attachments": att, "sop": sop}  # fmt: skip
        p.items.append(Enqueue(dedup_key(defn, version, step, j), "group", None, payload, at))
    p.counts["sent"] = len(p.items)
    if at != now:
        p.held = len(p.items)
    return p


def _group_variant(send: Send, store: str, default: int) -> int:
    """Group pushes choose variants by store only ({store: S001}); else the last variant."""
    for i, v in enumerate(send.variants):
        if v.when is None:
            return i
        r = v.when
        if r.get("field") == "store" and store in (r.get("value") or []):
            return i
    return default
