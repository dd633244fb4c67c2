"""A loopback stand-in for Cloud Storage's resumable upload sessions, with injected faults.

It follows what Cloud Storage documents ("Perform resumable uploads"), not what
fake-gcs-server does:

- `PUT` with `Content-Range: bytes S-E/*` or `bytes S-E/TOTAL`: bytes the session already
  holds are skipped (a resend is harmless), a gap is a 400, and the answer is 308 with
  `Range: bytes=0-N` (no Range while nothing is persisted) until the total is in;
- a status query (`bytes */*`, empty body) answers 308 and changes nothing; `bytes */TOTAL`
  finalizes when the session holds TOTAL bytes;
- finalizing checks the object does not exist yet (ifGenerationMatch=0: 412) and that the
  bytes match the request's `X-Goog-Hash: md5=...` (400 otherwise), then answers 200 with
  the object resource; a complete session answers every later request 200 with it.

`faults` maps the number of a PUT (1-based, counting every PUT) to what goes wrong instead.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import itertools
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

BUCKET = "bkt"
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


@dataclass(frozen=True)
class Fault:
    """What goes wrong with one request."""

    kind: str  # "drop-before", "drop-after", "status", "partial"
    status: int = 503  # for "status": the answer, with nothing persisted
    keep: int = 0  # for "partial": how many of the new bytes are persisted
    retry_after: int | None = None


DROP_BEFORE = Fault("drop-before")  # the body is read, nothing persisted, no answer
DROP_AFTER = Fault("drop-after")  # the request takes effect, its answer is lost


def status(code: int, retry_after: int | None = None) -> Fault:
    return Fault("status", status=code, retry_after=retry_after)


def partial(keep: int) -> Fault:
    return Fault("partial", keep=keep)


@dataclass
class Session:
    name: str
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    resource: dict[str, Any] | None = None  # set once the object is created
    gone: int | None = None  # answer every request with this status (404, 410, ...)


@dataclass(frozen=True)
class Seen:
    content_range: str
    length: int
    answer: int | str  # the status, or "dropped"


class ResumableServer:
    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.objects: dict[str, bytes] = {}  # name -> the created object's bytes
        self.faults: dict[int, Fault] = {}
        self.seen: list[Seen] = []
        self._count = itertools.count(1)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Cloud Storage serves it

            def do_PUT(self) -> None:  # noqa: N802 - the name http.server calls
                server._put(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def open(
        self,
        name: str = "job-output.zip",
        *,
        job_id: str = "job-1",
        earlier: bytes = b"",
    ) -> str:
        """A session URI for `name`; `earlier`: bytes an earlier attempt left in it."""
        upload_id = f"secret-upload-id-{next(self._ids)}"
        self.sessions[upload_id] = Session(name, {"job-id": job_id}, bytearray(earlier))
        return (
            f"{self.base}/upload/storage/v1/b/{BUCKET}/o?uploadType=resumable"
            f"&name={quote(name)}&upload_id={upload_id}"
        )

    def session(self, url: str) -> Session:
        return self.sessions[parse_qs(urlsplit(url).query)["upload_id"][0]]

    def ranges(self) -> list[str]:
        return [seen.content_range for seen in self.seen]

    # -- the protocol -----------------------------------------------------------------------

    def _put(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        content_range = handler.headers.get("Content-Range", "")
        with self._lock:
            fault = self.faults.get(next(self._count))
            session = self.sessions.get(parse_qs(urlsplit(handler.path).query)["upload_id"][0])

            def record(answer: int | str) -> None:
                self.seen.append(Seen(content_range, len(body), answer))

            if fault is not None and fault.kind == "drop-before":
                record("dropped")
                handler.close_connection = True
                return
            if fault is not None and fault.kind == "status":
                record(fault.status)
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                self._send(handler, fault.status, _error(fault.status, "injected"), headers)
                return
            keep = fault.keep if fault is not None and fault.kind == "partial" else None
            code, resource, headers = self._apply(session, content_range, body, handler, keep)
            if fault is not None and fault.kind == "drop-after":
                record("dropped")
                handler.close_connection = True
                return
            record(code)
            self._send(handler, code, resource, headers)

    def _apply(
        self,
        session: Session | None,
        content_range: str,
        body: bytes,
        handler: http.server.BaseHTTPRequestHandler,
        keep: int | None,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if session is None:
            return 404, _error(404, "No such upload"), {}
        if session.gone is not None:
            return session.gone, _error(session.gone, "Upload session gone"), {}
        if session.resource is not None:
            return 200, session.resource, {}
        match = _RANGE.match(content_range)
        if match is None:
            return 400, _error(400, f"Bad Content-Range {content_range!r}"), {}
        first, last, total_text = match.groups()
        total = None if total_text == "*" else int(total_text)
        held = session.data
        if first is not None:
            start, end = int(first), int(last) + 1
            if end - start != len(body):
                return 400, _error(400, "Content-Range does not match the body"), {}
            if start > len(held):
                return 400, _error(400, f"upload offset {start} exceeds {len(held)} bytes"), {}
            new = body[len(held) - start :]
            held += new if keep is None else new[:keep]
        elif body:
            return 400, _error(400, "a status query has no body"), {}
        if total is not None and len(held) == total:
            return self._finalize(session, handler)
        if total is not None and len(held) > total:
            return 400, _error(400, f"the session holds more than {total} bytes"), {}
        headers = {"Range": f"bytes=0-{len(held) - 1}"} if held else {}
        return 308, {}, headers

    def _finalize(
        self, session: Session, handler: http.server.BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if session.name in self.objects:
            return (
                412,
                _error(412, "At least one of the pre-conditions you specified did not hold."),
                {},
            )
        md5 = base64.b64encode(hashlib.md5(session.data).digest()).decode()
        claimed = dict(
            part.strip().split("=", 1)
            for part in (handler.headers.get("X-Goog-Hash") or "").split(",")
            if "=" in part
        )
        if "md5" in claimed and claimed["md5"] != md5:
            message = f"Provided MD5 hash {claimed['md5']} doesn't match calculated MD5 hash {md5}."
            return 400, _error(400, message), {}
        self.objects[session.name] = bytes(session.data)
        session.resource = {
            "kind": "storage#object",
            "bucket": BUCKET,
            "name": session.name,
            "size": str(len(session.data)),
            "md5Hash": md5,
            "contentType": handler.headers.get("Content-Type"),
            "metadata": session.metadata,
        }
        return 200, session.resource, {}

    @staticmethod
    def _send(
        handler: http.server.BaseHTTPRequestHandler,
        code: int,
        resource: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        payload = json.dumps(resource).encode() if resource else b""
        handler.send_response(code)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def serve() -> Iterator[ResumableServer]:
    server = ResumableServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(5)
