"""Stored WeCom callbacks → Siyu's domain: staff, identities, connections, groups, tags.

`process_pending` takes stored events oldest first and handles each one; a handler that fails
leaves its event 'failed' with the error, to be retried next time (up to `max_attempts`).
Every handler is idempotent, and friendship state is recomputed from *all* stored events of a
(staff, customer) pair, so duplicates and out-of-order deliveries converge on one state.
After a batch, identity resolution runs once and customer tags are refreshed.

Events (WeCom 客户联系 回调):
* change_external_contact: add_external_contact (State → channel via the contact way;
  WelcomeCode → welcome message; the way's auto-tags), add_half_external_contact, edit_external_contact,
  del_external_contact (the staff deleted the customer, or a transfer moved them),
  del_follow_user (the customer deleted the staff), transfer_fail.
* change_external_chat: create, update (add_member / del_member / others), dismiss.
* change_external_tag: create / update / delete / shuffle → corp tags re-pulled.
* change_contact (the directory): create_user / update_user / delete_user (a member who left:
  离职), create_party / update_party / delete_party.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, or_, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from siyu.communities.models import ChatGroup
from siyu.connections import service as connection_service
from siyu.connections.models import Connection as ConnectionRow
from siyu.db import advisory_key
from siyu.events.models import Event as DomainEvent
from siyu.identity import service as identity_service
from siyu.identity.records import upsert_record
from siyu.staff import service as staff_service
from siyu.wecom import directory
from siyu.wecom import service as wecom_service
from siyu.wecom.client import NOT_EXTERNAL_CONTACT, WeComClient, WeComError, WeComUnavailable
from siyu.wecom.inbox import parse_event
from siyu.wecom.models import WeComCallbackEvent
from siyu.wecom.transfer import transfer_failed

log = logging.getLogger(__name__)

FRIEND_STARTS = ("add_external_contact", "add_half_external_contact")
FRIEND_ENDS = {"del_external_contact": "staff", "del_follow_user": "customer"}
GONE_ERRCODES = (NOT_EXTERNAL_CONTACT, 40096)  # no such customer, or no relation any more
CHAT_NOT_FOUND = 40050
GENDERS = {"1": "男", "2": "女"}
LEASE_SECONDS = 300.0  # a claim older than this belongs to a processor that died


@dataclass
class ProcessResult:
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ctx:
    engine: Engine
    client: WeComClient
    brand_id: int
    event_id: int
    event_key: str
    create_time: datetime
    fields: dict[str, str]


def worker_id() -> str:
    """Who claims events: host and process, so a claim names the process that holds it."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def process_pending(
    engine: Engine,
    *,
    brand_id: int,
    client: WeComClient,
    k_guard: int = 5,
    limit: int = 500,
    max_attempts: int = 5,
    worker: str | None = None,
    lease_seconds: float = LEASE_SECONDS,
    retry_backoff: bool = False,
) -> ProcessResult:
    """Handle up to `limit` stored events, oldest first; then resolve identities once.

    Each event is claimed first (pending/failed → processing, by this worker): of two
    processors only one wins the claim, so no event is handled twice. A claim older than
    `lease_seconds` belongs to a processor that died, and is taken over. With `retry_backoff`
    (the continuous processor) a failed event waits 2^attempts seconds before its next try.
    """
    worker = worker or worker_id()
    e = WeComCallbackEvent
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=lease_seconds)
    with engine.connect() as conn:
        todo = conn.execute(
            select(
                e.id,
                e.event_key,
                e.create_time,
                e.xml,
                e.event,
                e.change_type,
                e.status,
                e.attempts,
                e.claimed_at,
            )
            .where(e.brand_id == brand_id, _claimable(now, stale, max_attempts))
            .order_by(e.create_time, e.id)
            .limit(limit)
        ).all()
    result = ProcessResult()
    for row in todo:
        if retry_backoff and row.status == "failed" and row.claimed_at is not None:
            if now - row.claimed_at < timedelta(seconds=min(60, 2**row.attempts)):
                continue
        if not _claim(engine, row.id, worker, max_attempts, lease_seconds):
            continue  # another processor has it
        ctx = Ctx(
            engine,
            client,
            brand_id,
            row.id,
            row.event_key,
            row.create_time,
            parse_event(row.xml).fields,
        )
        handler = HANDLERS.get((row.event, row.change_type)) or HANDLERS.get((row.event, None))
        try:
            if handler is None:
                status = "ignored"
            else:
                _handle(handler, ctx)
                status = "processed"
        except Exception as exc:  # noqa: BLE001 - any failure leaves the event to retry
            log.warning(
                "WeCom event %s (%s/%s) failed: %s", row.id, row.event, row.change_type, exc
            )
            result.failed += 1
            result.errors.append(f"event {row.id}: {exc}")
            _mark(engine, row.id, "failed", error=f"{type(exc).__name__}: {exc}")
            continue
        _mark(engine, row.id, status)
        if status == "processed":
            result.processed += 1
        else:
            result.ignored += 1
    if result.processed:
        _resolve_serialised(engine, brand_id=brand_id, k_guard=k_guard)
    return result


def _handle(handler: Callable[[Ctx], None], ctx: Ctx, tries: int = 3) -> None:
    """Run a handler; a unique-key conflict means a concurrent processor just created the same
    row (a new staff member, customer record, connection) — or PostgreSQL chose this
    transaction as a deadlock victim: it rolled back whole, and running it again succeeds."""
    for attempt in range(tries):
        try:
            handler(ctx)
            return
        except (IntegrityError, OperationalError) as e:
            retryable = isinstance(e, IntegrityError) or getattr(e.orig, "sqlstate", "") in (
                "40P01",  # deadlock detected
                "40001",  # serialization failure
            )
            if not retryable or attempt == tries - 1:
                raise
            log.info("WeCom event %s met a concurrent insert; handling it again", ctx.event_id)


def _claimable(now: datetime, stale: datetime, max_attempts: int) -> Any:
    e = WeComCallbackEvent
    return or_(
        and_(e.status.in_(("pending", "failed")), e.attempts < max_attempts),
        and_(e.status == "processing", e.claimed_at < stale),
    )


def _claim(engine: Engine, event_id: int, worker: str, max_attempts: int, lease: float) -> bool:
    """pending/failed (or a stale claim) → processing by `worker`; False if another won it.

    One UPDATE with the condition in its WHERE: PostgreSQL re-checks the condition after a
    concurrent update commits, SQLite serialises writers, so exactly one claimer matches.
    """
    e = WeComCallbackEvent
    now = datetime.now(UTC)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(e)
            .where(e.id == event_id, _claimable(now, now - timedelta(seconds=lease), max_attempts))
            .values(status="processing", claimed_by=worker, claimed_at=now)
        ).rowcount
    return claimed == 1


def _resolve_serialised(engine: Engine, *, brand_id: int, k_guard: int) -> None:
    """Identity resolution and the customers' WeCom tags, one processor at a time.

    On PostgreSQL a session advisory lock keeps two processors from resolving at once (each
    would see the other's half-written links); SQLite already serialises the writers.
    """
    if engine.dialect.name != "postgresql":
        identity_service.resolve(engine, brand_id=brand_id, k_guard=k_guard)
        wecom_service.refresh_customer_tags(engine, brand_id=brand_id)
        return
    with engine.connect() as lock_conn:
        key = advisory_key(lock_conn, "identity-resolve", brand_id)
        lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        lock_conn.commit()
        try:
            identity_service.resolve(engine, brand_id=brand_id, k_guard=k_guard)
            wecom_service.refresh_customer_tags(engine, brand_id=brand_id)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            lock_conn.commit()


def process_until_idle(
    engine: Engine, *, brand_id: int, client: WeComClient, k_guard: int = 5, rounds: int = 20
) -> ProcessResult:
    """Process until nothing is left to do (or `rounds` passes): for the CLI and the tests."""
    total = ProcessResult()
    for _ in range(rounds):
        r = process_pending(engine, brand_id=brand_id, client=client, k_guard=k_guard)
        total.processed += r.processed
        total.ignored += r.ignored
        total.failed += r.failed
        total.errors += r.errors
        if r.processed + r.ignored + r.failed == 0:
            break
    return total


def follow(
    engine: Engine,
    *,
    brand_id: int,
    client: WeComClient,
    k_guard: int = 5,
    poll_seconds: float = 0.5,
    stop: threading.Event | None = None,
    on_batch: Callable[[ProcessResult], None] | None = None,
) -> None:
    """Process continuously until `stop` is set: a new event is handled within `poll_seconds`
    of being stored (WeCom accepts a welcome message only within 20 s of the add event).
    Safe to run in several processes at once: events are claimed."""
    stop = stop or threading.Event()
    worker = worker_id()
    while not stop.is_set():
        try:
            r = process_pending(
                engine,
                brand_id=brand_id,
                client=client,
                k_guard=k_guard,
                limit=100,
                worker=worker,
                retry_backoff=True,
            )
        except OperationalError as e:  # e.g. SQLite busy past its timeout: try again shortly
            log.warning("wecom follow: the store is busy (%s); retrying", str(e).splitlines()[0])
            stop.wait(poll_seconds)
            continue
        if r.processed + r.ignored + r.failed:
            if on_batch is not None:
                on_batch(r)
        else:
            stop.wait(poll_seconds)


def _mark(engine: Engine, event_id: int, status: str, *, error: str | None = None) -> None:
    e = WeComCallbackEvent
    with engine.begin() as conn:
        conn.execute(
            update(e)
            .where(e.id == event_id)
            .values(
                status=status,
                attempts=e.attempts + 1,
                last_error=error,
                processed_at=datetime.now(UTC) if status != "failed" else None,
            )
        )


def _emit(
    conn: Connection, ctx: Ctx, type_: str, payload: dict[str, Any], *, subject: str = ""
) -> None:
    """A domain event (SPEC §3), once per callback event, type and subject."""
    wecom_service.insert_ignore(
        conn,
        DomainEvent.__table__,
        {
            "brand_id": ctx.brand_id,
            "type": type_,
            "idempotency_key": f"wecom:{ctx.event_key}:{type_}:{subject}"[:200],
            "occurred_at": ctx.create_time,
            "recorded_at": datetime.now(UTC),
            "payload": payload,
        },
        DomainEvent.id,
    )


# ----- customers ----------------------------------------------------------------------


def _fetch_contact(ctx: Ctx, external_userid: str) -> dict[str, Any] | None:
    """externalcontact/get, or None when WeCom no longer has the customer or the relation."""
    try:
        return ctx.client.external_contact_get(external_userid=external_userid)
    except WeComUnavailable:
        raise
    except WeComError as e:
        if e.errcode in GONE_ERRCODES:
            return None
        raise


def _write_customer(
    conn: Connection, ctx: Ctx, external_userid: str, detail: dict[str, Any] | None
) -> None:
    contact = (detail or {}).get("external_contact") or {}
    upsert_record(
        conn,
        brand_id=ctx.brand_id,
        record_key=f"wecom:{external_userid}",
        source="wecom",
        identifiers={"external_userid": external_userid, "unionid": contact.get("unionid")},
        name=contact.get("name") or None,
        gender=GENDERS.get(str(contact.get("gender", ""))),
    )


def _follow(detail: dict[str, Any] | None, userid: str) -> dict[str, Any] | None:
    for f in (detail or {}).get("follow_user") or []:
        if f.get("userid") == userid:
            return f
    return None


def reconcile_friendship(
    conn: Connection, *, brand_id: int, staff_id: int, userid: str, external_userid: str
) -> None:
    """Recompute the wecom_friend connections of one pair from every stored event of it.

    A start (add / add_half) opens a connection unless one is open; an end (del_*) closes the
    open one. Ties in CreateTime put starts first. An end with nothing open before it closes
    the latest open connection from elsewhere (a sync), if it began before the end.
    """
    e = WeComCallbackEvent
    rows = conn.execute(
        select(e.change_type, e.create_time, e.xml).where(
            e.brand_id == brand_id,
            e.event == "change_external_contact",
            e.user_id == userid,
            e.external_userid == external_userid,
        )
    ).all()
    timeline = sorted(
        (r for r in rows if r.change_type in FRIEND_STARTS or r.change_type in FRIEND_ENDS),
        key=lambda r: (r.create_time, 0 if r.change_type in FRIEND_STARTS else 1),
    )
    intervals: list[tuple[Any, Any | None]] = []
    orphan_ends = []
    open_start = None
    for r in timeline:
        if r.change_type in FRIEND_STARTS:
            if open_start is None:
                open_start = r
        elif open_start is not None:
            intervals.append((open_start, r))
            open_start = None
        else:
            orphan_ends.append(r)
    if open_start is not None:
        intervals.append((open_start, None))
    starts = {r.create_time for r in timeline if r.change_type in FRIEND_STARTS}
    for start, end in intervals:
        state = parse_event(start.xml).fields.get("State") or None
        way = (
            wecom_service.contact_way_by_state(conn, brand_id=brand_id, state=state)
            if state
            else None
        )
        twin = _same_friendship(
            conn, brand_id, staff_id, external_userid, start.create_time, starts
        )
        if twin is not None:
            _adopt_friendship(conn, twin, way.channel_id if way else None, state, end)
            continue
        connection_service.upsert(
            conn,
            brand_id=brand_id,
            kind="wecom_friend",
            id_type="external_userid",
            id_value=external_userid,
            staff_id=staff_id,
            created_at=start.create_time,
            channel_id=way.channel_id if way else None,
            state=state,
            ended_at=end.create_time if end is not None else None,
            ended_by=_ended_by(end) if end is not None else None,
        )
    c = ConnectionRow
    for end in orphan_ends:
        open_row = conn.execute(
            select(c.id)
            .where(
                c.brand_id == brand_id,
                c.kind == "wecom_friend",
                c.staff_id == staff_id,
                c.id_type == "external_userid",
                c.id_value == external_userid,
                c.ended_at.is_(None),
                c.created_at <= end.create_time,
            )
            .order_by(c.created_at.desc())
        ).first()
        if open_row is not None:
            connection_service.end(
                conn, connection_id=open_row.id, ended_at=end.create_time, ended_by=_ended_by(end)
            )


ADOPT_WINDOW = timedelta(minutes=10)


def _same_friendship(
    conn: Connection,
    brand_id: int,
    staff_id: int,
    external_userid: str,
    start: datetime,
    event_starts: set[datetime],
) -> Any | None:
    """The connection a sync or a transfer already wrote for the friendship this add event
    starts: same pair, created within ADOPT_WINDOW of it (WeCom's follow createtime and
    takeover_time need not equal the event's CreateTime), and not itself some event's start."""
    c = ConnectionRow
    rows = conn.execute(
        select(c.id, c.created_at, c.ended_at, c.channel_id, c.state).where(
            c.brand_id == brand_id,
            c.kind == "wecom_friend",
            c.staff_id == staff_id,
            c.id_type == "external_userid",
            c.id_value == external_userid,
            c.created_at >= start - ADOPT_WINDOW,
            c.created_at <= start + ADOPT_WINDOW,
        )
    ).all()
    if any(r.created_at == start for r in rows):
        return None  # the event's own connection exists: the plain upsert updates it
    rows = [r for r in rows if r.created_at not in event_starts]
    return min(rows, key=lambda r: abs(r.created_at - start), default=None)


def _adopt_friendship(
    conn: Connection, twin: Any, channel_id: int | None, state: str | None, end: Any | None
) -> None:
    values: dict[str, Any] = {}
    if twin.channel_id is None and channel_id is not None:
        values["channel_id"] = channel_id
    if not twin.state and state:
        values["state"] = state
    if end is not None and twin.ended_at is None:
        values.update(ended_at=end.create_time, ended_by=_ended_by(end))
    if values:
        conn.execute(update(ConnectionRow).where(ConnectionRow.id == twin.id).values(**values))


def _ended_by(end: Any) -> str:
    if parse_event(end.xml).fields.get("Source") == "DELETE_BY_TRANSFER":
        return "system"  # moved to another staff member by a transfer, nobody deleted anyone
    return FRIEND_ENDS[end.change_type]


def on_contact_added(ctx: Ctx) -> None:
    f = ctx.fields
    userid, ext = f.get("UserID", ""), f.get("ExternalUserID", "")
    if not userid or not ext:
        raise ValueError("the event names no UserID or ExternalUserID")
    detail = _fetch_contact(ctx, ext)
    follow = _follow(detail, userid)
    state = f.get("State") or None
    with ctx.engine.begin() as conn:
        staff_id = staff_service.get_or_create_by_wecom_userid(
            conn, brand_id=ctx.brand_id, userid=userid
        )
        _write_customer(conn, ctx, ext, detail)
        reconcile_friendship(
            conn, brand_id=ctx.brand_id, staff_id=staff_id, userid=userid, external_userid=ext
        )
        if follow is not None:
            wecom_service.mirror_pair_tags(
                conn,
                brand_id=ctx.brand_id,
                userid=userid,
                external_userid=ext,
                tags=follow.get("tags") or [],
            )
        way = (
            wecom_service.contact_way_by_state(conn, brand_id=ctx.brand_id, state=state)
            if state
            else None
        )
        _emit(
            conn,
            ctx,
            "wecom.friend_added",
            {
                "userid": userid,
                "external_userid": ext,
                "state": state,
                "channel_id": way.channel_id if way else None,
            },
        )
    if way is None or follow is None:
        return  # not through one of our codes, or the relation is already gone
    if way.tag_ids:
        ids = wecom_service.ensure_wecom_tags(
            ctx.engine, ctx.client, brand_id=ctx.brand_id, tag_ids=list(way.tag_ids)
        )
        wanted = set(ids.values())
        have = {str(t.get("tag_id")) for t in follow.get("tags") or []}
        if wanted - have:
            ctx.client.mark_tag(userid=userid, external_userid=ext, add_tag=sorted(wanted - have))
        with ctx.engine.begin() as conn:
            wecom_service.add_pair_tags(
                conn, brand_id=ctx.brand_id, userid=userid, external_userid=ext, wecom_ids=wanted
            )
    code = f.get("WelcomeCode")
    if code and way.welcome:
        name = ((detail or {}).get("external_contact") or {}).get("name")
        wecom_service.send_welcome(
            ctx.engine,
            ctx.client,
            brand_id=ctx.brand_id,
            welcome_code=code,
            userid=userid,
            external_userid=ext,
            contact_way_id=way.id,
            body=wecom_service.render_welcome(way.welcome, name=name),
        )


def on_contact_edited(ctx: Ctx) -> None:
    userid, ext = ctx.fields.get("UserID", ""), ctx.fields.get("ExternalUserID", "")
    detail = _fetch_contact(ctx, ext)
    follow = _follow(detail, userid)
    with ctx.engine.begin() as conn:
        staff_service.get_or_create_by_wecom_userid(conn, brand_id=ctx.brand_id, userid=userid)
        _write_customer(conn, ctx, ext, detail)
        if follow is not None:
            wecom_service.mirror_pair_tags(
                conn,
                brand_id=ctx.brand_id,
                userid=userid,
                external_userid=ext,
                tags=follow.get("tags") or [],
            )


def on_contact_ended(ctx: Ctx) -> None:
    userid, ext = ctx.fields.get("UserID", ""), ctx.fields.get("ExternalUserID", "")
    if not userid or not ext:
        raise ValueError("the event names no UserID or ExternalUserID")
    with ctx.engine.begin() as conn:
        staff_id = staff_service.get_or_create_by_wecom_userid(
            conn, brand_id=ctx.brand_id, userid=userid
        )
        _write_customer(conn, ctx, ext, None)
        reconcile_friendship(
            conn, brand_id=ctx.brand_id, staff_id=staff_id, userid=userid, external_userid=ext
        )
        _emit(
            conn,
            ctx,
            "wecom.friend_deleted",
            {
                "userid": userid,
                "external_userid": ext,
                "ended_by": _ended_by_fields(ctx.fields),
            },
        )


def _ended_by_fields(f: dict[str, str]) -> str:
    if f.get("Source") == "DELETE_BY_TRANSFER":
        return "system"
    return FRIEND_ENDS.get(f.get("ChangeType", ""), "system")


def on_transfer_failed(ctx: Ctx) -> None:
    """The customer refused the takeover, or the takeover is full: the transfer is settled."""
    with ctx.engine.begin() as conn:
        transfer_failed(
            conn,
            brand_id=ctx.brand_id,
            takeover=ctx.fields.get("UserID", ""),
            external_userid=ctx.fields.get("ExternalUserID", ""),
            reason=ctx.fields.get("FailReason"),
        )
        _emit(
            conn,
            ctx,
            "wecom.transfer_failed",
            {
                "takeover_userid": ctx.fields.get("UserID"),
                "external_userid": ctx.fields.get("ExternalUserID"),
                "reason": ctx.fields.get("FailReason"),
            },
        )


# ----- groups (客户群) -------------------------------------------------------------------


def on_chat_changed(ctx: Ctx) -> None:
    """create/update: the group and its current members from groupchat/get, then the change
    the event itself names (MemChangeList at CreateTime), which holds even when processed late;
    dismiss: every membership ends."""
    f = ctx.fields
    chat_id = f.get("ChatId", "")
    if not chat_id:
        raise ValueError("the event names no ChatId")
    snapshot = None
    if f.get("ChangeType") != "dismiss":
        try:
            snapshot = ctx.client.groupchat_get(chat_id=chat_id)
        except WeComUnavailable:
            raise
        except WeComError as e:
            if e.errcode != CHAT_NOT_FOUND:
                raise  # dismissed since: its dismiss event ends the memberships
    changed = [m for m in (f.get("MemChangeList") or "").split(",") if _is_external(m)]
    with ctx.engine.begin() as conn:
        if snapshot is not None:
            _apply_group_snapshot(conn, ctx, snapshot)
        group_id = _group_id(conn, ctx.brand_id, chat_id)
        if group_id is None:
            return
        if f.get("ChangeType") == "dismiss":
            _end_memberships(conn, ctx, chat_id, group_id, None, ended_by="staff")
        elif f.get("UpdateDetail") == "add_member":
            for ext in changed:
                _open_membership(
                    conn, ctx, chat_id, group_id, ext, ctx.create_time, f.get("JoinScene")
                )
        elif f.get("UpdateDetail") == "del_member":
            quit_by = "staff" if f.get("QuitScene") == "1" else "customer"
            _end_memberships(conn, ctx, chat_id, group_id, set(changed), ended_by=quit_by)


def _is_external(member_id: str) -> bool:
    # WeCom's external userids start with wm (WeChat users) or wo; staff userids never do.
    return member_id.startswith(("wm", "wo"))


def _group_id(conn: Connection, brand_id: int, chat_id: str) -> int | None:
    g = ChatGroup
    return conn.execute(
        select(g.id).where(g.brand_id == brand_id, g.code == chat_id)
    ).scalar_one_or_none()


def _apply_group_snapshot(conn: Connection, ctx: Ctx, chat: dict[str, Any]) -> None:
    owner = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=ctx.brand_id, userid=str(chat["owner"])
    )
    g = ChatGroup
    group_id = _group_id(conn, ctx.brand_id, str(chat["chat_id"]))
    values = {"name": chat.get("name") or chat["chat_id"], "owner_staff_id": owner}
    if group_id is None:
        group_id = conn.execute(
            g.__table__.insert()
            .values(
                brand_id=ctx.brand_id,
                code=chat["chat_id"],
                created_at=datetime.fromtimestamp(int(chat.get("create_time", 0)), UTC),
                **values,
            )
            .returning(g.id)
        ).scalar_one()
    else:
        conn.execute(update(g).where(g.id == group_id).values(**values))
    for m in chat.get("member_list") or []:
        if int(m.get("type", 0)) != 2:
            continue  # staff members are not customers
        ext = str(m["userid"])
        upsert_record(
            conn,
            brand_id=ctx.brand_id,
            record_key=f"wecom:{ext}",
            source="wecom",
            identifiers={"external_userid": ext, "unionid": m.get("unionid")},
            name=m.get("name") or None,
        )
        joined = datetime.fromtimestamp(int(m.get("join_time", 0)), UTC)
        _open_membership(
            conn, ctx, str(chat["chat_id"]), group_id, ext, joined, m.get("join_scene")
        )


def _open_membership(
    conn: Connection,
    ctx: Ctx,
    chat_id: str,
    group_id: int,
    ext: str,
    joined: datetime,
    join_scene: object,
) -> None:
    """A membership from `joined`, unless one is open already or one covers that instant."""
    c = ConnectionRow
    covering = conn.execute(
        select(c.id).where(
            c.brand_id == ctx.brand_id,
            c.kind == "group_member",
            c.group_id == group_id,
            c.id_type == "external_userid",
            c.id_value == ext,
            c.created_at <= joined,
            (c.ended_at.is_(None)) | (c.ended_at > joined),
        )
    ).first()
    if covering is not None:
        return
    connection_service.upsert(
        conn,
        brand_id=ctx.brand_id,
        kind="group_member",
        id_type="external_userid",
        id_value=ext,
        group_id=group_id,
        created_at=joined,
    )
    _emit(
        conn,
        ctx,
        "wecom.group_joined",
        subject=ext,
        payload={
            "chat_id": chat_id,
            "external_userid": ext,
            "join_scene": join_scene,
        },
    )


def _end_memberships(
    conn: Connection,
    ctx: Ctx,
    chat_id: str,
    group_id: int,
    members: set[str] | None,
    *,
    ended_by: str,
) -> None:
    """End the open memberships of `members` (all when None) that began before the event."""
    c = ConnectionRow
    open_rows = conn.execute(
        select(c.id, c.id_value, c.created_at).where(
            c.brand_id == ctx.brand_id,
            c.kind == "group_member",
            c.group_id == group_id,
            c.ended_at.is_(None),
        )
    ).all()
    for row in open_rows:
        if (
            members is not None and row.id_value not in members
        ) or row.created_at > ctx.create_time:
            continue
        connection_service.end(
            conn, connection_id=row.id, ended_at=ctx.create_time, ended_by=ended_by
        )
        _emit(
            conn,
            ctx,
            "wecom.group_left",
            subject=row.id_value,
            payload={
                "chat_id": chat_id,
                "external_userid": row.id_value,
                "ended_by": ended_by,
            },
        )


# ----- corp tags ----------------------------------------------------------------------


def on_tags_changed(ctx: Ctx) -> None:
    wecom_service.sync_corp_tags(ctx.engine, ctx.client, brand_id=ctx.brand_id)


# ----- the directory (通讯录) ---------------------------------------------------------------


def on_directory_changed(ctx: Ctx) -> None:
    """change_contact: members and departments into the directory mirror and staff."""
    f = ctx.fields
    change = f.get("ChangeType", "")
    if change in ("create_user", "update_user"):
        old = f.get("UserID", "")
        if not old:
            raise ValueError("the event names no UserID")
        userid = f.get("NewUserID") or old
        try:
            user: dict[str, Any] | None = ctx.client.user_get(userid=userid)
        except WeComUnavailable:
            raise
        except WeComError:
            user = None  # not visible to this app: what the event says is all there is
        with ctx.engine.begin() as conn:
            if userid != old:
                directory.rename_member(conn, brand_id=ctx.brand_id, old=old, new=userid)
            if user is None:
                user = directory.member_from_event(conn, brand_id=ctx.brand_id, fields=f)
            directory.upsert_member(conn, brand_id=ctx.brand_id, user=user, now=ctx.create_time)
            _emit(conn, ctx, "wecom.staff_changed", {"userid": userid, "change": change})
    elif change == "delete_user":
        userid = f.get("UserID", "")
        if not userid:
            raise ValueError("the event names no UserID")
        with ctx.engine.begin() as conn:
            directory.member_left(conn, brand_id=ctx.brand_id, userid=userid, at=ctx.create_time)
            _emit(conn, ctx, "wecom.staff_left", {"userid": userid})
    elif change in ("create_party", "update_party"):
        with ctx.engine.begin() as conn:
            dept = directory.department_from_event(conn, brand_id=ctx.brand_id, fields=f)
            directory.upsert_department(conn, brand_id=ctx.brand_id, dept=dept)
    elif change == "delete_party":
        with ctx.engine.begin() as conn:
            directory.delete_department(
                conn, brand_id=ctx.brand_id, department_id=int(f["Id"]), at=ctx.create_time
            )
    else:
        log.info("change_contact %s: nothing in Siyu follows it", change)


HANDLERS: dict[tuple[str, str | None], Callable[[Ctx], None]] = {
    ("change_external_contact", "add_external_contact"): on_contact_added,
    ("change_external_contact", "add_half_external_contact"): on_contact_added,
    ("change_external_contact", "edit_external_contact"): on_contact_edited,
    ("change_external_contact", "del_external_contact"): on_contact_ended,
    ("change_external_contact", "del_follow_user"): on_contact_ended,
    ("change_external_contact", "transfer_fail"): on_transfer_failed,
    ("change_external_chat", None): on_chat_changed,
    ("change_external_tag", None): on_tags_changed,
    ("change_contact", None): on_directory_changed,
}
