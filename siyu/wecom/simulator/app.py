"""The simulator's HTTP face: WeCom's paths under /cgi-bin, plus a few /sim controls.

Failure injection (`ApiFaults`) is deterministic: "every n-th call" counters, so a test with
faults on is reproducible. The faults are WeCom's own: an expired token (42001), a burst of
45009, system busy (-1), HTTP 5xx from the gateway, and a slow answer (the client times out
while WeCom still executes the call — the ambiguous case).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from siyu.wecom.simulator import errors as E
from siyu.wecom.simulator.errors import SimError
from siyu.wecom.simulator.state import Simulator


@dataclass
class ApiFaults:
    expire_tokens_every: int = 0
    rate_limit_every: int = 0
    rate_limit_burst: int = 2
    busy_every: int = 0
    server_error_every: int = 0
    timeout_every: int = 0
    timeout_seconds: float = 1.0

    def any(self) -> bool:
        return any(
            (
                self.expire_tokens_every,
                self.rate_limit_every,
                self.busy_every,
                self.server_error_every,
                self.timeout_every,
            )
        )


Handler = Callable[[Simulator, dict[str, str], dict[str, Any]], dict[str, Any]]

_X = "/cgi-bin/externalcontact"
ROUTES: dict[str, tuple[str, Handler]] = {
    "/cgi-bin/department/list": ("GET", lambda s, q, b: s.department_list(q.get("id"))),
    "/cgi-bin/user/list": (
        "GET",
        lambda s, q, b: s.user_list(int(q.get("department_id", 1)), int(q.get("fetch_child", 0))),
    ),
    "/cgi-bin/user/get": ("GET", lambda s, q, b: s.user_get(q.get("userid", ""))),
    f"{_X}/list": ("GET", lambda s, q, b: s.externalcontact_list(q.get("userid", ""))),
    f"{_X}/get": (
        "GET",
        lambda s, q, b: s.externalcontact_get(q.get("external_userid", ""), q.get("cursor", "")),
    ),
    f"{_X}/batch/get_by_user": ("POST", lambda s, q, b: s.batch_get_by_user(**b)),
    f"{_X}/remark": ("POST", lambda s, q, b: s.remark(**b)),
    f"{_X}/get_corp_tag_list": ("POST", lambda s, q, b: s.get_corp_tag_list(**b)),
    f"{_X}/add_corp_tag": ("POST", lambda s, q, b: s.add_corp_tag(**b)),
    f"{_X}/edit_corp_tag": ("POST", lambda s, q, b: s.edit_corp_tag(**b)),
    f"{_X}/del_corp_tag": ("POST", lambda s, q, b: s.del_corp_tag(**b)),
    f"{_X}/mark_tag": ("POST", lambda s, q, b: s.mark_tag(**b)),
    f"{_X}/add_contact_way": ("POST", lambda s, q, b: s.add_contact_way(**b)),
    f"{_X}/get_contact_way": ("POST", lambda s, q, b: s.get_contact_way(**b)),
    f"{_X}/update_contact_way": ("POST", lambda s, q, b: s.update_contact_way(**b)),
    f"{_X}/del_contact_way": ("POST", lambda s, q, b: s.del_contact_way(**b)),
    f"{_X}/send_welcome_msg": ("POST", lambda s, q, b: s.send_welcome_msg(**b)),
    f"{_X}/groupchat/list": ("POST", lambda s, q, b: s.groupchat_list(**b)),
    f"{_X}/groupchat/get": ("POST", lambda s, q, b: s.groupchat_get(**b)),
    f"{_X}/add_msg_template": ("POST", lambda s, q, b: s.add_msg_template(**b)),
    f"{_X}/get_groupmsg_list_v2": ("POST", lambda s, q, b: s.get_groupmsg_list_v2(**b)),
    f"{_X}/get_groupmsg_task": ("POST", lambda s, q, b: s.get_groupmsg_task(**b)),
    f"{_X}/get_groupmsg_send_result": ("POST", lambda s, q, b: s.get_groupmsg_send_result(**b)),
    f"{_X}/transfer_customer": ("POST", lambda s, q, b: s.transfer_customer(**b)),
    f"{_X}/transfer_result": ("POST", lambda s, q, b: s.transfer_result(**b)),
    f"{_X}/resigned/transfer_customer": ("POST", lambda s, q, b: s.resigned_transfer_customer(**b)),
    f"{_X}/resigned/transfer_result": ("POST", lambda s, q, b: s.resigned_transfer_result(**b)),
    f"{_X}/get_unassigned_list": ("POST", lambda s, q, b: s.get_unassigned_list(**b)),
    f"{_X}/groupchat/transfer": ("POST", lambda s, q, b: s.groupchat_transfer(**b, resigned=True)),
    f"{_X}/groupchat/onjob_transfer": (
        "POST",
        lambda s, q, b: s.groupchat_transfer(**b, resigned=False),
    ),
}


class FaultInjector:
    def __init__(self, faults: ApiFaults | None = None) -> None:
        self.faults = faults or ApiFaults()
        self.calls = 0
        self.injected: dict[str, int] = {}
        self._burst_left = 0
        self._fresh_token = False  # a token just issued is not expired on its first use
        self._lock = threading.Lock()
        self.paths: dict[str, int] = {}  # calls per API path, faulty or not
        self._outage_in: int | None = None  # calls left before an outage (every call 5xx)

    def start_outage(self, *, after_calls: int = 0) -> None:
        """From the (after_calls+1)-th call on, every call answers HTTP 502 until end_outage():
        WeCom unreachable for longer than any client retries (an interrupted sync)."""
        with self._lock:
            self._outage_in = after_calls

    def end_outage(self) -> None:
        with self._lock:
            self._outage_in = None

    def count(self, path: str) -> None:
        with self._lock:
            self.paths[path] = self.paths.get(path, 0) + 1

    def _hit(self, every: int) -> bool:
        return bool(every) and self.calls % every == 0

    def before(self, sim: Simulator, *, is_gettoken: bool) -> str | None:
        """Count the call and decide its fault: 'error:<code>', 'http500', 'slow' or None."""
        f = self.faults
        with self._lock:
            self.calls += 1
            if self._outage_in is not None:
                if self._outage_in <= 0:
                    return self._note("outage", "http500")
                self._outage_in -= 1
            if self._burst_left:
                self._burst_left -= 1
                return self._note("rate_limit", f"error:{E.FREQUENCY_LIMIT[0]}")
            if self._hit(f.server_error_every):
                return self._note("server_error", "http500")
            if self._hit(f.timeout_every):
                return self._note("timeout", "slow")
            if self._hit(f.busy_every):
                return self._note("busy", f"error:{E.SYSTEM_BUSY[0]}")
            if self._hit(f.rate_limit_every):
                self._burst_left = max(0, f.rate_limit_burst - 1)
                return self._note("rate_limit", f"error:{E.FREQUENCY_LIMIT[0]}")
            if is_gettoken:
                self._fresh_token = True
            elif self._fresh_token:
                self._fresh_token = False
            elif self._hit(f.expire_tokens_every):
                sim.expire_tokens()
                return self._note("token_expired", None)
        return None

    def _note(self, kind: str, action: str | None) -> str | None:
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return action


def _error(code: tuple[int, str]) -> JSONResponse:
    return JSONResponse({"errcode": code[0], "errmsg": code[1]})


def create_app(sim: Simulator, injector: FaultInjector | None = None) -> FastAPI:
    app = FastAPI(title="Siyu WeCom simulator", docs_url=None, redoc_url=None)
    injector = injector or FaultInjector()
    app.state.sim = sim
    app.state.faults = injector

    @app.api_route("/cgi-bin/{rest:path}", methods=["GET", "POST"])
    async def cgi(request: Request, rest: str) -> Any:
        path = f"/cgi-bin/{rest}"
        query = dict(request.query_params)
        is_gettoken = path == "/cgi-bin/gettoken"
        injector.count(path)
        action = injector.before(sim, is_gettoken=is_gettoken)
        if action == "http500":
            return PlainTextResponse("502 Bad Gateway", status_code=502)
        if action and action.startswith("error:"):
            code = int(action.split(":")[1])
            msg = E.FREQUENCY_LIMIT[1] if code == E.FREQUENCY_LIMIT[0] else E.SYSTEM_BUSY[1]
            return JSONResponse({"errcode": code, "errmsg": msg})
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return _error((E.INVALID_PARAMETER[0], "Warning: wrong json format."))
            if not isinstance(body, dict):
                return _error(E.INVALID_PARAMETER)
        try:
            if is_gettoken:
                result = sim.gettoken(query.get("corpid", ""), query.get("corpsecret", ""))
            else:
                route = ROUTES.get(path)
                if route is None or route[0] != request.method:
                    return JSONResponse(
                        {"errcode": 404, "errmsg": f"no such api {path}"}, status_code=404
                    )
                sim.check_token(query.get("access_token"))
                result = route[1](sim, query, body)
        except SimError as e:
            return JSONResponse({"errcode": e.errcode, "errmsg": e.errmsg})
        except TypeError as e:  # a parameter WeCom does not know, or one missing
            return JSONResponse(
                {"errcode": E.INVALID_PARAMETER[0], "errmsg": f"invalid parameter: {e}"}
            )
        if action == "slow":
            # Executed, but answered too late: the client has timed out.
            await asyncio.sleep(injector.faults.timeout_seconds)
        return JSONResponse({"errcode": 0, "errmsg": "ok", **result})

    @app.get("/sim/state")
    def state() -> dict[str, Any]:
        with sim.lock:
            return {
                "corp_id": sim.corp_id,
                "users": len(sim.users),
                "customers": len(sim.customers),
                "friendships": len(sim.follows),
                "groups": len(sim.groups),
                "tags": len(sim.tags),
                "contact_ways": len(sim.contact_ways),
                "welcomes_sent": len(sim.welcomes_sent),
                "api_calls": injector.calls,
                "faults_injected": injector.injected,
            }

    @app.post("/sim/scan")
    def scan(payload: dict[str, Any]) -> dict[str, Any]:
        """Scenario: `count` customers scan the contact way `config_id`."""
        added = [
            sim.customer_scans(str(payload["config_id"]))
            for _ in range(int(payload.get("count", 1)))
        ]
        return {"added": [{"userid": u, "external_userid": e} for u, e in added]}

    return app
