"""The simulated corp: its directory, customers, friendships, tags, contact ways, groups and tasks.

`Simulator` answers the API (methods named after WeCom's paths, taking WeCom's parameters and
returning WeCom's JSON shapes, raising `SimError` with WeCom's errcodes) and acts out the world:
customers scanning codes, deleting staff, joining groups, staff confirming mass messages. Every
world action that WeCom reports by callback produces the same event, delivered encrypted by the
`CallbackSender`. Calls made through the API produce no callback, as in WeCom.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from siyu.wecom.simulator import errors as E
from siyu.wecom.simulator.callbacks import CallbackSender, Event
from siyu.wecom.simulator.errors import fail


@dataclass
class Clock:
    """Real time plus an offset that scenarios advance (event CreateTime uses it)."""

    offset: float = 0.0

    def now(self) -> int:
        return int(time.time() + self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Follow:
    userid: str
    external_userid: str
    createtime: int
    state: str = ""
    add_way: int = 1  # 1 = scanned a QR code
    remark: str = ""
    description: str = ""
    tags: set[str] = field(default_factory=set)


@dataclass
class Transfer:
    kind: str  # in_service / resigned
    handover_userid: str
    takeover_userid: str
    external_userid: str
    status: int = 2  # 1 done, 2 waiting, 3 refused, 4 takeover full
    takeover_time: int = 0


class Simulator:
    def __init__(
        self,
        *,
        corp_id: str = "wwsimcorp0000000001",
        secret: str = "sim-contact-secret",
        token_ttl: int = 7200,
        welcome_ttl: int = 20,
        sender: CallbackSender | None = None,
        auto_confirm_after: float | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.token_ttl = token_ttl
        self.welcome_ttl = welcome_ttl
        self.sender = sender
        self.clock = Clock()
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.tokens: dict[str, float] = {}  # access_token -> expiry (real time)
        self.departments: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "总部", "parentid": 0, "order": 1}
        }
        self.users: dict[str, dict[str, Any]] = {}
        self.resigned: dict[str, int] = {}  # userid -> dimission_time
        self.customers: dict[str, dict[str, Any]] = {}
        self.follows: dict[tuple[str, str], Follow] = {}
        self.tag_groups: dict[str, dict[str, Any]] = {}
        self.tags: dict[
            str, dict[str, Any]
        ] = {}  # tag id -> {id, name, create_time, order, group_id}
        self.contact_ways: dict[str, dict[str, Any]] = {}
        self.welcome_codes: dict[str, dict[str, Any]] = {}
        self.welcomes_sent: list[dict[str, Any]] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.msg_templates: dict[str, dict[str, Any]] = {}
        # Staff confirm each mass-message task this many seconds after it is created (None:
        # only when a scenario calls staff_confirms).
        self.auto_confirm_after = auto_confirm_after
        self._unconfirmed: list[str] = []
        self.transfers: dict[tuple[str, str], Transfer] = {}
        self._round_robin: dict[str, int] = {}

    def _new_id(self, prefix: str, width: int = 20) -> str:
        return f"{prefix}{next(self._ids):0{width - len(prefix)}d}"

    # ================================================================================
    # Auth
    # ================================================================================

    def gettoken(self, corpid: str, corpsecret: str) -> dict[str, Any]:
        if corpid != self.corp_id:
            raise fail(E.INVALID_CORPID)
        if corpsecret != self.secret:
            raise fail(E.INVALID_SECRET)
        with self.lock:
            now = time.time()
            for token, expiry in self.tokens.items():
                if expiry - now > 0:  # WeCom hands back the valid token it already issued
                    return {"access_token": token, "expires_in": int(expiry - now)}
            token = secrets.token_urlsafe(48)
            self.tokens[token] = now + self.token_ttl
            return {"access_token": token, "expires_in": self.token_ttl}

    def check_token(self, token: str | None) -> None:
        if not token:
            raise fail(E.ACCESS_TOKEN_MISSING)
        with self.lock:
            expiry = self.tokens.get(token)
        if expiry is None:
            raise fail(E.INVALID_ACCESS_TOKEN)
        if expiry <= time.time():
            raise fail(E.ACCESS_TOKEN_EXPIRED)

    def expire_tokens(self) -> None:
        """Every issued token expires now (failure injection: 42001 on the next call)."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    # ================================================================================
    # Directory (通讯录)
    # ================================================================================

    def add_department(self, *, id: int, name: str, parentid: int = 1) -> None:
        with self.lock:
            self.departments[id] = {"id": id, "name": name, "parentid": parentid, "order": id}

    def add_user(self, *, userid: str, name: str, department: list[int] | None = None) -> None:
        with self.lock:
            self.users[userid] = {
                "userid": userid,
                "name": name,
                "department": department or [1],
                "status": 1,
            }

    def department_list(self, id: int | None = None) -> dict[str, Any]:
        with self.lock:
            depts = list(self.departments.values())
        if id is not None:
            keep = {int(id)}
            for d in sorted(depts, key=lambda d: d["id"]):
                if d["parentid"] in keep:
                    keep.add(d["id"])
            depts = [d for d in depts if d["id"] in keep]
        return {"department": depts}

    def user_list(self, department_id: int, fetch_child: int = 0) -> dict[str, Any]:
        depts = {int(department_id)}
        if int(fetch_child):
            depts = {d["id"] for d in self.department_list(int(department_id))["department"]}
        with self.lock:
            users = [
                dict(u)
                for u in self.users.values()
                if set(u["department"]) & depts and u["status"] != 5  # left: not in the directory
            ]
        return {"userlist": users}

    def user_get(self, userid: str) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(userid)
        if user is None:
            raise fail(E.USERID_NOT_FOUND, userid)
        return dict(user)

    def _user_or_raise(self, userid: str) -> None:
        if userid not in self.users:
            raise fail(E.USERID_NOT_FOUND, userid)

    # ================================================================================
    # Customers (客户管理)
    # ================================================================================

    def _follow_json(self, f: Follow, *, tag_ids_only: bool = False) -> dict[str, Any]:
        base: dict[str, Any] = {
            "userid": f.userid,
            "remark": f.remark,
            "description": f.description,
            "createtime": f.createtime,
            "remark_mobiles": [],
            "add_way": f.add_way,
            "oper_userid": f.external_userid,
        }
        if f.state:
            base["state"] = f.state
        if tag_ids_only:
            base["tag_id"] = sorted(f.tags)
        else:
            base["tags"] = [
                {
                    "group_name": self.tag_groups[self.tags[t]["group_id"]]["group_name"],
                    "tag_name": self.tags[t]["name"],
                    "tag_id": t,
                    "type": 1,
                }
                for t in sorted(f.tags)
                if t in self.tags
            ]
        return base

    def externalcontact_list(self, userid: str) -> dict[str, Any]:
        with self.lock:
            self._user_or_raise(userid)
            ids = [e for (u, e) in self.follows if u == userid]
        return {"external_userid": ids}

    def externalcontact_get(self, external_userid: str, cursor: str = "") -> dict[str, Any]:
        with self.lock:
            customer = self.customers.get(external_userid)
            if customer is None:
                raise fail(E.INVALID_EXTERNAL_USERID, external_userid)
            follows = [
                self._follow_json(f) for (u, e), f in self.follows.items() if e == external_userid
            ]
            if not follows:
                raise fail(E.NOT_EXTERNAL_CONTACT, external_userid)
            return {"external_contact": dict(customer), "follow_user": follows, "next_cursor": ""}

    def batch_get_by_user(
        self, userid_list: list[str], cursor: str = "", limit: int = 50
    ) -> dict[str, Any]:
        limit = max(1, min(int(limit), 100))
        with self.lock:
            for u in userid_list:
                self._user_or_raise(u)
            pairs = sorted(k for k in self.follows if k[0] in set(userid_list))
            start = int(cursor) if cursor else 0
            page = pairs[start : start + limit]
            items = [
                {
                    "external_contact": dict(self.customers[e]),
                    "follow_info": self._follow_json(self.follows[(u, e)], tag_ids_only=True),
                }
                for u, e in page
            ]
        nxt = str(start + limit) if start + limit < len(pairs) else ""
        return {"external_contact_list": items, "next_cursor": nxt}

    def remark(self, userid: str, external_userid: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            f = self._follow_or_raise(userid, external_userid)
            if fields.get("remark") is not None:
                f.remark = str(fields["remark"])
            if fields.get("description") is not None:
                f.description = str(fields["description"])
        return {}

    def _follow_or_raise(self, userid: str, external_userid: str) -> Follow:
        self._user_or_raise(userid)
        if external_userid not in self.customers:
            raise fail(E.INVALID_EXTERNAL_USERID, external_userid)
        f = self.follows.get((userid, external_userid))
        if f is None:
            raise fail(E.NOT_EXTERNAL_CONTACT, f"{userid}/{external_userid}")
        return f

    # ================================================================================
    # Corp tags (企业客户标签)
    # ================================================================================

    def get_corp_tag_list(
        self, tag_id: list[str] | None = None, group_id: list[str] | None = None
    ) -> dict[str, Any]:
        with self.lock:
            groups = []
            for g in sorted(self.tag_groups.values(), key=lambda g: g["order"]):
                tags = [self.tags[t] for t in g["tag_ids"]]
                if group_id and g["group_id"] not in group_id:
                    continue
                if tag_id and not group_id:
                    tags = [t for t in tags if t["id"] in tag_id]
                    if not tags:
                        continue
                groups.append(
                    {
                        "group_id": g["group_id"],
                        "group_name": g["group_name"],
                        "create_time": g["create_time"],
                        "order": g["order"],
                        "tag": [
                            {k: t[k] for k in ("id", "name", "create_time", "order")} for t in tags
                        ],
                    }
                )
        return {"tag_group": groups}

    def add_corp_tag(
        self,
        tag: list[dict[str, Any]],
        group_id: str | None = None,
        group_name: str | None = None,
        order: int = 0,
    ) -> dict[str, Any]:
        if not tag:
            raise fail(E.INVALID_PARAMETER, "tag is empty")
        with self.lock:
            now = self.clock.now()
            if group_id:
                g = self.tag_groups.get(group_id)
                if g is None:
                    raise fail(E.INVALID_TAG_ID, group_id)
            else:
                g = next(
                    (g for g in self.tag_groups.values() if g["group_name"] == group_name), None
                )
                if g is None:
                    if not group_name:
                        raise fail(E.INVALID_PARAMETER, "group_id or group_name is required")
                    gid = self._new_id("et", 24)
                    g = self.tag_groups[gid] = {
                        "group_id": gid,
                        "group_name": group_name,
                        "create_time": now,
                        "order": order,
                        "tag_ids": [],
                    }
            names = {self.tags[t]["name"]: t for t in g["tag_ids"]}
            created = []
            for t in tag:
                existing = names.get(t["name"])
                if existing is None:  # WeCom keeps names unique in a group: same name, same tag
                    existing = self._new_id("et", 24)
                    self.tags[existing] = {
                        "id": existing,
                        "name": t["name"],
                        "create_time": now,
                        "order": int(t.get("order", 0)),
                        "group_id": g["group_id"],
                    }
                    g["tag_ids"].append(existing)
                created.append(
                    {k: self.tags[existing][k] for k in ("id", "name", "create_time", "order")}
                )
            return {
                "tag_group": {
                    "group_id": g["group_id"],
                    "group_name": g["group_name"],
                    "create_time": g["create_time"],
                    "order": g["order"],
                    "tag": created,
                }
            }

    def edit_corp_tag(
        self, id: str, name: str | None = None, order: int | None = None
    ) -> dict[str, Any]:
        with self.lock:
            target = self.tags.get(id) or self.tag_groups.get(id)
            if target is None:
                raise fail(E.INVALID_TAG_ID, id)
            if name is not None:
                target["name" if id in self.tags else "group_name"] = name
            if order is not None:
                target["order"] = int(order)
        return {}

    def del_corp_tag(
        self, tag_id: list[str] | None = None, group_id: list[str] | None = None
    ) -> dict[str, Any]:
        with self.lock:
            doomed = set(tag_id or [])
            for gid in group_id or []:
                g = self.tag_groups.pop(gid, None)
                if g is None:
                    raise fail(E.INVALID_TAG_ID, gid)
                doomed |= set(g["tag_ids"])
            for t in doomed:
                tag = self.tags.pop(t, None)
                if tag is None:
                    raise fail(E.INVALID_TAG_ID, t)
                g = self.tag_groups.get(tag["group_id"])
                if g is not None:
                    g["tag_ids"].remove(t)
                    if not g["tag_ids"]:  # WeCom deletes a group with its last tag
                        del self.tag_groups[g["group_id"]]
            for f in self.follows.values():
                f.tags -= doomed
        return {}

    def mark_tag(
        self,
        userid: str,
        external_userid: str,
        add_tag: list[str] | None = None,
        remove_tag: list[str] | None = None,
    ) -> dict[str, Any]:
        if not add_tag and not remove_tag:
            raise fail(E.INVALID_PARAMETER, "add_tag and remove_tag are both empty")
        with self.lock:
            f = self._follow_or_raise(userid, external_userid)
            for t in (add_tag or []) + (remove_tag or []):
                if t not in self.tags:
                    raise fail(E.INVALID_TAG_ID, t)
            f.tags |= set(add_tag or [])
            f.tags -= set(remove_tag or [])
        return {}

    # ================================================================================
    # Contact ways (联系我 / 渠道活码) and welcome messages
    # ================================================================================

    def add_contact_way(self, type: int, scene: int, **fields: Any) -> dict[str, Any]:
        user = list(fields.get("user") or [])
        if int(type) not in (1, 2) or int(scene) not in (1, 2):
            raise fail(E.INVALID_PARAMETER, "type and scene must be 1 or 2")
        if not user and not fields.get("party"):
            raise fail(E.INVALID_PARAMETER, "user or party is required")
        if int(type) == 1 and len(user) != 1:
            raise fail(E.INVALID_PARAMETER, "a single-person contact way takes exactly one user")
        if len(str(fields.get("state") or "")) > 30:
            raise fail(E.INVALID_PARAMETER, "state is longer than 30 characters")
        with self.lock:
            for u in user:
                self._user_or_raise(u)
            config_id = secrets.token_hex(16)
            way = {
                "config_id": config_id,
                "type": int(type),
                "scene": int(scene),
                "style": fields.get("style") or 1,
                "remark": fields.get("remark") or "",
                "skip_verify": bool(fields.get("skip_verify", True)),
                "state": fields.get("state") or "",
                "user": user,
                "party": list(fields.get("party") or []),
            }
            if int(scene) == 2:
                way["qr_code"] = f"https://wework.qpic.cn/wwpic/sim/{config_id}/0"
            self.contact_ways[config_id] = way
        out = {"config_id": config_id}
        if "qr_code" in way:
            out["qr_code"] = way["qr_code"]
        return out

    def get_contact_way(self, config_id: str) -> dict[str, Any]:
        with self.lock:
            way = self.contact_ways.get(config_id)
            if way is None:
                raise fail(E.INVALID_PARAMETER, f"config_id {config_id}")
            return {"contact_way": dict(way)}

    def update_contact_way(self, config_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            way = self.contact_ways.get(config_id)
            if way is None:
                raise fail(E.INVALID_PARAMETER, f"config_id {config_id}")
            for u in fields.get("user") or []:
                self._user_or_raise(u)
            for k in ("remark", "skip_verify", "style", "state", "user", "party"):
                if fields.get(k) is not None:
                    way[k] = fields[k]
        return {}

    def del_contact_way(self, config_id: str) -> dict[str, Any]:
        with self.lock:
            if self.contact_ways.pop(config_id, None) is None:
                raise fail(E.INVALID_PARAMETER, f"config_id {config_id}")
        return {}

    def send_welcome_msg(self, welcome_code: str, **message: Any) -> dict[str, Any]:
        if not message.get("text") and not message.get("attachments"):
            raise fail(E.INVALID_PARAMETER, "text and attachments are both empty")
        with self.lock:
            code = self.welcome_codes.get(welcome_code)
            if code is None:
                raise fail(E.INVALID_PARAMETER, "invalid welcome_code")
            if code["used"]:
                raise fail(E.WELCOME_ALREADY_SENT)
            if time.time() - code["issued_at"] > self.welcome_ttl:
                raise fail(E.WELCOME_CODE_EXPIRED)
            code["used"] = True
            self.welcomes_sent.append(
                {
                    "welcome_code": welcome_code,
                    "userid": code["userid"],
                    "external_userid": code["external_userid"],
                    "text": message.get("text"),
                    "attachments": message.get("attachments") or [],
                }
            )
        return {}

    # ================================================================================
    # Group chats (客户群)
    # ================================================================================

    def groupchat_list(
        self,
        status_filter: int = 0,
        owner_filter: dict[str, Any] | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> dict[str, Any]:
        owners = set((owner_filter or {}).get("userid_list") or [])
        with self.lock:
            chats = sorted(
                (g for g in self.groups.values() if not owners or g["owner"] in owners),
                key=lambda g: g["chat_id"],
            )
        start = int(cursor) if cursor else 0
        limit = max(1, min(int(limit), 1000))
        page = chats[start : start + limit]
        nxt = str(start + limit) if start + limit < len(chats) else ""
        return {
            "group_chat_list": [{"chat_id": g["chat_id"], "status": 0} for g in page],
            "next_cursor": nxt,
        }

    def groupchat_get(self, chat_id: str, need_name: int = 0) -> dict[str, Any]:
        with self.lock:
            g = self.groups.get(chat_id)
            if g is None:
                raise fail(E.CHAT_NOT_FOUND, chat_id)
            members = [dict(m) for m in g["member_list"]]
            if not int(need_name):
                for m in members:
                    m.pop("name", None)
            return {
                "group_chat": {
                    "chat_id": g["chat_id"],
                    "name": g["name"],
                    "owner": g["owner"],
                    "create_time": g["create_time"],
                    "notice": g.get("notice", ""),
                    "member_list": members,
                    "admin_list": [],
                    "member_version": str(g["version"]),
                }
            }

    # ================================================================================
    # Mass messages (群发) that staff confirm
    # ================================================================================

    def add_msg_template(self, chat_type: str = "single", **body: Any) -> dict[str, Any]:
        if not body.get("text") and not body.get("attachments"):
            raise fail(E.INVALID_PARAMETER, "text and attachments are both empty")
        sender = body.get("sender")
        targets: dict[str, list[str]] = {}
        fail_list: list[str] = []
        with self.lock:
            if chat_type == "single":
                for ext in body.get("external_userid") or []:
                    if sender:
                        owners = [sender] if (sender, ext) in self.follows else []
                    else:
                        owners = [u for (u, e) in self.follows if e == ext]
                    if not owners:
                        fail_list.append(ext)
                    for u in owners[:1]:
                        targets.setdefault(u, []).append(ext)
            else:
                if not sender:
                    raise fail(E.INVALID_PARAMETER, "sender is required for a group send")
                chosen = body.get("chat_id_list")
                if chosen:  # WeCom: up to 2,000 groups named; the owner needs not choose
                    if len(chosen) > 2000:
                        raise fail(E.INVALID_PARAMETER, "chat_id_list holds more than 2000")
                    mine = [c for c in chosen if self.groups.get(c, {}).get("owner") == sender]
                    fail_list += [c for c in chosen if c not in mine]
                    targets[sender] = mine
                else:
                    targets[sender] = [c for c, g in self.groups.items() if g["owner"] == sender]
            msgid = self._new_id("msg", 24)
            self.msg_templates[msgid] = {
                "msgid": msgid,
                "creator": sender or "",
                "create_time": self.clock.now(),
                "create_type": 0,
                "chat_type": chat_type,
                "text": body.get("text"),
                "attachments": body.get("attachments") or [],
                "tasks": {
                    u: {"status": 0, "send_time": 0, "targets": t} for u, t in targets.items()
                },
            }
            self._unconfirmed.append(msgid)
        return {"fail_list": fail_list, "msgid": msgid}

    def _auto_confirm(self) -> None:
        """Staff confirm the tasks that are `auto_confirm_after` seconds old."""
        if self.auto_confirm_after is None:
            return
        with self.lock:
            due = self.clock.now() - self.auto_confirm_after
            while self._unconfirmed:
                m = self.msg_templates[self._unconfirmed[0]]
                if m["create_time"] > due:
                    break
                self._unconfirmed.pop(0)
                for userid, task in m["tasks"].items():
                    if task["status"] == 0:
                        self.staff_confirms(m["msgid"], userid)

    def get_groupmsg_list_v2(
        self, chat_type: str, start_time: int, end_time: int, **body: Any
    ) -> dict[str, Any]:
        creator = body.get("creator")
        self._auto_confirm()
        with self.lock:
            items = [
                {
                    k: m[k]
                    for k in (
                        "msgid",
                        "creator",
                        "create_time",
                        "create_type",
                        "text",
                        "attachments",
                    )
                }
                for m in self.msg_templates.values()
                if m["chat_type"] == chat_type
                and int(start_time) <= m["create_time"] <= int(end_time)
                and (not creator or m["creator"] == creator)
            ]
        return {"group_msg_list": items, "next_cursor": ""}

    def _template_or_raise(self, msgid: str) -> dict[str, Any]:
        m = self.msg_templates.get(msgid)
        if m is None:
            raise fail(E.INVALID_PARAMETER, f"msgid {msgid}")
        return m

    def get_groupmsg_task(self, msgid: str, **_: Any) -> dict[str, Any]:
        self._auto_confirm()
        with self.lock:
            m = self._template_or_raise(msgid)
            tasks = [
                {"userid": u, "status": t["status"], "send_time": t["send_time"]}
                for u, t in m["tasks"].items()
            ]
        return {"task_list": tasks, "next_cursor": ""}

    def get_groupmsg_send_result(self, msgid: str, userid: str, **_: Any) -> dict[str, Any]:
        self._auto_confirm()
        with self.lock:
            m = self._template_or_raise(msgid)
            task = m["tasks"].get(userid)
            if task is None:
                return {"send_list": [], "next_cursor": ""}
            key = "chat_id" if m["chat_type"] == "group" else "external_userid"
            rows = [
                {
                    key: t,
                    "userid": userid,
                    **task.get("results", {}).get(t, {"status": 0, "send_time": 0}),
                }
                for t in task["targets"]
            ]
        return {"send_list": rows, "next_cursor": ""}

    def staff_confirms(self, msgid: str, userid: str) -> None:
        """The staff member taps "send" on the task in their WeCom client."""
        with self.lock:
            m = self._template_or_raise(msgid)
            task = m["tasks"][userid]
            now = self.clock.now()
            task["status"], task["send_time"] = 2, now
            task["results"] = {}
            for t in task["targets"]:
                ok = m["chat_type"] == "group" or (userid, t) in self.follows
                task["results"][t] = {"status": 1 if ok else 2, "send_time": now if ok else 0}

    # ================================================================================
    # Transfers (在职继承 / 离职继承)
    # ================================================================================

    def _transfer(
        self, kind: str, handover_userid: str, takeover_userid: str, external_userid: list[str]
    ) -> dict[str, Any]:
        out = []
        with self.lock:
            self._user_or_raise(takeover_userid)
            if kind == "in_service":
                self._user_or_raise(handover_userid)
            elif handover_userid not in self.resigned:
                raise fail(E.INVALID_PARAMETER, f"{handover_userid} has not resigned")
            for ext in external_userid:
                if (handover_userid, ext) not in self.follows:
                    out.append({"external_userid": ext, "errcode": E.NOT_EXTERNAL_CONTACT[0]})
                    continue
                self.transfers[(handover_userid, ext)] = Transfer(
                    kind, handover_userid, takeover_userid, ext
                )
                out.append({"external_userid": ext, "errcode": 0})
        return {"customer": out}

    def transfer_customer(
        self, handover_userid: str, takeover_userid: str, external_userid: list[str], **_: Any
    ) -> dict[str, Any]:
        return self._transfer("in_service", handover_userid, takeover_userid, external_userid)

    def resigned_transfer_customer(
        self, handover_userid: str, takeover_userid: str, external_userid: list[str], **_: Any
    ) -> dict[str, Any]:
        return self._transfer("resigned", handover_userid, takeover_userid, external_userid)

    def _transfer_result(
        self, kind: str, handover_userid: str, takeover_userid: str
    ) -> dict[str, Any]:
        with self.lock:
            rows = [
                {
                    "external_userid": t.external_userid,
                    "status": t.status,
                    "takeover_time": t.takeover_time,
                }
                for t in self.transfers.values()
                if t.kind == kind
                and t.handover_userid == handover_userid
                and t.takeover_userid == takeover_userid
            ]
        return {"customer": rows, "next_cursor": ""}

    def transfer_result(
        self, handover_userid: str, takeover_userid: str, **_: Any
    ) -> dict[str, Any]:
        return self._transfer_result("in_service", handover_userid, takeover_userid)

    def resigned_transfer_result(
        self, handover_userid: str, takeover_userid: str, **_: Any
    ) -> dict[str, Any]:
        return self._transfer_result("resigned", handover_userid, takeover_userid)

    def groupchat_transfer(
        self, chat_id_list: list[str], new_owner: str, *, resigned: bool
    ) -> dict[str, Any]:
        """groupchat/transfer (a resigned owner's groups) and groupchat/onjob_transfer: the new
        owner takes each group at once; WeCom tells the members (change_owner)."""
        if not chat_id_list or len(chat_id_list) > 100:
            raise fail(E.INVALID_PARAMETER, "chat_id_list holds 1 to 100 groups")
        failed: list[dict[str, Any]] = []
        events: list[Event] = []
        with self.lock:
            self._user_or_raise(new_owner)
            for chat_id in chat_id_list:
                g = self.groups.get(chat_id)
                if g is None:
                    code = E.CHAT_NOT_FOUND
                elif (g["owner"] in self.resigned) != resigned:
                    code = E.INVALID_PARAMETER  # resigned owners' groups go the other way
                else:
                    code = None
                if code is not None:
                    failed.append({"chat_id": chat_id, "errcode": code[0], "errmsg": code[1]})
                    continue
                assert g is not None
                g["owner"] = new_owner
                if not any(m["userid"] == new_owner for m in g["member_list"]):
                    g["member_list"].append(
                        {
                            "userid": new_owner,
                            "type": 1,
                            "join_time": self.clock.now(),
                            "join_scene": 1,
                            "invitor": {"userid": new_owner},
                            "name": self.users[new_owner]["name"],
                        }
                    )
                events.append(
                    self._event(
                        "change_external_chat",
                        "update",
                        ChatId=chat_id,
                        UpdateDetail="change_owner",
                    )
                )
        self._emit(events)
        return {"failed_chat_list": failed}

    def get_unassigned_list(
        self, cursor: str = "", page_size: int = 1000, **_: Any
    ) -> dict[str, Any]:
        with self.lock:
            rows = [
                {"handover_userid": u, "external_userid": e, "dimission_time": self.resigned[u]}
                for (u, e) in sorted(self.follows)
                if u in self.resigned
                and not ((u, e) in self.transfers and self.transfers[(u, e)].status in (1, 2))
            ]
        start = int(cursor) if cursor else 0
        size = max(1, min(int(page_size), 1000))
        page = rows[start : start + size]
        last = start + size >= len(rows)
        return {"info": page, "is_last": last, "next_cursor": "" if last else str(start + size)}

    # ================================================================================
    # The world acting: each produces the callback WeCom would send
    # ================================================================================

    def _emit(self, events: list[Event]) -> None:
        if self.sender is not None and events:
            self.sender.deliver(events)

    def _event(self, event: str, change_type: str, **fields: Any) -> Event:
        return Event(
            corp_id=self.corp_id,
            create_time=self.clock.now(),
            event=event,
            change_type=change_type,
            fields=fields,
        )

    def customer_scans(
        self,
        config_id: str,
        *,
        name: str | None = None,
        unionid: str | None = None,
        gender: int = 0,
    ) -> tuple[str, str]:
        """A WeChat user scans a contact-way code and becomes the friend of one of its staff
        (round robin). Returns (userid, external_userid); emits add_external_contact."""
        with self.lock:
            way = self.contact_ways.get(config_id)
            if way is None:
                raise KeyError(f"no contact way {config_id}")
            users = way["user"]
            turn = self._round_robin.get(config_id, 0)
            self._round_robin[config_id] = turn + 1
            userid = users[turn % len(users)]
            ext = "wm" + secrets.token_hex(15)
            self.customers[ext] = {
                "external_userid": ext,
                "name": name or f"顾客{len(self.customers) + 1}",
                "type": 1,
                "gender": gender,
                "avatar": f"https://wx.qlogo.cn/mmhead/sim/{ext}/0",
                **({"unionid": unionid} if unionid else {}),
            }
            now = self.clock.now()
            self.follows[(userid, ext)] = Follow(userid, ext, now, state=way["state"])
            code = secrets.token_urlsafe(24)
            self.welcome_codes[code] = {
                "userid": userid,
                "external_userid": ext,
                "issued_at": time.time(),
                "used": False,
            }
            event = self._event(
                "change_external_contact",
                "add_external_contact",
                UserID=userid,
                ExternalUserID=ext,
                State=way["state"],
                WelcomeCode=code,
            )
        self._emit([event])
        return userid, ext

    def customer_deletes_staff(self, userid: str, external_userid: str) -> None:
        """The customer removes the staff member: del_follow_user."""
        with self.lock:
            self.follows.pop((userid, external_userid), None)
            event = self._event(
                "change_external_contact",
                "del_follow_user",
                UserID=userid,
                ExternalUserID=external_userid,
            )
        self._emit([event])

    def staff_deletes_customer(self, userid: str, external_userid: str) -> None:
        """The staff member removes the customer: del_external_contact."""
        with self.lock:
            self.follows.pop((userid, external_userid), None)
            event = self._event(
                "change_external_contact",
                "del_external_contact",
                UserID=userid,
                ExternalUserID=external_userid,
            )
        self._emit([event])

    def staff_edits(self, userid: str, external_userid: str, *, remark: str) -> None:
        with self.lock:
            self._follow_or_raise(userid, external_userid).remark = remark
            event = self._event(
                "change_external_contact",
                "edit_external_contact",
                UserID=userid,
                ExternalUserID=external_userid,
            )
        self._emit([event])

    def create_group(self, *, owner: str, name: str, members: list[str]) -> str:
        """A staff member creates a customer group with these external contacts."""
        with self.lock:
            self._user_or_raise(owner)
            chat_id = "wr" + secrets.token_hex(15)
            now = self.clock.now()
            member_list = [
                {
                    "userid": owner,
                    "type": 1,
                    "join_time": now,
                    "join_scene": 1,
                    "invitor": {"userid": owner},
                    "name": self.users[owner]["name"],
                }
            ]
            member_list += [self._member(e, owner, now, 1) for e in members]
            self.groups[chat_id] = {
                "chat_id": chat_id,
                "name": name,
                "owner": owner,
                "create_time": now,
                "member_list": member_list,
                "version": 1,
            }
            event = self._event("change_external_chat", "create", ChatId=chat_id)
        self._emit([event])
        return chat_id

    def _member(self, ext: str, invitor: str, now: int, scene: int) -> dict[str, Any]:
        c = self.customers[ext]
        m = {
            "userid": ext,
            "type": 2,
            "join_time": now,
            "join_scene": scene,
            "invitor": {"userid": invitor},
            "name": c["name"],
        }
        if c.get("unionid"):
            m["unionid"] = c["unionid"]
        return m

    def join_group(self, chat_id: str, external_userid: str, *, join_scene: int = 3) -> None:
        """A customer joins (scene 1 invited directly, 2 invited by link, 3 scanned the group code)."""
        with self.lock:
            g = self.groups[chat_id]
            last = g["version"]
            g["member_list"].append(
                self._member(external_userid, g["owner"], self.clock.now(), join_scene)
            )
            g["version"] += 1
            event = self._event(
                "change_external_chat",
                "update",
                ChatId=chat_id,
                UpdateDetail="add_member",
                JoinScene=join_scene,
                MemChangeCnt=1,
                MemChangeList=[external_userid],
                LastMemVer=str(last),
                CurMemVer=str(g["version"]),
            )
        self._emit([event])

    def leave_group(self, chat_id: str, external_userid: str, *, quit_scene: int = 0) -> None:
        """A member leaves (quit scene 0 by themselves, 1 removed by the owner)."""
        with self.lock:
            g = self.groups[chat_id]
            last = g["version"]
            g["member_list"] = [m for m in g["member_list"] if m["userid"] != external_userid]
            g["version"] += 1
            event = self._event(
                "change_external_chat",
                "update",
                ChatId=chat_id,
                UpdateDetail="del_member",
                QuitScene=quit_scene,
                MemChangeCnt=1,
                MemChangeList=[external_userid],
                LastMemVer=str(last),
                CurMemVer=str(g["version"]),
            )
        self._emit([event])

    def dismiss_group(self, chat_id: str) -> None:
        with self.lock:
            self.groups.pop(chat_id)
            event = self._event("change_external_chat", "dismiss", ChatId=chat_id)
        self._emit([event])

    def resign(self, userid: str) -> None:
        """A staff member leaves the company: deleted from the directory (change_contact
        delete_user); their customers become unassigned (待分配) until a resigned transfer."""
        with self.lock:
            self._user_or_raise(userid)
            self.resigned[userid] = self.clock.now()
            self.users[userid]["status"] = 5  # 退出企业
            event = self._directory_event("delete_user", UserID=userid)
        self._emit([event])

    def _directory_event(self, change_type: str, **fields: Any) -> Event:
        return Event(
            corp_id=self.corp_id,
            create_time=self.clock.now(),
            event="change_contact",
            change_type=change_type,
            fields=fields,
        )

    def staff_joins(self, *, userid: str, name: str, department: list[int] | None = None) -> None:
        """An admin adds a member to the directory: change_contact create_user."""
        self.add_user(userid=userid, name=name, department=department)
        with self.lock:
            u = self.users[userid]
            event = self._directory_event(
                "create_user",
                UserID=userid,
                Name=name,
                Department=",".join(str(d) for d in u["department"]),
                MainDepartment=u["department"][0],
                Status=1,
            )
        self._emit([event])

    def staff_renamed(self, userid: str, *, name: str) -> None:
        """An admin edits a member's name: change_contact update_user."""
        with self.lock:
            self._user_or_raise(userid)
            self.users[userid]["name"] = name
            event = self._directory_event("update_user", UserID=userid, Name=name)
        self._emit([event])

    def complete_transfers(self, *, refuse: set[str] | None = None) -> None:
        """WeCom finishes the waiting transfers (after 24 h in reality). A customer in `refuse`
        declines (in-service only): transfer_fail. A takeover: the takeover gets the friendship;
        in-service handovers lose theirs (del_external_contact, Source DELETE_BY_TRANSFER)."""
        events: list[Event] = []
        with self.lock:
            now = self.clock.now()
            for t in self.transfers.values():
                if t.status != 2:
                    continue
                if t.kind == "in_service" and refuse and t.external_userid in refuse:
                    t.status = 3
                    events.append(
                        self._event(
                            "change_external_contact",
                            "transfer_fail",
                            FailReason="customer_refused",
                            UserID=t.takeover_userid,
                            ExternalUserID=t.external_userid,
                        )
                    )
                    continue
                old = self.follows.pop((t.handover_userid, t.external_userid))
                self.follows[(t.takeover_userid, t.external_userid)] = Follow(
                    t.takeover_userid, t.external_userid, now, add_way=202, tags=set(old.tags)
                )
                t.status, t.takeover_time = 1, now
                if t.kind == "in_service":
                    events.append(
                        self._event(
                            "change_external_contact",
                            "del_external_contact",
                            UserID=t.handover_userid,
                            ExternalUserID=t.external_userid,
                            Source="DELETE_BY_TRANSFER",
                        )
                    )
                events.append(
                    self._event(
                        "change_external_contact",
                        "add_external_contact",
                        UserID=t.takeover_userid,
                        ExternalUserID=t.external_userid,
                    )
                )
        self._emit(events)

    # ----- inspection ------------------------------------------------------------------

    def add_friends(self, userid: str, external_userids: list[str]) -> None:
        """Seed: these customers are already friends of `userid` (no callbacks)."""
        with self.lock:
            self._user_or_raise(userid)
            now = self.clock.now()
            for ext in external_userids:
                self.customers.setdefault(
                    ext, {"external_userid": ext, "name": f"顾客{len(self.customers) + 1}",
                          "type": 1, "gender": 0}
                )  # fmt: skip
                self.follows[(userid, ext)] = Follow(userid, ext, now)

    def messages_received(self) -> dict[str, int]:
        """How many mass messages each customer (or group) has received: tasks confirmed by
        staff with status 1 (sent) for that target."""
        self._auto_confirm()
        counts: dict[str, int] = {}
        with self.lock:
            for m in self.msg_templates.values():
                for task in m["tasks"].values():
                    for target, r in task.get("results", {}).items():
                        if r["status"] == 1:
                            counts[target] = counts.get(target, 0) + 1
        return counts

    def friends(self) -> set[tuple[str, str]]:
        with self.lock:
            return set(self.follows)

    def tags_of(self, userid: str, external_userid: str) -> set[str]:
        with self.lock:
            f = self.follows.get((userid, external_userid))
            return set(f.tags) if f else set()
