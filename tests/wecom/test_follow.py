"""`siyu wecom process --follow` in two processes at once: every event handled exactly once.

Two real `siyu` processes follow the same store while 30 customers scan a code with a welcome
message: each event is claimed by one of them, each welcome goes out once (within WeCom's
20-second window), and both processes did part of the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from siyu.config import Settings
from siyu.wecom import service as wecom_service
from tests.wecom.world import World, cli_env, world

CUSTOMERS = 30
WELCOME = {"text": "{name}，欢迎！"}


def start_follower(w: World) -> subprocess.Popen[str]:
    env = {**os.environ, **cli_env(w), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from siyu.cli import app; app()",
            "--data-dir",
            str(w.settings.data_dir),
            "wecom",
            "process",
            "--follow",
            "--poll",
            "0.1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the store is open and polling starts
    assert "Following WeCom events" in first, first
    return proc


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_two_followers_process_each_event_once(settings: Settings) -> None:
    with world(settings) as w:
        w.sim.add_user(userid="guide01", name="王导购")
        way = wecom_service.create_contact_way(
            w.engine,
            w.client,
            brand_id=w.brand_id,
            channel_code="store_qr",
            user_ids=["guide01"],
            welcome=WELCOME,
        )
        followers = [start_follower(w), start_follower(w)]
        try:
            w.sender.hold()
            for i in range(CUSTOMERS):
                w.sim.customer_scans(way.config_id, name=f"顾客{i}")
            w.sender.release()  # a burst: both followers find the same pending events
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = w.rows(
                    "SELECT count(*) FROM wecom_callback_event WHERE brand_id = :b "
                    "AND status = 'processed'"
                )[0][0]
                if done == CUSTOMERS:
                    break
                time.sleep(0.2)
        finally:
            outputs = [stop(p) for p in followers]
        events = w.rows(
            "SELECT status, attempts, claimed_by FROM wecom_callback_event WHERE brand_id = :b"
        )
        errors = w.rows(
            "SELECT last_error FROM wecom_callback_event WHERE brand_id = :b "
            "AND last_error IS NOT NULL"
        )
        welcomes = w.rows(
            "SELECT status, count(*) FROM wecom_welcome WHERE brand_id = :b GROUP BY status"
        )
        friends = w.rows(
            "SELECT count(*) FROM connection WHERE brand_id = :b AND kind = 'wecom_friend'"
        )
        sent = [m["welcome_code"] for m in w.sim.welcomes_sent]
    assert len(events) == CUSTOMERS
    assert {(s, a) for s, a, _ in events} == {("processed", 1)}, errors
    assert len({c for _, _, c in events}) == 2, "both followers should have taken events"
    assert welcomes == [("sent", CUSTOMERS)]
    assert len(sent) == len(set(sent)) == CUSTOMERS
    assert friends == [(CUSTOMERS,)]
    assert all("Stopped." in out for out in outputs), outputs
