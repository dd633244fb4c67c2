"""One callback POST (shared/cloud/webhooks.py) against a real server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.cloud import webhooks


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[str, bytes]]]]:
    seen: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            seen.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            if self.path.startswith("/moved"):
                self.send_response(301)
                self.send_header("Location", "/target")
            else:
                self.send_response(200 if self.path != "/fail" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1], seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_name_is_resolved_and_each_checked_address_tried(server):
    port, seen = server
    # localhost may resolve to ::1 first, where nothing listens: 127.0.0.1 answers.
    answer = webhooks.post(f"http://localhost:{port}/ok?x=1", b"{}", {}, allow_private=True)
    assert answer.delivered and answer.status == 200, answer
    assert seen == [("/ok?x=1", b"{}")]


def test_a_redirect_is_an_answer_not_followed(server):
    port, seen = server
    answer = webhooks.post(f"http://127.0.0.1:{port}/moved", b"x", {}, allow_private=True)
    assert not answer.delivered and answer.status == 301
    assert answer.detail == "301 Moved Permanently (redirects are not followed)"
    assert [path for path, _ in seen] == ["/moved"]


def test_a_500_and_no_server_are_failures(server):
    port, _ = server
    assert webhooks.post(f"http://127.0.0.1:{port}/fail", b"", {}, allow_private=True).status == 500
    closed = webhooks.post("http://127.0.0.1:9/", b"", {}, allow_private=True)
    assert closed.status is None and closed.detail.startswith("ConnectionRefusedError")


def test_loopback_is_refused_before_any_connection(server):
    port, seen = server
    answer = webhooks.post(f"https://localhost:{port}/ok", b"", {}, allow_private=False)
    assert answer.status is None and answer.detail.startswith("refused: ")
    assert seen == []
