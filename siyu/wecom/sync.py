"""`siyu wecom sync`: pull WeCom's staff, corp tags, customers and groups, and reconcile.

The callbacks are the fast path; the sync repairs what they missed (SPEC §11, issue #8 §4):

1. staff      departments and members (department/list, user/list); members gone have left.
2. tags       corp tags (get_corp_tag_list) into Siyu's tag groups and tags.
3. customers  per 100 staff, every page of externalcontact/batch/get_by_user: profiles and
              identities (external_userid, unionid), friendships (channel from the State),
              the corp tags on each (staff, customer) pair.
4. groups     every page of groupchat/list, then groupchat/get per group: owner, name, members.
5. reconcile  what Siyu holds open and this run did not see in WeCom has ended there: those
              friendships and memberships are ended (ended_by 'system'); then identity
              resolution and the customers' WeCom tags.

Resumable: each page is written in one transaction together with the cursor that follows it
(`wecom_sync_run`), so a sync that fails midway (WeCom unreachable after every retry, a crash)
resumes at that page when run again. Idempotent: every write compares first and counts only
real changes, so a second run reports that nothing changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from siyu import pii
from siyu.communities.models import ChatGroup
from siyu.connections import service as connection_service
from siyu.connections.models import Connection as ConnectionRow
from siyu.events.models import Event as DomainEvent
from siyu.identity import service as identity_service
from siyu.identity.records import upsert_record
from siyu.staff import service as staff_service
from siyu.staff.models import Staff
from siyu.tags.models import Tag, TagGroup
from siyu.wecom import directory
from siyu.wecom import service as wecom_service
from siyu.wecom.client import WeComClient, WeComError, WeComUnavailable
from siyu.wecom.models import (
    WeComContactTag,
    WeComExternalContact,
    WeComSyncRun,
    WeComSyncSeen,
)

log = logging.getLogger(__name__)

PHASES = ("staff", "tags", "customers", "groups", "reconcile", "done")
USERIDS_PER_CALL = 100  # batch/get_by_user: userid_list holds at most 100 staff
CHAT_NOT_FOUND = 40050
GENDERS = {1: "男", 2: "女"}

# What the counts mean, in the order the CLI prints them.
COUNT_LABELS = {
    "departments": "departments changed",
    "staff": "staff added or changed",
    "staff_left": "staff who left",
    "tags": "corp tags changed",
    "customers": "customer profiles added or changed",
    "friendships_added": "friendships added",
    "friendships_ended": "friendships ended",
    "pair_tags": "staff–customer tag sets changed",
    "groups": "groups added or changed",
    "members_joined": "group memberships added",
    "members_left": "group memberships ended",
    "customer_tags": "customer tags added or removed",
}


@dataclass
class SyncResult:
    run_id: int
    resumed_from: str | None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(self.counts.values())


@dataclass
class _Run:
    brand_id: int
    run_id: int
    phase: str
    cursor: dict[str, Any]
    counts: dict[str, int]
    started_at: datetime

    def add(self, key: str, n: int = 1) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n


class SyncInterrupted(Exception):
    """The sync stopped midway; its cursor is stored and the next run resumes there."""

    def __init__(self, phase: str, cause: Exception) -> None:
        super().__init__(
            f"the WeCom sync stopped in phase '{phase}': {cause}. What was pulled is kept; "
            "run `siyu wecom sync` again to resume from there."
        )
        self.phase = phase
        self.cause = cause


def sync(
    engine: Engine,
    client: WeComClient,
    *,
    brand_id: int,
    k_guard: int = 5,
    page_size: int = 100,
    progress: Callable[[str], None] | None = None,
) -> SyncResult:
    """Run (or resume) the brand's sync to the end. Raises SyncInterrupted if it stops."""
    run, resumed_from = _start_or_resume(engine, brand_id)
    steps: dict[str, Callable[[], None]] = {
        "staff": lambda: _sync_staff(engine, client, run),
        "tags": lambda: _sync_tags(engine, client, run),
        "customers": lambda: _sync_customers(engine, client, run, page_size),
        "groups": lambda: _sync_groups(engine, client, run, page_size),
        "reconcile": lambda: _reconcile(engine, run, k_guard),
    }
    while run.phase != "done":
        if progress:
            progress(run.phase)
        try:
            steps[run.phase]()
        except (WeComError, OSError) as e:
            with engine.begin() as conn:
                conn.execute(
                    update(WeComSyncRun)
                    .where(WeComSyncRun.brand_id == brand_id)
                    .values(last_error=f"{type(e).__name__}: {e}"[:2000])
                )
            raise SyncInterrupted(run.phase, e) from e
    return SyncResult(run.run_id, resumed_from, dict(run.counts))


# ----- run state ----------------------------------------------------------------------


def _start_or_resume(engine: Engine, brand_id: int) -> tuple[_Run, str | None]:
    r = WeComSyncRun
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(select(r).where(r.brand_id == brand_id)).first()
        if row is not None and row.finished_at is None:
            run = _Run(
                brand_id,
                row.run_id,
                row.phase,
                dict(row.cursor or {}),
                dict(row.counts or {}),
                row.started_at,
            )
            return run, row.phase
        run_id = 1 if row is None else row.run_id + 1
        values = {
            "run_id": run_id,
            "phase": PHASES[0],
            "cursor": {},
            "counts": {},
            "started_at": now,
            "finished_at": None,
            "last_error": None,
        }
        if row is None:
            conn.execute(r.__table__.insert().values(brand_id=brand_id, **values))
        else:
            conn.execute(update(r).where(r.brand_id == brand_id).values(**values))
        s = WeComSyncSeen
        conn.execute(delete(s).where(s.brand_id == brand_id, s.run_id < run_id))
    return _Run(brand_id, run_id, PHASES[0], {}, {}, now), None


def _save(conn: Connection, run: _Run, *, phase: str | None = None) -> None:
    """Store the run's cursor and counts (in the transaction of the page just written)."""
    if phase is not None:
        run.phase = phase
    values: dict[str, Any] = {
        "phase": run.phase,
        "cursor": dict(run.cursor),
        "counts": dict(run.counts),
        "last_error": None,
    }
    if run.phase == "done":
        values["finished_at"] = datetime.now(UTC)
    conn.execute(update(WeComSyncRun).where(WeComSyncRun.brand_id == run.brand_id).values(**values))


def _seen(conn: Connection, run: _Run, kind: str, owner: str, subject: str = "") -> None:
    wecom_service.insert_ignore(
        conn,
        WeComSyncSeen.__table__,
        {
            "brand_id": run.brand_id,
            "run_id": run.run_id,
            "kind": kind,
            "owner": owner,
            "subject": subject,
        },
        WeComSyncSeen.kind,
    )


def _emit(
    conn: Connection, run: _Run, type_: str, key: str, payload: dict[str, Any], at: datetime
) -> None:
    wecom_service.insert_ignore(
        conn,
        DomainEvent.__table__,
        {
            "brand_id": run.brand_id,
            "type": type_,
            "idempotency_key": f"wecom:sync:{key}:{type_}"[:200],
            "occurred_at": at,
            "recorded_at": datetime.now(UTC),
            "payload": {**payload, "source": "sync"},
        },
        DomainEvent.id,
    )


# ----- 1. staff -----------------------------------------------------------------------


def _sync_staff(engine: Engine, client: WeComClient, run: _Run) -> None:
    departments = client.department_list()
    roots = [
        d
        for d in departments
        if int(d.get("parentid") or 0) not in {int(x["id"]) for x in departments}
    ]
    users: dict[str, dict[str, Any]] = {}
    for root in roots or [{"id": 1}]:
        for u in client.user_list(department_id=int(root["id"]), fetch_child=True):
            users[str(u["userid"])] = u
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for d in departments:
            run.add(
                "departments", int(directory.upsert_department(conn, brand_id=run.brand_id, dept=d))
            )
        for u in users.values():
            run.add(
                "staff", int(directory.upsert_member(conn, brand_id=run.brand_id, user=u, now=now))
            )
        for userid in set(directory.active_userids(conn, brand_id=run.brand_id)) - set(users):
            run.add(
                "staff_left",
                int(directory.member_left(conn, brand_id=run.brand_id, userid=userid, at=now)),
            )
        run.cursor = {}
        _save(conn, run, phase="tags")


# ----- 2. corp tags -------------------------------------------------------------------


def _tag_snapshot(engine: Engine, brand_id: int) -> set[tuple[Any, ...]]:
    with engine.connect() as conn:
        return {
            tuple(r)
            for r in conn.execute(
                select(TagGroup.name, TagGroup.wecom_group_id, Tag.name, Tag.wecom_tag_id)
                .join(TagGroup, TagGroup.id == Tag.group_id)
                .where(TagGroup.brand_id == brand_id)
            )
        }


def _sync_tags(engine: Engine, client: WeComClient, run: _Run) -> None:
    before = _tag_snapshot(engine, run.brand_id)
    wecom_service.sync_corp_tags(engine, client, brand_id=run.brand_id)
    after = _tag_snapshot(engine, run.brand_id)
    with engine.begin() as conn:
        run.add("tags", len(before ^ after))
        userids = directory.active_userids(conn, brand_id=run.brand_id)
        run.cursor = {"userids": userids, "batch": 0, "page": ""}
        _save(conn, run, phase="customers")


# ----- 3. customers -------------------------------------------------------------------


def _sync_customers(engine: Engine, client: WeComClient, run: _Run, page_size: int) -> None:
    userids: list[str] = list(run.cursor.get("userids") or [])
    batches = [userids[i : i + USERIDS_PER_CALL] for i in range(0, len(userids), USERIDS_PER_CALL)]
    while int(run.cursor.get("batch", 0)) < len(batches):
        batch = int(run.cursor["batch"])
        page = client.batch_get_by_user(
            userid_list=batches[batch], cursor=str(run.cursor.get("page") or ""), limit=page_size
        )
        with engine.begin() as conn:
            for item in page.get("external_contact_list") or []:
                _apply_contact(conn, run, item)
            nxt = page.get("next_cursor") or ""
            run.cursor = {
                "userids": userids,
                "batch": batch if nxt else batch + 1,
                "page": nxt,
            }
            _save(conn, run)
    with engine.begin() as conn:
        run.cursor = {"userids": userids, "page": "", "done_in_page": 0}
        _save(conn, run, phase="groups")


def _apply_contact(conn: Connection, run: _Run, item: dict[str, Any]) -> None:
    contact = item.get("external_contact") or {}
    follow = item.get("follow_info") or {}
    ext = str(contact.get("external_userid") or "")
    userid = str(follow.get("userid") or "")
    if not ext or not userid:
        return
    if _write_profile(conn, run.brand_id, contact):
        run.add("customers")
    staff_id = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=run.brand_id, userid=userid
    )
    _seen(conn, run, "friend", userid, ext)
    c = ConnectionRow
    open_row = conn.execute(
        select(c.id, c.channel_id).where(
            c.brand_id == run.brand_id,
            c.kind == "wecom_friend",
            c.staff_id == staff_id,
            c.id_type == "external_userid",
            c.id_value == ext,
            c.ended_at.is_(None),
        )
    ).first()
    state = str(follow.get("state") or "") or None
    if open_row is None:
        created = datetime.fromtimestamp(int(follow.get("createtime") or 0), UTC)
        way = (
            wecom_service.contact_way_by_state(conn, brand_id=run.brand_id, state=state)
            if state
            else None
        )
        connection_service.upsert(
            conn,
            brand_id=run.brand_id,
            kind="wecom_friend",
            id_type="external_userid",
            id_value=ext,
            staff_id=staff_id,
            created_at=created,
            channel_id=way.channel_id if way else None,
            state=state,
        )
        run.add("friendships_added")
        _emit(
            conn,
            run,
            "wecom.friend_added",
            f"{userid}:{ext}:{int(created.timestamp())}",
            {
                "userid": userid,
                "external_userid": ext,
                "state": state,
                "channel_id": way.channel_id if way else None,
            },
            created,
        )
    wanted = {str(t) for t in follow.get("tag_id") or []}
    t = WeComContactTag
    have = set(
        conn.execute(
            select(t.wecom_tag_id).where(
                t.brand_id == run.brand_id, t.user_id == userid, t.external_userid == ext
            )
        ).scalars()
    )
    if have != wanted:
        wecom_service.mirror_pair_tags(
            conn,
            brand_id=run.brand_id,
            userid=userid,
            external_userid=ext,
            tags=[{"tag_id": w, "type": 1} for w in sorted(wanted)],
        )
        run.add("pair_tags")


def _write_profile(conn: Connection, brand_id: int, contact: dict[str, Any]) -> bool:
    """The customer's record and identities, when WeCom's profile differs from the last one."""
    ext = str(contact["external_userid"])
    name = contact.get("name") or None
    unionid = contact.get("unionid") or None
    gender = int(contact["gender"]) if contact.get("gender") not in (None, "") else None
    m = WeComExternalContact
    name_hash = pii.name_hash(pii.keyring(conn), name)  # compared, never shown (siyu.pii)
    row = conn.execute(
        select(m.name_hash, m.unionid, m.gender).where(
            m.brand_id == brand_id, m.external_userid == ext
        )
    ).first()
    if row is not None and tuple(row) == (name_hash, unionid, gender):
        return False
    upsert_record(
        conn,
        brand_id=brand_id,
        record_key=f"wecom:{ext}",
        source="wecom",
        identifiers={"external_userid": ext, "unionid": unionid},
        name=name,
        gender=GENDERS.get(gender or 0),
    )
    values = {"name_hash": name_hash, "unionid": unionid, "gender": gender,
              "updated_at": datetime.now(UTC)}  # fmt: skip
    if row is None:
        conn.execute(m.__table__.insert().values(brand_id=brand_id, external_userid=ext, **values))
    else:
        conn.execute(
            update(m).where(m.brand_id == brand_id, m.external_userid == ext).values(**values)
        )
    return True


# ----- 4. groups ----------------------------------------------------------------------


def _sync_groups(engine: Engine, client: WeComClient, run: _Run, page_size: int) -> None:
    while True:
        page_cursor = str(run.cursor.get("page") or "")
        page = client.groupchat_list(status_filter=0, cursor=page_cursor, limit=page_size)
        chats = page.get("group_chat_list") or []
        done = int(run.cursor.get("done_in_page") or 0)
        for i in range(done, len(chats)):
            chat_id = str(chats[i]["chat_id"])
            try:
                detail = client.groupchat_get(chat_id=chat_id)
            except WeComUnavailable:
                raise
            except WeComError as e:
                if e.errcode != CHAT_NOT_FOUND:
                    raise
                detail = None  # dismissed since the list was read
            with engine.begin() as conn:
                if detail is not None:
                    _apply_group(conn, run, detail)
                run.cursor = {**run.cursor, "page": page_cursor, "done_in_page": i + 1}
                _save(conn, run)
        nxt = page.get("next_cursor") or ""
        with engine.begin() as conn:
            if nxt:
                run.cursor = {**run.cursor, "page": nxt, "done_in_page": 0}
                _save(conn, run)
            else:
                run.cursor = {"userids": run.cursor.get("userids") or []}
                _save(conn, run, phase="reconcile")
                return


def _apply_group(conn: Connection, run: _Run, chat: dict[str, Any]) -> None:
    chat_id = str(chat["chat_id"])
    owner = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=run.brand_id, userid=str(chat["owner"])
    )
    _seen(conn, run, "group", chat_id)
    g = ChatGroup
    name = str(chat.get("name") or chat_id)
    row = conn.execute(
        select(g.id, g.name, g.owner_staff_id).where(g.brand_id == run.brand_id, g.code == chat_id)
    ).first()
    if row is None:
        group_id = conn.execute(
            g.__table__.insert()
            .values(
                brand_id=run.brand_id,
                code=chat_id,
                name=name,
                owner_staff_id=owner,
                created_at=datetime.fromtimestamp(int(chat.get("create_time") or 0), UTC),
            )
            .returning(g.id)
        ).scalar_one()
        run.add("groups")
    else:
        group_id = row.id
        if (row.name, row.owner_staff_id) != (name, owner):
            conn.execute(update(g).where(g.id == group_id).values(name=name, owner_staff_id=owner))
            run.add("groups")
    c = ConnectionRow
    open_members = set(
        conn.execute(
            select(c.id_value).where(
                c.brand_id == run.brand_id,
                c.kind == "group_member",
                c.group_id == group_id,
                c.ended_at.is_(None),
            )
        ).scalars()
    )
    for m in chat.get("member_list") or []:
        if int(m.get("type") or 0) != 2:
            continue  # staff members are not customers
        ext = str(m["userid"])
        _seen(conn, run, "member", chat_id, ext)
        if ext in open_members:
            continue
        upsert_record(
            conn,
            brand_id=run.brand_id,
            record_key=f"wecom:{ext}",
            source="wecom",
            identifiers={"external_userid": ext, "unionid": m.get("unionid")},
            name=m.get("name") or None,
        )
        joined = datetime.fromtimestamp(int(m.get("join_time") or 0), UTC)
        connection_service.upsert(
            conn,
            brand_id=run.brand_id,
            kind="group_member",
            id_type="external_userid",
            id_value=ext,
            group_id=group_id,
            created_at=joined,
        )
        open_members.add(ext)
        run.add("members_joined")
        _emit(
            conn,
            run,
            "wecom.group_joined",
            f"{chat_id}:{ext}:{int(joined.timestamp())}",
            {"chat_id": chat_id, "external_userid": ext, "join_scene": m.get("join_scene")},
            joined,
        )


# ----- 5. reconcile -------------------------------------------------------------------


def _unseen(
    conn: Connection, run: _Run, kind: str, seen: str, target: Any, on: Any, owner: Any
) -> list[Any]:
    """Open connections of `kind` older than this run that the run did not see in WeCom:
    (connection id, owner — staff userid or chat id, external_userid)."""
    c, s = ConnectionRow, WeComSyncSeen
    return list(
        conn.execute(
            select(c.id, owner, c.id_value)
            .join(target, on)
            .where(
                c.brand_id == run.brand_id,
                c.kind == kind,
                c.ended_at.is_(None),
                c.created_at < run.started_at,
                ~select(s.kind)
                .where(
                    s.brand_id == run.brand_id,
                    s.run_id == run.run_id,
                    s.kind == seen,
                    s.owner == owner,
                    s.subject == c.id_value,
                )
                .exists(),
            )
        ).all()
    )


def _reconcile(engine: Engine, run: _Run, k_guard: int) -> None:
    now = datetime.now(UTC)
    pulled = set(run.cursor.get("userids") or [])
    c = ConnectionRow
    with engine.begin() as conn:
        friends = _unseen(conn, run, "wecom_friend", "friend", Staff, Staff.id == c.staff_id,
                          Staff.wecom_userid)  # fmt: skip
        for conn_id, userid, ext in friends:
            if userid not in pulled:
                continue  # a member who left: WeCom keeps the customers until a transfer
            connection_service.end(conn, connection_id=conn_id, ended_at=now, ended_by="system")
            t = WeComContactTag  # the pair's corp tags went with the friendship
            conn.execute(
                delete(t).where(
                    t.brand_id == run.brand_id, t.user_id == userid, t.external_userid == ext
                )
            )
            run.add("friendships_ended")
            _emit(
                conn,
                run,
                "wecom.friend_deleted",
                f"{run.run_id}:{conn_id}",
                {"userid": userid, "external_userid": ext, "ended_by": "system"},
                now,
            )
        g = ChatGroup
        members = _unseen(conn, run, "group_member", "member", g, g.id == c.group_id, g.code)
        for conn_id, chat_id, ext in members:
            connection_service.end(conn, connection_id=conn_id, ended_at=now, ended_by="system")
            run.add("members_left")
            _emit(
                conn,
                run,
                "wecom.group_left",
                f"{run.run_id}:{conn_id}",
                {"chat_id": chat_id, "external_userid": ext, "ended_by": "system"},
                now,
            )
    identity_service.resolve(engine, brand_id=run.brand_id, k_guard=k_guard)
    added, removed = wecom_service.refresh_customer_tags(engine, brand_id=run.brand_id)
    with engine.begin() as conn:
        run.add("customer_tags", added + removed)
        run.cursor = {}
        _save(conn, run, phase="done")
