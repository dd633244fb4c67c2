"""A local stand-in for the Cloud Scheduler REST API (v1 jobs: get, create, patch), so the
real google-cloud-scheduler client can be driven against it. Like the real service it
returns jobs with fields of its own (state, a User-Agent header) and 404s unknown ones."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class SchedulerState:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)


def _camel(path: str) -> str:
    head, *rest = path.split("_")
    return head + "".join(word.title() for word in rest)


def _handler(state: SchedulerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def _stored(self, job: dict[str, Any]) -> dict[str, Any]:
            job = json.loads(json.dumps(job))
            job["state"] = "ENABLED"
            job.setdefault("httpTarget", {}).setdefault("headers", {})["User-Agent"] = (
                "Google-Cloud-Scheduler"
            )
            return job

        def _name(self) -> str:
            return urlsplit(self.path).path.removeprefix("/v1/")

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(("GET", self._name()))
            job = state.jobs.get(self._name())
            if job is None:
                error = {"code": 404, "message": "Job not found.", "status": "NOT_FOUND"}
                return self._reply(404, {"error": error})
            return self._reply(200, job)

        def do_POST(self) -> None:  # noqa: N802
            parent = self._name().removesuffix("/jobs")
            state.requests.append(("POST", parent))
            job = self._body()
            if job["name"] in state.jobs:
                error = {"code": 409, "message": "exists", "status": "ALREADY_EXISTS"}
                return self._reply(409, {"error": error})
            state.jobs[job["name"]] = self._stored(job)
            return self._reply(200, state.jobs[job["name"]])

        def do_PATCH(self) -> None:  # noqa: N802
            name = self._name()
            state.requests.append(("PATCH", name))
            if name not in state.jobs:
                return self._reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
            body = self._body()
            mask = parse_qs(urlsplit(self.path).query).get("updateMask", [""])[0]
            job = state.jobs[name]
            for path in filter(None, mask.split(",")):
                key = _camel(path)
                if key in body:
                    job[key] = body[key]
                else:
                    job.pop(key, None)
            state.jobs[name] = self._stored(job)
            return self._reply(200, state.jobs[name])

    return Handler


@contextmanager
def fake_scheduler() -> Iterator[tuple[str, SchedulerState]]:
    """(the endpoint, its state) while the server runs on loopback."""
    state = SchedulerState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
