"""The errcodes the simulator answers with: WeCom's own numbers and messages."""

from __future__ import annotations


class SimError(Exception):
    """A WeCom errcode answer (HTTP 200, JSON {errcode, errmsg})."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


SYSTEM_BUSY = (-1, "system busy")
INVALID_SECRET = (40001, "invalid credential")
INVALID_CORPID = (40013, "invalid corpid")
INVALID_ACCESS_TOKEN = (40014, "invalid access_token")
INVALID_PARAMETER = (40058, "invalid parameter")  # 不合法的参数 (global errcode table)
INVALID_TAG_ID = (40068, "invalid tagid")
INVALID_EXTERNAL_USERID = (40096, "invalid external userid")
ACCESS_TOKEN_MISSING = (41001, "access_token missing")
WELCOME_ALREADY_SENT = (41051, "externaluser has started chatting")
ACCESS_TOKEN_EXPIRED = (42001, "access_token expired")
FREQUENCY_LIMIT = (45009, "api freq out of limit")
CONCURRENCY_LIMIT = (45033, "api concurrent out of limit")
USERID_NOT_FOUND = (60111, "userid not found")
NOT_EXTERNAL_CONTACT = (84061, "not external contact")
CHAT_NOT_FOUND = (40050, "chatid not found")  # chatid不存在 (global errcode table)
# A welcome sent after its 20 s window. WeCom documents the window (send_welcome_msg: "仅可在
# 收到相关事件后20秒内调用，且只可调用一次") and 41051 for a second send, but no errcode of its
# own for a late one; 41102 (used here before) is not a customer-contact code in WeCom's global
# table. A late code is a welcome_code WeCom no longer accepts: 40058 不合法的参数, the code
# WeCom documents for "传递参数不符合系统要求", as for an unknown welcome_code.
WELCOME_CODE_EXPIRED = (40058, "invalid parameter: welcome_code expired")


def fail(code: tuple[int, str], detail: str = "") -> SimError:
    errcode, errmsg = code
    return SimError(errcode, f"{errmsg}{', ' + detail if detail else ''}")
