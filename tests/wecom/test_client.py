"""The API client: shared token, refresh once on 40014/42001, retries, typed errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from siyu.config import Settings
from siyu.runtime import open_brand
from siyu.wecom.client import RetryPolicy, WeComClient, WeComError, WeComUnavailable
from siyu.wecom.tokens import DbTokenStore, MemoryTokenStore, StoredToken, secret_hash


class FakeWeCom:
    """A scripted WeCom: `answers[path]` is a list of responses consumed one per call."""

    def __init__(self, answers: dict[str, list] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, dict]] = []
        self.bodies: list[object] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        query = dict(request.url.params)
        self.calls.append((path, query))
        self.bodies.append(json.loads(request.content) if request.content else None)
        if path == "/cgi-bin/gettoken" and path not in self.answers:
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "errcode": 0,
                    "errmsg": "ok",
                    "access_token": f"T{self.tokens_issued}",
                    "expires_in": 7200,
                },
            )
        queue = self.answers.get(path) or [{"errcode": 0, "errmsg": "ok"}]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return httpx.Response(answer, text="gateway error")
        return httpx.Response(200, content=json.dumps(answer).encode())

    def paths(self) -> list[str]:
        return [p for p, _ in self.calls]


def make_client(fake: FakeWeCom, store=None) -> WeComClient:
    return WeComClient(
        corp_id="wwcorp",
        secret="s3cret",
        base_url="http://wecom.test",
        token_store=store or MemoryTokenStore(),
        transport=httpx.MockTransport(fake),
        retry=RetryPolicy(attempts=4, base_delay=0),
        sleep=lambda _: None,
        requests_per_second=10_000,
    )


def test_the_token_is_fetched_once_and_shared_through_the_database(settings: Settings) -> None:
    engine, _ = open_brand(settings)
    fake = FakeWeCom({"/cgi-bin/user/get": [{"errcode": 0, "errmsg": "ok", "userid": "u1"}]})
    first, second = make_client(fake, DbTokenStore(engine)), make_client(fake, DbTokenStore(engine))
    assert first.user_get(userid="u1") == {"userid": "u1"}
    assert second.user_get(userid="u1") == {"userid": "u1"}
    stored = DbTokenStore(engine).get("wwcorp", secret_hash("s3cret"))
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM wecom_access_token")).one()
    engine.dispose()
    assert fake.paths().count("/cgi-bin/gettoken") == 1
    assert stored is not None and stored.access_token == "T1"
    assert "s3cret" not in [str(v) for v in row]  # only the secret's hash is stored


def test_a_token_about_to_expire_is_refreshed_before_use() -> None:
    store = MemoryTokenStore()
    store.put(
        "wwcorp",
        secret_hash("s3cret"),
        StoredToken("OLD", datetime.now(UTC) + timedelta(seconds=60)),
    )
    fake = FakeWeCom()
    make_client(fake, store).department_list()
    assert fake.calls[-1][1]["access_token"] == "T1"


@pytest.mark.parametrize("errcode", [40014, 42001])
def test_a_rejected_token_is_refreshed_once(errcode: int) -> None:
    bad = {"errcode": errcode, "errmsg": "token"}
    fake = FakeWeCom(
        {
            "/cgi-bin/department/list": [
                bad,
                {"errcode": 0, "errmsg": "ok", "department": [{"id": 1}]},
            ]
        }
    )
    assert make_client(fake).department_list() == [{"id": 1}]
    assert fake.paths() == [
        "/cgi-bin/gettoken",
        "/cgi-bin/department/list",
        "/cgi-bin/gettoken",
        "/cgi-bin/department/list",
    ]
    # Twice in a row is an error, not a loop.
    fake = FakeWeCom({"/cgi-bin/department/list": [bad]})
    with pytest.raises(WeComError) as e:
        make_client(fake).department_list()
    assert e.value.errcode == errcode and fake.paths().count("/cgi-bin/gettoken") == 2


@pytest.mark.parametrize("transient", [-1, 45009, 45033, 502, httpx.ReadTimeout("slow")])
def test_transient_failures_are_retried(transient) -> None:
    first = (
        {"errcode": transient, "errmsg": "busy"}
        if isinstance(transient, int) and transient < 500
        else transient
    )
    fake = FakeWeCom({"/cgi-bin/externalcontact/mark_tag": [first, {"errcode": 0, "errmsg": "ok"}]})
    make_client(fake).mark_tag(userid="u", external_userid="wm", add_tag=["t"])
    assert fake.paths().count("/cgi-bin/externalcontact/mark_tag") == 2


def test_a_create_is_not_repeated_when_it_may_have_run() -> None:
    path = "/cgi-bin/externalcontact/add_contact_way"
    for ambiguous in (502, httpx.ReadTimeout("slow")):
        fake = FakeWeCom({path: [ambiguous, {"errcode": 0, "errmsg": "ok", "config_id": "c"}]})
        with pytest.raises(WeComUnavailable):
            make_client(fake).add_contact_way(type=1, scene=2, user=["u"], state="s")
        assert fake.paths().count(path) == 1
    # …but a refusal WeCom documents as not executed (45009) is retried.
    fake = FakeWeCom(
        {
            path: [
                {"errcode": 45009, "errmsg": "freq"},
                {"errcode": 0, "errmsg": "ok", "config_id": "c"},
            ]
        }
    )
    assert make_client(fake).add_contact_way(type=1, scene=2, user=["u"])["config_id"] == "c"


def test_errors_carry_wecom_errcode_and_errmsg_and_retries_give_up() -> None:
    fake = FakeWeCom(
        {"/cgi-bin/externalcontact/get": [{"errcode": 84061, "errmsg": "not external contact"}]}
    )
    with pytest.raises(WeComError) as e:
        make_client(fake).external_contact_get(external_userid="wm")
    assert (e.value.errcode, e.value.errmsg) == (84061, "not external contact")
    assert fake.paths().count("/cgi-bin/externalcontact/get") == 1  # not retryable
    fake = FakeWeCom({"/cgi-bin/department/list": [{"errcode": 45009, "errmsg": "freq"}]})
    with pytest.raises(WeComUnavailable, match="gave up after 4 attempts"):
        make_client(fake).department_list()


def test_requests_use_wecom_paths_and_field_names() -> None:
    fake = FakeWeCom()
    client = make_client(fake)
    client.transfer_customer(handover_userid="a", takeover_userid="b", external_userid=["wm"])
    client.get_unassigned_list(cursor="", page_size=100)
    client.send_welcome_msg(welcome_code="W", text={"content": "hi"})
    assert fake.paths()[1:] == [
        "/cgi-bin/externalcontact/transfer_customer",
        "/cgi-bin/externalcontact/get_unassigned_list",
        "/cgi-bin/externalcontact/send_welcome_msg",
    ]
    assert fake.bodies[1:] == [
        {"handover_userid": "a", "takeover_userid": "b", "external_userid": ["wm"]},
        {"cursor": "", "page_size": 100},
        {"welcome_code": "W", "text": {"content": "hi"}},
    ]
