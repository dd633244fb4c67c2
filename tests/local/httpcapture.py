"""A loopback HTTP server that records every request and answers from a script of codes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fixtures.waiting import DEADLINE, wait_for


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Capture:
    url: str
    requests: list[Captured] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    delay: float = 0.0  # seconds to hold each answer
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(
        self, predicate: Callable[[list[Captured]], bool], timeout: float = DEADLINE
    ) -> None:
        def met() -> bool:
            with self.lock:
                return predicate(list(self.requests))

        wait_for(met, timeout, what=f"the requests to the capture (got {len(self.requests)})")


@contextmanager
def capture_server() -> Iterator[Capture]:
    capture = Capture(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with capture.lock:
                capture.requests.append(
                    Captured(
                        "POST",
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                status = capture.statuses.pop(0) if capture.statuses else 200
                capture.in_flight += 1
                capture.max_in_flight = max(capture.max_in_flight, capture.in_flight)
            time.sleep(capture.delay)
            with capture.lock:
                capture.in_flight -= 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    capture.url = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
