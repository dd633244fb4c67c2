"""The HTTP front: authentication, discovery, fault injection, request counting and
logging around the API, on a threading HTTP/1.1 server bound to loopback only.
"""

from __future__ import annotations

import hmac
import json
import select
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from infra.local.kubesim import resources as r
from infra.local.kubesim import routes
from infra.local.kubesim.app import App, Request, Response
from infra.local.kubesim.clock import log
from infra.local.kubesim.status import ApiError, path_not_found, unauthorized

MAX_BODY = 16 * 1024 * 1024
HEALTH = ("/healthz", "/readyz", "/livez")


class KubesimServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, Handler)
        self.app = app
        self.address_text = f"{address[0]}:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: KubesimServer
    _verb = "-"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # one JSON line per request instead, from _serve

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def _request(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "request entity too large")
        body = self.rfile.read(length) if length > 0 else b""
        return Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )

    def _serve(self) -> None:
        started = time.monotonic()
        self._verb = "-"
        try:
            request = self._request()
            response, _ = self._dispatch(request)
        except ApiError as error:
            response = Response.json(error.code, error.status())
        except Exception as error:  # noqa: BLE001 - answer in a Status, log the cause
            log("ERROR", "request failed", path=self.path, error=repr(error))
            response = Response.json(
                500, ApiError(500, "InternalError", f"Internal error occurred: {error}").status()
            )
        self._send(response)
        log(
            "DEBUG",
            f"{self.command} {self.path} {response.status}",
            verb=self._verb,
            status=response.status,
            ms=round((time.monotonic() - started) * 1000, 1),
        )

    def _dispatch(self, request: Request) -> tuple[Response, str]:
        app = self.server.app
        path = request.path
        if path in HEALTH:
            return Response(200, b"ok", "text/plain"), "-"
        if path.startswith("/_kubesim/"):
            return app.admin_request(request), "-"
        # kubectl never sends a bearer token over plain http, so a request without one is
        # served (as anonymous, loopback only); a wrong token is refused as a cluster would.
        token = request.headers.get("authorization")
        if token is not None and not hmac.compare_digest(
            token.encode(), f"Bearer {app.token}".encode()
        ):
            raise unauthorized()
        discovery = self._discovery(path)
        if discovery is not None:
            verb = "get"
            route: routes.Route | None = None
        else:
            route = routes.parse(path)
            watch = request.query.get("watch", "").lower() in ("1", "true")
            verb = route.verb(request.method, watch)
        resource = route.rt.plural if route is not None and route.rt is not None else path
        if route is not None and route.sub:
            resource += f"/{route.sub}"
        self._verb = verb
        app.admin.count(verb, resource)
        fault = app.admin.take_fault(verb, path)
        if fault is not None:
            if fault.delay_seconds > 0:
                time.sleep(fault.delay_seconds)
            if fault.status:
                raise fault.error()
        if discovery is not None:
            return Response.json(200, discovery), verb
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.body and verb in ("create", "update") and ctype not in ("", "application/json"):
            # client-go falls back to JSON on 415, so protobuf bodies need no support here.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f'include: application/json, application/yaml (got "{ctype}")',
            )
        assert route is not None
        request.stopped = self._client_gone
        return app.handle(route, verb, request), verb

    def _client_gone(self) -> bool:
        """True once the client closed its end (a watch it no longer reads)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _discovery(self, path: str) -> dict[str, Any] | None:
        path = path.rstrip("/") or "/"
        if path == "/api":
            return r.api_versions(self.server.address_text)
        if path == "/apis":
            return r.api_group_list()
        if path == "/version":
            return r.version_info()
        if path.startswith("/apis/") and path.count("/") == 2:
            group = r.api_group(path.split("/")[2])
            if group is None:
                raise path_not_found()
            return group
        if path.startswith("/openapi") or path == "/":
            raise path_not_found()
        return None

    def _send(self, response: Response) -> None:
        try:
            if response.stream is None:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.send_header("Cache-Control", "no-cache, private")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)
                return
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for chunk in response.stream:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ApiError as error:
            # A stream that fails before its first chunk (a bad selector) answers in JSON.
            body = json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n"
            self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
            self.close_connection = True
