"""WeCom delivery: outbox rows → mass-message tasks (企业群发, add_msg_template) → per-customer
results → delivery rows and events (SPEC §7, §5.13).

Sending. Rows are grouped by (sender, identical content) into one task each — chat_type
single with up to 10,000 external_userid per call, or chat_type group with up to 2,000
chat_id_list per call (WeCom's limits; text ≤ 4,000 bytes, ≤ 9 attachments). The task reaches
customers only once the staff member confirms it in their WeCom client, so "sent" for the
outbox means "task created"; what the customer got is read later by `poll_results`.

Exactly once. add_msg_template has no idempotency key, so before calling it the adapter
records an intent (WeComMassTask: sender, content hash, targets, outbox ids) and stamps the
rows with it. A worker that dies between the call and the record leaves the intent in state
`intent`; `lookup_batch` (run by `outbox.recover`) looks the task up in WeCom —
get_groupmsg_list_v2 by creator and time, matched on the content hash, then the recipients
from get_groupmsg_send_result — and records it, or, if WeCom has no such task, voids the intent
so the rows are sent again. A call that timed out is left in doubt (the rows stay claimed)
rather than retried, for the same lookup to settle once the lease has passed.

Results. `poll_results` reads get_groupmsg_send_result of every open task: status 1 →
delivered, 2 → not_friend (the customer deleted the staff member), 3 → failed (the customer's
monthly mass-message quota was used up), still 0 after `unconfirmed_after` → unconfirmed (the
staff member did not confirm). Each becomes a delivery row and a `message.*` event.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from siyu.automation.adapters import InDoubt, Outbound, Outcome, Refused, Sent, Unavailable
from siyu.automation.models import OutboxItem
from siyu.automation.results import Result
from siyu.automation.results import record as record_results
from siyu.db import utcnow
from siyu.wecom.client import WeComClient, WeComError, WeComUnavailable
from siyu.wecom.models import WeComMassTask

log = logging.getLogger(__name__)

MAX_EXTERNAL_USERIDS = 10_000  # add_msg_template, chat_type single
MAX_CHAT_IDS = 2_000  # add_msg_template, chat_type group (chat_id_list)
MAX_TEXT_BYTES = 4_000
MAX_ATTACHMENTS = 9
# How far around an intent's time recovery searches get_groupmsg_list_v2 (WeCom's clock and
# ours may differ by a little).
LOOKUP_SLACK = timedelta(minutes=10)

M = WeComMassTask.__table__
O = OutboxItem.__table__  # noqa: E741


def content_hash(text: str | None, attachments: list[dict[str, Any]] | None) -> str:
    """SHA-256 of a task's content as WeCom echoes it back in get_groupmsg_list_v2."""
    canon = json.dumps(
        {"text": text or "", "attachments": attachments or []},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canon.encode()).hexdigest()


def _listed_hash(msg: dict[str, Any]) -> str:
    text = (msg.get("text") or {}).get("content")
    return content_hash(text, msg.get("attachments") or [])


class WeComMassAdapter:
    """The `wecom` adapter (chat_type single, 1:1) or the `group` adapter (chat_type group)."""

    reports_on_send = False  # results come from `poll_results`

    def __init__(
        self,
        client: WeComClient,
        engine: Engine,
        *,
        chat_type: str = "single",
        settle_after: timedelta = timedelta(seconds=30),
    ) -> None:
        if chat_type not in ("single", "group"):
            raise ValueError(f"chat_type must be single or group, not {chat_type!r}")
        self.client = client
        self.engine = engine
        self.chat_type = chat_type
        self.name = self.channel = "wecom" if chat_type == "single" else "group"
        self.target_field = "external_userid" if chat_type == "single" else "chat_id"
        self.limit = MAX_EXTERNAL_USERIDS if chat_type == "single" else MAX_CHAT_IDS
        # An intent younger than this may still have its add_msg_template call in flight
        # (longer than the client's timeout): recovery waits rather than void it.
        self.settle_after = settle_after

    # ----- sending -------------------------------------------------------------------

    def _check(self, item: Outbound) -> str | None:
        p = item.payload
        if not p.get("sender"):
            return "payload needs a sender (the staff member's WeCom userid)"
        if not p.get(self.target_field):
            return f"payload needs {self.target_field}"
        if not p.get("text") and not p.get("attachments"):
            return "payload needs a text or attachments"
        if len((p.get("text") or "").encode()) > MAX_TEXT_BYTES:
            return f"text is longer than WeCom's {MAX_TEXT_BYTES} bytes"
        if len(p.get("attachments") or []) > MAX_ATTACHMENTS:
            return f"more than WeCom's {MAX_ATTACHMENTS} attachments"
        return None

    def send_batch(self, items: Sequence[Outbound]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(items)
        # (sender, content) → chunks of (row indexes, their targets); a chunk names each
        # target at most once (two rows for one customer go out as two tasks).
        groups: dict[tuple[str, str], list[tuple[list[int], set[str]]]] = {}
        for n, item in enumerate(items):
            problem = self._check(item)
            if problem:
                outcomes[n] = Refused(problem)
                continue
            p = item.payload
            key = (p["sender"], content_hash(p.get("text"), p.get("attachments")))
            target = p[self.target_field]
            chunks = groups.setdefault(key, [])
            for rows, seen in chunks:
                if len(rows) < self.limit and target not in seen:
                    rows.append(n)
                    seen.add(target)
                    break
            else:
                chunks.append(([n], {target}))
        for (sender, digest), chunks in groups.items():
            for chunk, _ in chunks:
                for n, outcome in zip(chunk, self._send_task(sender, digest, [items[m] for m in chunk]), strict=True):  # fmt: skip
                    outcomes[n] = outcome
        return [o for o in outcomes if o is not None]

    def _send_task(self, sender: str, digest: str, rows: list[Outbound]) -> list[Outcome]:
        with self.engine.begin() as conn:
            task_id = conn.execute(
                M.insert()
                .values(
                    chat_type=self.chat_type,
                    sender=sender,
                    content_hash=digest,
                    targets=[],
                    outbox_ids=[],
                    created_at=utcnow(),
                    state="intent",
                )  # fmt: skip
                .returning(M.c.id)
            ).scalar_one()
            # Stamp only the rows this worker still holds: a row recovery has meanwhile handed
            # to another worker must not go out in this task too.
            mine = set(
                conn.execute(
                    update(O)
                    .where(O.c.id.in_([r.id for r in rows if r.id is not None]),
                           O.c.status == "claimed",
                           O.c.claimed_by == rows[0].worker)
                    .values(result={"wecom_task": task_id})
                    .returning(O.c.id)
                ).scalars()
            ) if rows[0].worker else {r.id for r in rows}  # fmt: skip
            held = [r for r in rows if r.id in mine or r.id is None]
            conn.execute(
                update(M)
                .where(M.c.id == task_id)
                .values(
                    targets=[r.payload[self.target_field] for r in held],
                    outbox_ids=[r.id for r in held],
                )
            )
        if not held:
            self._void(task_id)
            return [InDoubt("no longer claimed by this worker") for _ in rows]
        if len(held) < len(rows):
            by_id = dict(zip((id(r) for r in held), self._send_task_held(task_id, sender, held), strict=True))  # fmt: skip
            return [by_id.get(id(r), InDoubt("no longer claimed by this worker")) for r in rows]
        return self._send_task_held(task_id, sender, rows)

    def _send_task_held(self, task_id: int, sender: str, rows: list[Outbound]) -> list[Outcome]:
        targets = [r.payload[self.target_field] for r in rows]
        first = rows[0].payload
        text = {"content": first["text"]} if first.get("text") else None
        try:
            answer = self.client.add_msg_template(
                chat_type=self.chat_type,
                sender=sender,
                external_userid=targets if self.chat_type == "single" else None,
                chat_id_list=targets if self.chat_type == "group" else None,
                text=text,
                attachments=first.get("attachments") or None,
            )
        except WeComUnavailable as e:
            if "may have been executed" in e.errmsg:
                return [InDoubt(str(e)) for _ in rows]
            self._void(task_id)
            return [Unavailable(str(e)) for _ in rows]
        except WeComError as e:
            self._void(task_id)
            return [Refused(str(e)[:300]) for _ in rows]
        msgid = str(answer["msgid"])
        with self.engine.begin() as conn:
            conn.execute(
                update(M)
                .where(M.c.id == task_id, M.c.state == "intent")
                .values(msgid=msgid, state="open")
            )
        failed = set(answer.get("fail_list") or [])
        return [
            Refused(f"not a customer of {sender} (add_msg_template fail_list)")
            if t in failed
            else Sent(msgid, {"msgid": msgid, "wecom_task": task_id})
            for t in targets
        ]

    def _void(self, task_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(M).where(M.c.id == task_id).values(state="void"))

    # ----- recovery ------------------------------------------------------------------

    def lookup(self, key: str) -> Sent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(O.c.id, O.c.customer_id, O.c.payload).where(O.c.dedup_key == key)).first()  # fmt: skip
        if row is None:
            return None
        return self.lookup_batch([Outbound(key, row.customer_id, row.payload, row.id)])[0]

    def lookup_batch(self, items: Sequence[Outbound]) -> list[Sent | None]:
        """For each row: the task it went out in, if WeCom has it; None if it never did."""
        ids = [i.id for i in items if i.id is not None]
        with self.engine.connect() as conn:
            stamps = dict(conn.execute(select(O.c.id, O.c.result).where(O.c.id.in_(ids))).all())
            task_ids = {int(r["wecom_task"]) for r in stamps.values() if r and r.get("wecom_task")}
            tasks = {t.id: t for t in conn.execute(select(M).where(M.c.id.in_(task_ids)))}
        resolved: dict[int, str | None] = {}
        for t in tasks.values():
            if t.state in ("open", "done"):
                resolved[t.id] = t.msgid
            elif t.state == "void":
                resolved[t.id] = None
            else:
                resolved[t.id] = self._resolve(t)
        out: list[Sent | None] = []
        for i in items:
            stamp = stamps.get(i.id) or {}
            task_id = stamp.get("wecom_task")
            msgid = resolved.get(int(task_id)) if task_id else None
            if msgid is None:
                out.append(None)
                continue
            task = tasks[int(task_id)]
            if i.id not in task.outbox_ids:
                out.append(None)
            else:
                out.append(Sent(msgid, {"msgid": msgid, "wecom_task": task.id}))
        return out

    def _resolve(self, task: Any) -> str | None:
        """Find in WeCom the task an intent may have created; record the finding."""
        if utcnow() - task.created_at < self.settle_after:
            raise Unavailable(f"WeCom task intent {task.id} may still be in flight; ask later")
        start = int((task.created_at - LOOKUP_SLACK).timestamp())
        end = int((max(utcnow(), task.created_at) + LOOKUP_SLACK).timestamp())
        want = set(task.targets)
        found: str | None = None
        cursor = ""
        while found is None:
            page = self.client.get_groupmsg_list_v2(
                chat_type=task.chat_type, start_time=start, end_time=end,
                creator=task.sender, filter_type=0, cursor=cursor,
            )  # fmt: skip
            listed = [str(m["msgid"]) for m in page.get("group_msg_list", [])]
            with self.engine.connect() as conn:  # tasks another intent already owns
                known = set(
                    conn.execute(
                        select(M.c.msgid).where(M.c.msgid.in_(listed), M.c.id != task.id)
                    ).scalars()
                )
            for msg in page.get("group_msg_list", []):
                msgid = str(msg["msgid"])
                if msgid in known or _listed_hash(msg) != task.content_hash:
                    continue
                got = {s[self.target_field] for s in self._send_list(msgid, task.sender)}
                if got and got <= want:
                    found = msgid
                    break
            cursor = page.get("next_cursor") or ""
            if not cursor:
                break
        with self.engine.begin() as conn:
            conn.execute(
                update(M)
                .where(M.c.id == task.id, M.c.state == "intent")
                .values(msgid=found, state="open" if found else "void")  # fmt: skip
            )
            # Another worker may have settled this intent meanwhile: what is recorded decides.
            state, msgid = conn.execute(select(M.c.state, M.c.msgid).where(M.c.id == task.id)).one()
        log.info("intent %s: %s", task.id, f"found task {found}" if found else "no task in WeCom")
        return msgid if state in ("open", "done") else None

    def _send_list(self, msgid: str, userid: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = self.client.get_groupmsg_send_result(
                msgid=msgid, userid=userid, limit=1000, cursor=cursor
            )
            rows += page.get("send_list", [])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return rows


@dataclass
class PollReport:
    tasks: int = 0
    delivered: int = 0
    failed: int = 0
    unconfirmed: int = 0
    not_friend: int = 0
    waiting: int = 0
    finished_tasks: int = 0


def poll_results(
    engine: Engine,
    client: WeComClient,
    *,
    unconfirmed_after: timedelta = timedelta(hours=24),
    now: datetime | None = None,
) -> PollReport:
    """Read the per-recipient status of every open task and record the final ones."""
    now = now or utcnow()
    report = PollReport()
    with engine.connect() as conn:
        tasks = conn.execute(select(M).where(M.c.state == "open").order_by(M.c.id)).all()
    for task in tasks:
        report.tasks += 1
        field = "external_userid" if task.chat_type == "single" else "chat_id"
        channel = "wecom" if task.chat_type == "single" else "group"
        adapter = WeComMassAdapter(client, engine, chat_type=task.chat_type)
        status = {s[field]: s for s in adapter._send_list(task.msgid, task.sender)}
        late = now - task.created_at >= unconfirmed_after
        finals: list[Result] = []
        waiting = 0
        for target, outbox_id in zip(task.targets, task.outbox_ids, strict=True):
            s = status.get(target)
            code = int(s["status"]) if s else 0
            sent_at = int(s.get("send_time") or 0) if s else 0
            at = datetime.fromtimestamp(sent_at, UTC) if sent_at else now
            if code == 1:
                finals.append(Result(outbox_id, "delivered", at))
                report.delivered += 1
            elif code == 2:
                finals.append(Result(outbox_id, "not_friend", now, "the customer is no longer a friend"))  # fmt: skip
                report.not_friend += 1
            elif code == 3:
                finals.append(Result(outbox_id, "failed", now,
                                     "the customer had received the month's mass messages"))  # fmt: skip
                report.failed += 1
            elif late:
                finals.append(Result(outbox_id, "unconfirmed", now,
                                     f"{task.sender} did not confirm the task in time"))  # fmt: skip
                report.unconfirmed += 1
            else:
                waiting += 1
        report.waiting += waiting
        with engine.begin() as conn:
            record_results(conn, channel, finals)
            conn.execute(
                update(M)
                .where(M.c.id == task.id)
                .values(checked_at=now, state="open" if waiting else "done")  # fmt: skip
            )
        if not waiting:
            report.finished_tasks += 1
    return report
