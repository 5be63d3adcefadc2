"""A thin typed client of WeCom's server API (企业微信 服务端API), customer-contact part.

Paths, parameter names, response fields and errcodes are WeCom's own
(https://developer.work.weixin.qq.com/document/path/90664 and the 客户联系 chapters), so a reader
of WeCom's documentation can read this file, and the same calls work against `siyu wecom-sim`.
Responses are returned as WeCom's JSON objects (dicts with WeCom's field names), minus
``errcode``/``errmsg``; a non-zero errcode raises :class:`WeComError`.

Behaviour every call shares:

* access_token: fetched with gettoken, cached per (corp, secret) in a :class:`TokenStore`
  (the operational store in production, so every process shares one), refreshed
  `REFRESH_MARGIN` before it expires, and refreshed once more when WeCom answers 40014
  (invalid) or 42001 (expired).
* retries with exponential backoff and jitter on -1 (system busy), 45009 (frequency limit),
  45033 (concurrency limit), HTTP 5xx, timeouts and connection errors. A call that creates
  something (add_contact_way, add_msg_template, ...) is retried only when WeCom certainly did
  not execute it: on those errcodes and on connection errors, never after a timeout or a 5xx,
  where it may have been executed.
* a per-corp rate limiter (token bucket) shared by every client of the process.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from siyu.wecom.tokens import MemoryTokenStore, StoredToken, TokenStore, secret_hash

log = logging.getLogger(__name__)

# WeCom's global errcodes this client acts on (全局错误码).
SYSTEM_BUSY = -1
INVALID_ACCESS_TOKEN = 40014
ACCESS_TOKEN_EXPIRED = 42001
FREQUENCY_LIMIT = 45009
CONCURRENCY_LIMIT = 45033
RETRYABLE_ERRCODES = frozenset({SYSTEM_BUSY, FREQUENCY_LIMIT, CONCURRENCY_LIMIT})
TOKEN_ERRCODES = frozenset({INVALID_ACCESS_TOKEN, ACCESS_TOKEN_EXPIRED})
# Customer-contact errcodes the domain code interprets.
NOT_EXTERNAL_CONTACT = 84061  # no customer relationship between this staff and customer
WELCOME_ALREADY_SENT = 41051  # externaluser has started chatting: the welcome is delivered
WELCOME_DISTRIBUTING = 41096  # another app is sending the welcome; may still fail

REFRESH_MARGIN = timedelta(minutes=5)
DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"


class WeComError(Exception):
    """WeCom answered with a non-zero errcode (or could not be reached: errcode -1)."""

    def __init__(self, errcode: int, errmsg: str, *, path: str = "") -> None:
        super().__init__(f"WeCom {path or 'API'} failed: errcode {errcode}, {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path


class WeComUnavailable(WeComError):
    """No answer after every retry (timeouts, connection errors, HTTP 5xx)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(SYSTEM_BUSY, message, path=path)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the attempt-th retry (0-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


class RateLimiter:
    """Token bucket: at most `rate` calls a second on average, bursts of `burst`."""

    _registry: dict[str, RateLimiter] = {}
    _registry_lock = threading.Lock()

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate
        self.capacity = float(burst or max(1, int(rate)))
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def for_corp(cls, corp_id: str, rate: float) -> RateLimiter:
        """The process-wide limiter of one corp (WeCom counts calls per corp)."""
        with cls._registry_lock:
            limiter = cls._registry.get(corp_id)
            if limiter is None or limiter.rate != rate:
                limiter = cls._registry[corp_id] = RateLimiter(rate)
            return limiter

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            sleep(wait)


class WeComClient:
    """One corp, one secret. Thread-safe; close it (or use it as a context manager)."""

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        token_store: TokenStore | None = None,
        requests_per_second: float = 20.0,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self._secret_hash = secret_hash(secret)
        self._tokens = token_store or MemoryTokenStore()
        self._limiter = RateLimiter.for_corp(corp_id, requests_per_second)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:  # never the secret
        return f"WeComClient(corp_id={self.corp_id!r}, base_url={str(self._http.base_url)!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- access token ---------------------------------------------------------------

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid token: the shared one unless it expires within REFRESH_MARGIN."""
        with self._token_lock:
            stored = self._tokens.get(self.corp_id, self._secret_hash)
            now = datetime.now(UTC)
            if (
                stored is not None
                and not force_refresh
                and stored.expires_at - now > REFRESH_MARGIN
            ):
                return stored.access_token
            if stored is not None and force_refresh:
                self._tokens.invalidate(self.corp_id, self._secret_hash, stored.access_token)
            body = self._call(
                "GET",
                "/cgi-bin/gettoken",
                params={"corpid": self.corp_id, "corpsecret": self._secret},
                idempotent=True,
            )
            token = StoredToken(
                access_token=str(body["access_token"]),
                expires_at=now + timedelta(seconds=int(body.get("expires_in", 7200))),
            )
            self._tokens.put(self.corp_id, self._secret_hash, token)
            return token.access_token

    # ----- transport ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Call an authenticated API; refresh the token once if WeCom says it is bad."""
        token = self.access_token()
        try:
            return self._call(
                method, path, params=params, json=json, token=token, idempotent=idempotent
            )
        except WeComError as e:
            if e.errcode not in TOKEN_ERRCODES:
                raise
            log.info("WeCom said errcode %s on %s: refreshing the access token", e.errcode, path)
            with self._token_lock:
                self._tokens.invalidate(self.corp_id, self._secret_hash, token)
            token = self.access_token()
            return self._call(
                method, path, params=params, json=json, token=token, idempotent=idempotent
            )

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        token: str | None = None,
        idempotent: bool,
    ) -> dict[str, Any]:
        query = dict(params or {})
        if token is not None:
            query["access_token"] = token
        last = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                self._sleep(self._retry.delay(attempt - 1))
            self._limiter.acquire(self._sleep)
            try:
                response = self._http.request(method, path, params=query, json=json)
            except httpx.ConnectError as e:  # never reached WeCom: always safe to retry
                last = f"cannot connect: {e}"
                continue
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
                if idempotent:
                    continue
                raise WeComUnavailable(
                    f"{last} (not retried: it may have been executed)", path=path
                ) from None
            if response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                if idempotent:
                    continue
                raise WeComUnavailable(
                    f"{last} (not retried: it may have been executed)", path=path
                )
            if response.status_code != 200:
                raise WeComUnavailable(
                    f"HTTP {response.status_code}: {response.text[:200]}", path=path
                )
            try:
                body = response.json()
            except ValueError:
                raise WeComUnavailable(f"not JSON: {response.text[:200]!r}", path=path) from None
            errcode = int(body.get("errcode", 0))
            if errcode == 0:
                body.pop("errcode", None)
                body.pop("errmsg", None)
                return body
            errmsg = str(body.get("errmsg", ""))
            if errcode in RETRYABLE_ERRCODES:
                last = f"errcode {errcode}, {errmsg}"
                log.info("WeCom %s answered %s; backing off", path, last)
                continue
            raise WeComError(errcode, errmsg, path=path)
        raise WeComUnavailable(f"gave up after {self._retry.attempts} attempts: {last}", path=path)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def _post(self, path: str, body: dict[str, Any], *, idempotent: bool = True) -> dict[str, Any]:
        clean = {k: v for k, v in body.items() if v is not None}
        return self.request("POST", path, json=clean, idempotent=idempotent)

    # ----- 通讯录: departments and staff ------------------------------------------------

    def department_list(self, *, id: int | None = None) -> list[dict[str, Any]]:
        """GET department/list: [{id, name, parentid, order, ...}]."""
        return list(self._get("/cgi-bin/department/list", id=id).get("department", []))

    def user_list(self, *, department_id: int, fetch_child: bool = False) -> list[dict[str, Any]]:
        """GET user/list: [{userid, name, department, status, ...}] of one department."""
        body = self._get(
            "/cgi-bin/user/list", department_id=department_id, fetch_child=int(fetch_child)
        )
        return list(body.get("userlist", []))

    def user_get(self, *, userid: str) -> dict[str, Any]:
        """GET user/get: one member."""
        return self._get("/cgi-bin/user/get", userid=userid)

    # ----- 客户管理: customers ------------------------------------------------------------

    def external_contact_list(self, *, userid: str) -> list[str]:
        """GET externalcontact/list: the external_userids a staff member follows."""
        return list(
            self._get("/cgi-bin/externalcontact/list", userid=userid).get("external_userid", [])
        )

    def external_contact_get(
        self, *, external_userid: str, cursor: str | None = None
    ) -> dict[str, Any]:
        """GET externalcontact/get: {external_contact: {...}, follow_user: [...], next_cursor}."""
        return self._get(
            "/cgi-bin/externalcontact/get", external_userid=external_userid, cursor=cursor
        )

    def batch_get_by_user(
        self, *, userid_list: list[str], cursor: str = "", limit: int = 100
    ) -> dict[str, Any]:
        """POST externalcontact/batch/get_by_user: one page {external_contact_list, next_cursor}."""
        return self._post(
            "/cgi-bin/externalcontact/batch/get_by_user",
            {"userid_list": userid_list, "cursor": cursor, "limit": limit},
        )

    def iter_contacts_by_user(
        self, *, userid_list: list[str], limit: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every {external_contact, follow_info} of these staff, following next_cursor."""
        cursor = ""
        while True:
            page = self.batch_get_by_user(userid_list=userid_list, cursor=cursor, limit=limit)
            yield from page.get("external_contact_list", [])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return

    def remark(
        self,
        *,
        userid: str,
        external_userid: str,
        remark: str | None = None,
        description: str | None = None,
        remark_company: str | None = None,
        remark_mobiles: list[str] | None = None,
    ) -> None:
        """POST externalcontact/remark: the staff member's note on a customer."""
        self._post(
            "/cgi-bin/externalcontact/remark",
            {
                "userid": userid,
                "external_userid": external_userid,
                "remark": remark,
                "description": description,
                "remark_company": remark_company,
                "remark_mobiles": remark_mobiles,
            },
        )

    # ----- 客户标签: corp tags -------------------------------------------------------------

    def get_corp_tag_list(
        self, *, tag_id: list[str] | None = None, group_id: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """POST get_corp_tag_list: [{group_id, group_name, create_time, order, tag: [...]}]."""
        body = self._post(
            "/cgi-bin/externalcontact/get_corp_tag_list", {"tag_id": tag_id, "group_id": group_id}
        )
        return list(body.get("tag_group", []))

    def add_corp_tag(
        self,
        *,
        tag: list[dict[str, Any]],
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
    ) -> dict[str, Any]:
        """POST add_corp_tag: tags into an existing group (group_id) or a new one (group_name)."""
        body = self._post(
            "/cgi-bin/externalcontact/add_corp_tag",
            {"group_id": group_id, "group_name": group_name, "order": order, "tag": tag},
            idempotent=False,
        )
        return dict(body["tag_group"])

    def edit_corp_tag(self, *, id: str, name: str | None = None, order: int | None = None) -> None:
        """POST edit_corp_tag: rename or reorder a tag or a tag group."""
        self._post(
            "/cgi-bin/externalcontact/edit_corp_tag", {"id": id, "name": name, "order": order}
        )

    def del_corp_tag(
        self, *, tag_id: list[str] | None = None, group_id: list[str] | None = None
    ) -> None:
        """POST del_corp_tag: tags, or whole groups."""
        self._post(
            "/cgi-bin/externalcontact/del_corp_tag", {"tag_id": tag_id, "group_id": group_id}
        )

    def mark_tag(
        self,
        *,
        userid: str,
        external_userid: str,
        add_tag: list[str] | None = None,
        remove_tag: list[str] | None = None,
    ) -> None:
        """POST mark_tag: add/remove corp tags on one (staff, customer) pair. Idempotent."""
        self._post(
            "/cgi-bin/externalcontact/mark_tag",
            {
                "userid": userid,
                "external_userid": external_userid,
                "add_tag": add_tag or [],
                "remove_tag": remove_tag or [],
            },
        )

    # ----- 联系我: contact ways (渠道活码) ------------------------------------------------------

    def add_contact_way(
        self,
        *,
        type: int,
        scene: int,
        user: list[str] | None = None,
        party: list[int] | None = None,
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool = True,
        style: int | None = None,
    ) -> dict[str, Any]:
        """POST add_contact_way: {config_id, qr_code}. type 1 single / 2 multi; scene 2 = QR."""
        return self._post(
            "/cgi-bin/externalcontact/add_contact_way",
            {
                "type": type,
                "scene": scene,
                "style": style,
                "remark": remark,
                "skip_verify": skip_verify,
                "state": state,
                "user": user,
                "party": party,
            },
            idempotent=False,
        )

    def get_contact_way(self, *, config_id: str) -> dict[str, Any]:
        """POST get_contact_way: the contact_way object."""
        return dict(
            self._post("/cgi-bin/externalcontact/get_contact_way", {"config_id": config_id})[
                "contact_way"
            ]
        )

    def update_contact_way(
        self,
        *,
        config_id: str,
        user: list[str] | None = None,
        party: list[int] | None = None,
        state: str | None = None,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
    ) -> None:
        """POST update_contact_way: the fields given replace the old ones."""
        self._post(
            "/cgi-bin/externalcontact/update_contact_way",
            {
                "config_id": config_id,
                "remark": remark,
                "skip_verify": skip_verify,
                "style": style,
                "state": state,
                "user": user,
                "party": party,
            },
        )

    def del_contact_way(self, *, config_id: str) -> None:
        """POST del_contact_way."""
        self._post("/cgi-bin/externalcontact/del_contact_way", {"config_id": config_id})

    def send_welcome_msg(
        self,
        *,
        welcome_code: str,
        text: dict[str, str] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> None:
        """POST send_welcome_msg: once per WelcomeCode, within 20 s of the add event.

        A second send answers 41051 (WELCOME_ALREADY_SENT), so a retry is harmless.
        """
        self._post(
            "/cgi-bin/externalcontact/send_welcome_msg",
            {"welcome_code": welcome_code, "text": text, "attachments": attachments},
        )

    # ----- 客户群: group chats -----------------------------------------------------------

    def groupchat_list(
        self,
        *,
        status_filter: int = 0,
        owner_userids: list[str] | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> dict[str, Any]:
        """POST groupchat/list: one page {group_chat_list: [{chat_id, status}], next_cursor}."""
        return self._post(
            "/cgi-bin/externalcontact/groupchat/list",
            {
                "status_filter": status_filter,
                "owner_filter": {"userid_list": owner_userids} if owner_userids else None,
                "cursor": cursor,
                "limit": limit,
            },
        )

    def iter_groupchats(
        self, *, status_filter: int = 0, limit: int = 1000
    ) -> Iterator[dict[str, Any]]:
        cursor = ""
        while True:
            page = self.groupchat_list(status_filter=status_filter, cursor=cursor, limit=limit)
            yield from page.get("group_chat_list", [])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return

    def groupchat_get(self, *, chat_id: str, need_name: bool = True) -> dict[str, Any]:
        """POST groupchat/get: {chat_id, name, owner, create_time, member_list, admin_list, ...}."""
        body = self._post(
            "/cgi-bin/externalcontact/groupchat/get",
            {"chat_id": chat_id, "need_name": int(need_name)},
        )
        return dict(body["group_chat"])

    # ----- 消息推送: mass messages that staff confirm ---------------------------------------

    def add_msg_template(
        self,
        *,
        chat_type: str = "single",
        sender: str | None = None,
        external_userid: list[str] | None = None,
        chat_id_list: list[str] | None = None,
        text: dict[str, str] | None = None,
        attachments: list[dict[str, Any]] | None = None,
        allow_select: bool | None = None,
    ) -> dict[str, Any]:
        """POST add_msg_template: a task the staff member confirms; {msgid, fail_list}."""
        return self._post(
            "/cgi-bin/externalcontact/add_msg_template",
            {
                "chat_type": chat_type,
                "external_userid": external_userid,
                "chat_id_list": chat_id_list,
                "sender": sender,
                "allow_select": allow_select,
                "text": text,
                "attachments": attachments,
            },
            idempotent=False,
        )

    def get_groupmsg_list_v2(
        self,
        *,
        chat_type: str,
        start_time: int,
        end_time: int,
        creator: str | None = None,
        filter_type: int = 2,
        limit: int = 100,
        cursor: str = "",
    ) -> dict[str, Any]:
        """POST get_groupmsg_list_v2: {group_msg_list: [...], next_cursor}."""
        return self._post(
            "/cgi-bin/externalcontact/get_groupmsg_list_v2",
            {
                "chat_type": chat_type,
                "start_time": start_time,
                "end_time": end_time,
                "creator": creator,
                "filter_type": filter_type,
                "limit": limit,
                "cursor": cursor,
            },
        )

    def get_groupmsg_task(
        self, *, msgid: str, limit: int = 1000, cursor: str = ""
    ) -> dict[str, Any]:
        """POST get_groupmsg_task: {task_list: [{userid, status, send_time}], next_cursor}."""
        return self._post(
            "/cgi-bin/externalcontact/get_groupmsg_task",
            {"msgid": msgid, "limit": limit, "cursor": cursor},
        )

    def get_groupmsg_send_result(
        self, *, msgid: str, userid: str, limit: int = 1000, cursor: str = ""
    ) -> dict[str, Any]:
        """POST get_groupmsg_send_result: {send_list: [{external_userid, chat_id, userid,
        status, send_time}], next_cursor}; status 0 unsent, 1 sent, 2 not a friend, 3 quota."""
        return self._post(
            "/cgi-bin/externalcontact/get_groupmsg_send_result",
            {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor},
        )

    # ----- 客户继承: transfer (在职继承 / 离职继承) ------------------------------------------

    def transfer_customer(
        self,
        *,
        handover_userid: str,
        takeover_userid: str,
        external_userid: list[str],
        transfer_success_msg: str | None = None,
    ) -> list[dict[str, Any]]:
        """POST transfer_customer (在职继承): [{external_userid, errcode}] per customer."""
        body = self._post(
            "/cgi-bin/externalcontact/transfer_customer",
            {
                "handover_userid": handover_userid,
                "takeover_userid": takeover_userid,
                "external_userid": external_userid,
                "transfer_success_msg": transfer_success_msg,
            },
            idempotent=False,
        )
        return list(body.get("customer", []))

    def transfer_result(
        self, *, handover_userid: str, takeover_userid: str, cursor: str = ""
    ) -> dict[str, Any]:
        """POST transfer_result: {customer: [{external_userid, status, takeover_time}],
        next_cursor}; status 1 done, 2 waiting, 3 refused, 4 takeover full, 5 no record."""
        return self._post(
            "/cgi-bin/externalcontact/transfer_result",
            {
                "handover_userid": handover_userid,
                "takeover_userid": takeover_userid,
                "cursor": cursor,
            },
        )

    def resigned_transfer_customer(
        self, *, handover_userid: str, takeover_userid: str, external_userid: list[str]
    ) -> list[dict[str, Any]]:
        """POST resigned/transfer_customer (离职继承): [{external_userid, errcode}]."""
        body = self._post(
            "/cgi-bin/externalcontact/resigned/transfer_customer",
            {
                "handover_userid": handover_userid,
                "takeover_userid": takeover_userid,
                "external_userid": external_userid,
            },
            idempotent=False,
        )
        return list(body.get("customer", []))

    def resigned_transfer_result(
        self, *, handover_userid: str, takeover_userid: str, cursor: str = ""
    ) -> dict[str, Any]:
        """POST resigned/transfer_result: as transfer_result."""
        return self._post(
            "/cgi-bin/externalcontact/resigned/transfer_result",
            {
                "handover_userid": handover_userid,
                "takeover_userid": takeover_userid,
                "cursor": cursor,
            },
        )

    def groupchat_transfer(
        self, *, chat_id_list: list[str], new_owner: str, resigned: bool
    ) -> list[dict[str, Any]]:
        """POST groupchat/transfer (离职继承: a resigned owner's groups) or groupchat/onjob_transfer
        (在职继承): at most 100 groups a call; the failures [{chat_id, errcode, errmsg}]."""
        path = "groupchat/transfer" if resigned else "groupchat/onjob_transfer"
        body = self._post(
            f"/cgi-bin/externalcontact/{path}",
            {"chat_id_list": chat_id_list, "new_owner": new_owner},
            idempotent=False,
        )
        return list(body.get("failed_chat_list", []))

    def get_unassigned_list(self, *, cursor: str = "", page_size: int = 1000) -> dict[str, Any]:
        """POST get_unassigned_list: resigned staff's customers awaiting a takeover:
        {info: [{handover_userid, external_userid, dimission_time}], is_last, next_cursor}."""
        return self._post(
            "/cgi-bin/externalcontact/get_unassigned_list",
            {"cursor": cursor, "page_size": page_size},
        )


def client_from_settings(
    settings: Any, *, token_store: TokenStore | None = None, **kwargs: Any
) -> WeComClient:
    """A client for the configured corp (SIYU_WECOM_CORP_ID / _SECRET / _API_BASE)."""
    if not settings.wecom_corp_id or not settings.wecom_secret:
        raise ValueError(
            "WeCom is not configured: set SIYU_WECOM_CORP_ID and SIYU_WECOM_SECRET "
            "(or wecom_corp_id / wecom_secret in siyu.toml)."
        )
    return WeComClient(
        corp_id=settings.wecom_corp_id,
        secret=settings.wecom_secret,
        base_url=settings.wecom_api_base,
        token_store=token_store,
        requests_per_second=settings.wecom_requests_per_second,
        timeout=settings.wecom_timeout_seconds,
        **kwargs,
    )
