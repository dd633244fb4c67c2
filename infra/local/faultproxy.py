"""A loopback HTTPS proxy in front of the API server that can make requests fail or stall.

The tests put it between the product and the real API server to show that the product
survives a cluster that errors (a 500 on a create, a 403 on a delete) or stalls (a list that
takes longer than the client waits), and the benchmarks count the product's requests in it.
Everything else is passed through byte for byte: the caller's bearer token reaches the API
server unchanged, so authentication and RBAC are the API server's own.

A fault matches a Kubernetes verb (create, get, list, watch, update, patch, delete,
deletecollection, or "*") and a regular expression searched in the URL path; it is used up
after `count` requests.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.controlplane.cluster import ControlPlane

VERBS = ("create", "get", "list", "watch", "update", "patch", "delete", "deletecollection", "*")
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "trailer"}
CHUNK = 64 * 1024


@dataclass
class Fault:
    """The next `count` requests of `verb` whose path matches `path` wait `delay_seconds`,
    then fail with `status` (0: then go through)."""

    verb: str = "*"
    path: str = ".*"
    status: int = 500
    count: int = 1
    delay_seconds: float = 0.0
    message: str = ""

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise ValueError(f"verb must be one of {', '.join(VERBS)}")
        if self.status and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error code (400-599)")
        if not self.status and self.delay_seconds <= 0:
            raise ValueError("a fault needs a status, a delay_seconds, or both")
        self._pattern = re.compile(self.path)

    def matches(self, verb: str, path: str) -> bool:
        return self.verb in ("*", verb) and self._pattern.search(path) is not None

    def status_body(self) -> bytes:
        """The error as the API server writes one: a v1 Status."""
        reason = REASONS.get(self.status, "InternalError")
        message = self.message or f"injected fault: {self.status} {reason}"
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": self.status,
        }
        if self.status == 500:
            status["details"] = {"causes": [{"message": message}]}
        return json.dumps(status).encode()


def verb_of(method: str, url: str) -> tuple[str, str]:
    """The Kubernetes verb and resource ("pods", "pods/log") of a request to the API."""
    parts = urllib.parse.urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    if segments[:1] == ["api"]:
        segments = segments[2:]
    elif segments[:1] == ["apis"]:
        segments = segments[3:]
    if segments[:1] == ["namespaces"] and len(segments) >= 3:
        segments = segments[2:]
    resource = "/".join(segments[:1] + segments[2:3])
    collection = len(segments) <= 1
    query = urllib.parse.parse_qs(parts.query)
    if method == "GET":
        if not collection:
            return "get", resource
        watching = query.get("watch", [""])[0] in ("true", "1")
        return ("watch" if watching else "list"), resource
    if method == "DELETE":
        return ("deletecollection" if collection else "delete"), resource
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        method, method.lower()
    ), resource


class FaultProxy:
    """The proxy: serving on 127.0.0.1 with `cert`/`key` (signed by the cluster's CA, so
    that the clients' CA file stays the same), forwarding to `upstream` checked against `ca`."""

    def __init__(self, upstream: str, ca: Path, cert: Path, key: Path) -> None:
        target = urllib.parse.urlsplit(upstream)
        self._upstream = (target.hostname or "127.0.0.1", target.port or 443)
        self._client_context = ssl.create_default_context(cafile=str(ca))
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(str(cert), str(key))
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._server.socket = server_context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @classmethod
    def in_front_of(cls, plane: ControlPlane) -> FaultProxy:
        """A proxy for `plane`'s API server, serving a certificate of the plane's CA."""
        serving = plane.authority.issue("fault-proxy", "fault-proxy", server=True)
        return cls(plane.url, plane.authority.pair.cert, serving.cert, serving.key)

    def inject_fault(self, **fields: Any) -> None:
        """Add a Fault(**fields): the next requests it matches fail or stall."""
        fault = Fault(**fields)
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def stats(self) -> dict[str, Any]:
        """Requests passed on or refused: {"total": N, "by_verb": ..., "by_resource": ...}."""
        with self._lock:
            by_verb: Counter[str] = Counter()
            for key, count in self._counts.items():
                by_verb[key.split(" ", 1)[0]] += count
            total = sum(self._counts.values())
            return {"total": total, "by_verb": dict(by_verb), "by_resource": dict(self._counts)}

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self, method: str, url: str) -> Fault | None:
        """Count the request, and the first fault it matches, used up by one."""
        verb, resource = verb_of(method, url)
        path = urllib.parse.urlsplit(url).path
        with self._lock:
            self._counts[f"{verb} {resource}"] += 1
            for fault in self._faults:
                if fault.matches(verb, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def connect(self) -> http.client.HTTPSConnection:
        host, port = self._upstream
        return http.client.HTTPSConnection(host, port, context=self._client_context)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: the API server's own log has every request."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        body = self._body()
        fault = self.server.proxy.take(self.command, self.path)
        if fault is not None:
            time.sleep(fault.delay_seconds)
            if fault.status:
                self._refuse(fault)
                return
        try:
            self._forward(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _refuse(self, fault: Fault) -> None:
        payload = fault.status_body()
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> None:
        upstream = self.server.proxy.connect()
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            self.send_response(answer.status, answer.reason)
            length = answer.getheader("Content-Length")
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if length is None and self.command != "HEAD":
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._copy(answer, chunked=length is None and self.command != "HEAD")
        finally:
            upstream.close()

    def _copy(self, answer: http.client.HTTPResponse, *, chunked: bool) -> None:
        """The answer's body as it comes (a followed log or a watch streams)."""
        while data := answer.read1(CHUNK):
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
