"""The access log of `siyu serve`: one line per HTTP request, as uvicorn's access log writes it
(`INFO:     127.0.0.1:50312 - "POST /api/v1/events HTTP/1.1" 200 OK`), without its cost.

uvicorn formats and flushes each line through `logging` on the event loop: about a third of a
one-event ingest request's server CPU (bench/ingest.py). Here a request costs one f-string and a
deque append on the loop; a thread writes what gathered every `interval` seconds in one write,
and whatever is left when the process exits.
"""

from __future__ import annotations

import atexit
import http
import sys
import threading
from collections import deque
from typing import Any, TextIO

from siyu.fastpath import Receive, Scope, Send

PHRASES = {s.value: f"{s.value} {s.phrase}" for s in http.HTTPStatus}


def line(scope: Scope, status: int) -> str:
    """uvicorn's access line (uncoloured) for a request answered with `status`."""
    client = scope.get("client")
    addr = f"{client[0]}:{client[1]}" if client else ""
    path = scope.get("raw_path") or scope["path"].encode()
    target = path.decode("latin-1")
    if scope.get("query_string"):
        target = f"{target}?{scope['query_string'].decode('ascii')}"
    target = target.replace('"', "%22")
    answer = PHRASES.get(status) or f"{status} "
    return (
        f'INFO:     {addr} - "{scope["method"]} {target} HTTP/{scope["http_version"]}" {answer}\n'
    )


class AccessLog:
    """ASGI middleware: the access line of every HTTP request that got an answer (when its
    response starts, as uvicorn logs it), written to `stream` by a background thread."""

    def __init__(self, app: Any, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.app = app
        self.stream = stream
        self.interval = interval
        self.lines: deque[str] = deque()  # append and popleft are thread-safe
        self.lock = threading.Lock()  # one writer at a time: the thread or the exit flush
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="siyu-access-log", daemon=True)
            self.thread.start()
            atexit.register(self.flush)
        lines = self.lines

        async def logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                lines.append(line(scope, message["status"]))
            await send(message)

        await self.app(scope, receive, logged)

    def _run(self) -> None:
        while not self.wake.wait(self.interval):
            self.flush()

    def flush(self) -> None:
        """Write every line gathered so far, in order."""
        with self.lock:
            n = len(self.lines)
            if not n:
                return
            text = "".join([self.lines.popleft() for _ in range(n)])
            stream = self.stream or sys.stdout
            stream.write(text)
            stream.flush()

    def close(self) -> None:
        """Stop the thread and write what is left (also done at exit)."""
        self.wake.set()
        if self.thread is not None:
            self.thread.join()
        self.flush()
