"""Staff transfer (SPEC §11): a moving or resigned guide's customers and groups to another guide.

WeCom's rules (客户联系 → 在职继承 / 离职继承), which Siyu checks before it asks:

* in service (在职继承, transfer_customer): the customers must be the handover's; at most 100
  a call; each customer may be transferred at most twice in 90 natural days; the customer
  may refuse; WeCom takes over after 24 hours. The transfer message is at most 200 characters.
* resigned (离职继承, resigned/transfer_customer): the handover must have left (deleted from the
  directory); at most 100 a call; WeCom takes over after 24 hours.
* groups: groupchat/onjob_transfer (in service) or groupchat/transfer (resigned), at most 100
  a call; the new owner has the group at once.
* handover and takeover must differ, and the takeover must be a current member.

Each customer's transfer is a row of `wecom_transfer`, written *before* WeCom is asked
(status requesting), then waiting once WeCom accepted it, then what WeCom reports through
transfer_result / resigned/transfer_result (`refresh`) or a transfer_fail callback:
succeeded, refused, takeover_full, no_record. When WeCom reports success the friendship moves:
the handover's connection ends (ended_by 'system') and the takeover's begins, keeping the
customer's channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from siyu.communities.models import ChatGroup
from siyu.connections import service as connection_service
from siyu.connections.models import Connection as ConnectionRow
from siyu.events.models import Event as DomainEvent
from siyu.staff import service as staff_service
from siyu.wecom import directory
from siyu.wecom import service as wecom_service
from siyu.wecom.client import WeComClient, WeComError, WeComUnavailable
from siyu.wecom.models import WeComTransfer

log = logging.getLogger(__name__)

MAX_PER_CALL = 100
IN_SERVICE_LIMIT = 2  # transfers of one customer …
IN_SERVICE_WINDOW = timedelta(days=90)  # … within 90 natural days
SUCCESS_MSG_MAX = 200
OPEN = ("requesting", "waiting")
RESULT_STATUS = {1: "succeeded", 2: "waiting", 3: "refused", 4: "takeover_full", 5: "no_record"}
FAIL_REASONS = {"customer_refused": "refused", "customer_limit_exceed": "takeover_full"}
ERRCODE_REASONS = {
    40096: "not a valid external_userid",
    84061: "not the handover's customer",
    40050: "no such group",
}


class TransferRefused(ValueError):
    """The transfer breaks one of WeCom's rules; nothing was asked of WeCom."""


@dataclass
class TransferSummary:
    kind: str
    requested: int = 0
    waiting: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (external_userid, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    unanswered: int = 0  # WeCom did not answer: resolved by the next `refresh`
    groups_moved: int = 0
    groups_failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RefreshSummary:
    checked: int = 0
    changed: dict[str, int] = field(default_factory=dict)


def transfer(
    engine: Engine,
    client: WeComClient,
    *,
    brand_id: int,
    handover: str,
    takeover: str,
    resigned: bool | None = None,
    customers: list[str] | None = None,
    groups: bool = True,
    message: str | None = None,
    now: datetime | None = None,
) -> TransferSummary:
    """Ask WeCom to hand `handover`'s customers (all, or `customers`) and groups to `takeover`.

    resigned None: decided by the directory (a member who left is a resigned transfer).
    """
    now = now or datetime.now(UTC)
    if handover == takeover:
        raise TransferRefused("--from and --to are the same staff member")
    if message is not None and len(message) > SUCCESS_MSG_MAX:
        raise TransferRefused(
            f"the transfer message is {len(message)} characters; WeCom allows {SUCCESS_MSG_MAX}"
        )
    with engine.connect() as conn:
        left = directory.left_userids(conn, brand_id=brand_id)
        active = set(directory.active_userids(conn, brand_id=brand_id))
    if takeover in left:
        raise TransferRefused(f"{takeover} has left the company and cannot take over customers")
    if takeover not in active:
        _check_member(engine, client, brand_id, takeover)
    if resigned is None:
        resigned = handover in left
    if resigned and handover not in left and _has_left(engine, client, brand_id, handover, now):
        left.add(handover)
    if resigned and handover not in left:
        raise TransferRefused(
            f"{handover} has not left the company: a resigned transfer (离职继承) needs a member "
            "who left; leave out --resigned for an in-service transfer (在职继承)"
        )
    if not resigned and handover in left:
        raise TransferRefused(f"{handover} has left the company: use --resigned (离职继承)")
    kind = "resigned" if resigned else "in_service"
    summary = TransferSummary(kind)
    wanted = (
        list(dict.fromkeys(customers)) if customers else _customers_of(client, handover, resigned)
    )
    todo = _check_rules(engine, brand_id, kind, handover, wanted, now, summary)
    for i in range(0, len(todo), MAX_PER_CALL):
        _request(
            engine,
            client,
            brand_id,
            kind,
            handover,
            takeover,
            todo[i : i + MAX_PER_CALL],
            message,
            now,
            summary,
        )
    if groups:
        _transfer_groups(engine, client, brand_id, kind, handover, takeover, now, summary)
    return summary


def _check_member(engine: Engine, client: WeComClient, brand_id: int, userid: str) -> None:
    """The takeover is a current member of WeCom's directory (asked when Siyu has not seen
    them yet); they are stored as staff."""
    try:
        user = client.user_get(userid=userid)
    except WeComUnavailable:
        raise
    except WeComError as e:
        raise TransferRefused(
            f"{userid} is not a member of the WeCom directory (errcode {e.errcode})"
        ) from None
    if int(user.get("status") or 1) == directory.LEFT:
        raise TransferRefused(f"{userid} has left the company and cannot take over customers")
    with engine.begin() as conn:
        directory.upsert_member(conn, brand_id=brand_id, user=user)


def _has_left(
    engine: Engine, client: WeComClient, brand_id: int, userid: str, now: datetime
) -> bool:
    """Ask WeCom whether a member Siyu has not seen leave has left (gone from the directory,
    or status 5); if so, record it."""
    try:
        gone = int(client.user_get(userid=userid).get("status") or 1) == directory.LEFT
    except WeComUnavailable:
        raise
    except WeComError:
        gone = True  # no longer in the directory
    if gone:
        with engine.begin() as conn:
            directory.member_left(conn, brand_id=brand_id, userid=userid, at=now)
    return gone


def _customers_of(client: WeComClient, handover: str, resigned: bool) -> list[str]:
    """The handover's customers as WeCom has them: unassigned ones of a member who left."""
    if not resigned:
        return client.external_contact_list(userid=handover)
    found: list[str] = []
    cursor = ""
    while True:
        page = client.get_unassigned_list(cursor=cursor)
        found += [
            r["external_userid"]
            for r in page.get("info") or []
            if r.get("handover_userid") == handover
        ]
        cursor = page.get("next_cursor") or ""
        if page.get("is_last", not cursor) or not cursor:
            return list(dict.fromkeys(found))


def _check_rules(
    engine: Engine,
    brand_id: int,
    kind: str,
    handover: str,
    wanted: list[str],
    now: datetime,
    summary: TransferSummary,
) -> list[str]:
    t = WeComTransfer
    with engine.connect() as conn:
        pending = set(
            conn.execute(
                select(t.subject_id).where(
                    t.brand_id == brand_id,
                    t.subject == "customer",
                    t.handover_userid == handover,
                    t.status.in_(OPEN),
                )
            ).scalars()
        )
        recent: dict[str, int] = {}
        if kind == "in_service" and wanted:
            recent = dict(
                conn.execute(
                    select(t.subject_id, func.count())
                    .where(
                        t.brand_id == brand_id,
                        t.subject == "customer",
                        t.kind == "in_service",
                        t.status.in_(("waiting", "succeeded")),
                        t.requested_at >= now - IN_SERVICE_WINDOW,
                    )
                    .group_by(t.subject_id)
                ).all()
            )
    todo = []
    for ext in wanted:
        if ext in pending:
            summary.skipped.append((ext, "already being transferred"))
        elif recent.get(ext, 0) >= IN_SERVICE_LIMIT:
            summary.skipped.append(
                (
                    ext,
                    f"transferred {recent[ext]} times in 90 days (WeCom allows {IN_SERVICE_LIMIT})",
                )
            )
        else:
            todo.append(ext)
    return todo


def _request(
    engine: Engine,
    client: WeComClient,
    brand_id: int,
    kind: str,
    handover: str,
    takeover: str,
    batch: list[str],
    message: str | None,
    now: datetime,
    summary: TransferSummary,
) -> None:
    t = WeComTransfer
    with engine.begin() as conn:
        ids = {
            ext: conn.execute(
                t.__table__.insert()
                .values(
                    brand_id=brand_id,
                    kind=kind,
                    subject="customer",
                    subject_id=ext,
                    handover_userid=handover,
                    takeover_userid=takeover,
                    status="requesting",
                    requested_at=now,
                    updated_at=now,
                )
                .returning(t.id)
            ).scalar_one()
            for ext in batch
        }
    summary.requested += len(batch)
    try:
        if kind == "resigned":
            answers = client.resigned_transfer_customer(
                handover_userid=handover, takeover_userid=takeover, external_userid=batch
            )
        else:
            answers = client.transfer_customer(
                handover_userid=handover,
                takeover_userid=takeover,
                external_userid=batch,
                transfer_success_msg=message,
            )
    except WeComUnavailable as e:
        # Maybe executed: the rows stay 'requesting' and transfer_result settles them.
        log.warning("transfer %s → %s: WeCom did not answer (%s)", handover, takeover, e)
        summary.unanswered += len(batch)
        return
    except WeComError as e:
        with engine.begin() as conn:
            for ext in batch:
                _set(conn, ids[ext], "failed", errcode=e.errcode, reason=e.errmsg[:200])
        summary.failed += [(ext, f"errcode {e.errcode}: {e.errmsg}") for ext in batch]
        return
    by_ext = {str(a.get("external_userid")): int(a.get("errcode") or 0) for a in answers}
    with engine.begin() as conn:
        for ext in batch:
            code = by_ext.get(ext)
            if code == 0:
                _set(conn, ids[ext], "waiting")
                summary.waiting += 1
            elif code is None:
                pass  # not in the answer: left 'requesting' for refresh to settle
            else:
                reason = ERRCODE_REASONS.get(code, f"errcode {code}")
                _set(conn, ids[ext], "failed", errcode=code, reason=reason)
                summary.failed.append((ext, reason))


def _set(
    conn: Connection,
    row_id: int,
    status: str,
    *,
    errcode: int | None = None,
    reason: str | None = None,
    takeover_at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": datetime.now(UTC)}
    if errcode is not None:
        values["errcode"] = errcode
    if reason is not None:
        values["reason"] = reason
    if takeover_at is not None:
        values["takeover_at"] = takeover_at
    conn.execute(update(WeComTransfer).where(WeComTransfer.id == row_id).values(**values))


def _transfer_groups(
    engine: Engine,
    client: WeComClient,
    brand_id: int,
    kind: str,
    handover: str,
    takeover: str,
    now: datetime,
    summary: TransferSummary,
) -> None:
    chats: list[str] = []
    cursor = ""
    while True:
        page = client.groupchat_list(owner_userids=[handover], cursor=cursor)
        chats += [str(c["chat_id"]) for c in page.get("group_chat_list") or []]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    for i in range(0, len(chats), MAX_PER_CALL):
        batch = chats[i : i + MAX_PER_CALL]
        failures = {
            str(f["chat_id"]): f
            for f in client.groupchat_transfer(
                chat_id_list=batch, new_owner=takeover, resigned=kind == "resigned"
            )
        }
        with engine.begin() as conn:
            owner = staff_service.get_or_create_by_wecom_userid(
                conn, brand_id=brand_id, userid=takeover
            )
            for chat_id in batch:
                f = failures.get(chat_id)
                status = "failed" if f else "succeeded"
                reason = None
                if f:
                    reason = ERRCODE_REASONS.get(int(f.get("errcode") or 0)) or str(
                        f.get("errmsg") or ""
                    )
                    summary.groups_failed.append((chat_id, reason))
                else:
                    summary.groups_moved += 1
                    conn.execute(
                        update(ChatGroup)
                        .where(ChatGroup.brand_id == brand_id, ChatGroup.code == chat_id)
                        .values(owner_staff_id=owner)
                    )
                conn.execute(
                    WeComTransfer.__table__.insert().values(
                        brand_id=brand_id,
                        kind=kind,
                        subject="group",
                        subject_id=chat_id,
                        handover_userid=handover,
                        takeover_userid=takeover,
                        status=status,
                        errcode=int(f["errcode"]) if f else None,
                        reason=reason[:200] if reason else None,
                        requested_at=now,
                        takeover_at=None if f else now,
                        updated_at=now,
                    )
                )


# ----- following WeCom's answer ---------------------------------------------------------


def refresh(engine: Engine, client: WeComClient, *, brand_id: int) -> RefreshSummary:
    """Ask WeCom for every open transfer's status; move the friendships of those that succeeded."""
    t = WeComTransfer
    with engine.connect() as conn:
        pairs = conn.execute(
            select(t.kind, t.handover_userid, t.takeover_userid)
            .where(t.brand_id == brand_id, t.subject == "customer", t.status.in_(OPEN))
            .distinct()
        ).all()
    summary = RefreshSummary()
    for kind, handover, takeover in pairs:
        results: dict[str, dict[str, Any]] = {}
        cursor = ""
        while True:
            fetch = (
                client.resigned_transfer_result if kind == "resigned" else client.transfer_result
            )
            page = fetch(handover_userid=handover, takeover_userid=takeover, cursor=cursor)
            for r in page.get("customer") or []:
                results[str(r["external_userid"])] = r
            cursor = page.get("next_cursor") or ""
            if not cursor:
                break
        with engine.begin() as conn:
            rows = conn.execute(
                select(t.id, t.subject_id, t.status).where(
                    t.brand_id == brand_id,
                    t.subject == "customer",
                    t.kind == kind,
                    t.handover_userid == handover,
                    t.takeover_userid == takeover,
                    t.status.in_(OPEN),
                )
            ).all()
            for row in rows:
                summary.checked += 1
                r = results.get(row.subject_id)
                if r is None:
                    if row.status == "requesting":  # WeCom never took the request
                        _set(
                            conn,
                            row.id,
                            "failed",
                            reason="WeCom has no record of it; transfer again",
                        )
                        summary.changed["failed"] = summary.changed.get("failed", 0) + 1
                    continue
                status = RESULT_STATUS.get(int(r.get("status") or 0), "waiting")
                at = (
                    datetime.fromtimestamp(int(r["takeover_time"]), UTC)
                    if r.get("takeover_time")
                    else None
                )
                if status == row.status:
                    continue
                _set(conn, row.id, status, takeover_at=at if status == "succeeded" else None)
                summary.changed[status] = summary.changed.get(status, 0) + 1
                if status == "succeeded":
                    move_friendship(
                        conn,
                        brand_id=brand_id,
                        handover=handover,
                        takeover=takeover,
                        external_userid=row.subject_id,
                        at=at or datetime.now(UTC),
                        transfer_id=row.id,
                    )
    return summary


def move_friendship(
    conn: Connection,
    *,
    brand_id: int,
    handover: str,
    takeover: str,
    external_userid: str,
    at: datetime,
    transfer_id: int,
) -> None:
    """WeCom reported the takeover: the handover's connection ends, the takeover's begins."""
    c = ConnectionRow
    pair = (
        c.brand_id == brand_id,
        c.kind == "wecom_friend",
        c.id_type == "external_userid",
        c.id_value == external_userid,
        c.ended_at.is_(None),
    )
    old_staff = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=brand_id, userid=handover
    )
    new_staff = staff_service.get_or_create_by_wecom_userid(
        conn, brand_id=brand_id, userid=takeover
    )
    old = conn.execute(select(c.id, c.channel_id).where(*pair, c.staff_id == old_staff)).first()
    channel_id = old.channel_id if old is not None else None
    if old is not None:
        connection_service.end(conn, connection_id=old.id, ended_at=at, ended_by="system")
    current = conn.execute(select(c.id, c.channel_id).where(*pair, c.staff_id == new_staff)).first()
    if current is None:
        connection_service.upsert(
            conn,
            brand_id=brand_id,
            kind="wecom_friend",
            id_type="external_userid",
            id_value=external_userid,
            staff_id=new_staff,
            created_at=at,
            channel_id=channel_id,
        )
    elif current.channel_id is None and channel_id is not None:
        conn.execute(update(c).where(c.id == current.id).values(channel_id=channel_id))
    wecom_service.insert_ignore(
        conn,
        DomainEvent.__table__,
        {
            "brand_id": brand_id,
            "type": "wecom.customer_transferred",
            "idempotency_key": f"wecom:transfer:{transfer_id}",
            "occurred_at": at,
            "recorded_at": datetime.now(UTC),
            "payload": {
                "handover_userid": handover,
                "takeover_userid": takeover,
                "external_userid": external_userid,
            },
        },
        DomainEvent.id,
    )


def transfer_failed(
    conn: Connection, *, brand_id: int, takeover: str, external_userid: str, reason: str | None
) -> bool:
    """A transfer_fail callback: the waiting transfer of this customer to `takeover` failed."""
    t = WeComTransfer
    status = FAIL_REASONS.get(reason or "", "refused")
    return bool(
        conn.execute(
            update(t)
            .where(
                t.brand_id == brand_id,
                t.subject == "customer",
                t.takeover_userid == takeover,
                t.subject_id == external_userid,
                t.status.in_(OPEN),
            )
            .values(status=status, reason=reason, updated_at=datetime.now(UTC))
        ).rowcount
    )


def status_counts(
    engine: Engine, *, brand_id: int, handover: str | None = None
) -> list[tuple[Any, ...]]:
    """(kind, subject, handover, takeover, status, count) for `siyu wecom transfer-status`."""
    t = WeComTransfer
    q = (
        select(t.kind, t.subject, t.handover_userid, t.takeover_userid, t.status, func.count())
        .where(t.brand_id == brand_id)
        .group_by(t.kind, t.subject, t.handover_userid, t.takeover_userid, t.status)
        .order_by(t.handover_userid, t.takeover_userid, t.subject, t.status)
    )
    if handover:
        q = q.where(t.handover_userid == handover)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]
