"""A real HTTP server on 127.0.0.1 that receives webhook posts, as a partner's endpoint
would: it records every request and answers with the statuses it is told to."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Condition()
        self.received: list[Received] = []
        #: Statuses to answer, first to last; once spent, `then` is answered.
        self.answers: list[int] = []
        self.then = 200
        #: Seconds each request is held before it is answered.
        self.delay = 0.0

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/journeys"

    def record(self, received: Received) -> int:
        with self._lock:
            self.received.append(received)
            self._lock.notify_all()
            return self.answers.pop(0) if self.answers else self.then

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """The first `count` requests, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} webhook requests, got {len(self.received)}"
                    )
                self._lock.wait(left)
            return list(self.received[:count])

    def of_type(self, event: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if json.loads(item.body)["type"] == event]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 until the block ends."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            time.sleep(receiver.delay)
            status = receiver.record(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
