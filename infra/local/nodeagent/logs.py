"""The kubelet's log endpoint, which the API server calls for `pods/log` (and so `kubectl
logs`, `follow` included): GET /containerLogs/NAMESPACE/POD/CONTAINER over TLS, on the
port every node gives as its kubeletEndpoint.

The server's certificate is the local CA's, for 127.0.0.1, as the API server's
--kubelet-certificate-authority expects; a caller must present a client certificate of
that CA (the API server's --kubelet-client-certificate). A kubelet would also ask the API
server whether that caller may read node logs (a SubjectAccessReview); this one trusts any
certificate of the CA, which only the control plane holds. What a log holds, tailLines,
limitBytes, follow and the refusal of a container not yet started are the kubelet's rules
(podlogs.py).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local.nodeagent import podlogs
from infra.local.nodeagent.pods import PodRunner, Worker


class LogServer:
    def __init__(
        self,
        port: int,
        runners: Iterable[PodRunner],
        *,
        cert: Path,
        key: Path,
        client_ca: Path,
    ) -> None:
        self.runners = list(runners)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(cert), str(key))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _find(self, namespace: str, name: str) -> tuple[PodRunner, Worker] | None:
        for runner in self.runners:
            for worker in list(runner.workers.values()):
                meta = worker.pod["metadata"]
                if (meta["namespace"], meta["name"]) == (namespace, name):
                    return runner, worker
        return None

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        parts = [unquote(part) for part in url.path.split("/")]
        if len(parts) != 5 or parts[1] != "containerLogs":
            self._send(handler, 404, b"not found\n")
            return
        _, _, namespace, name, container = parts
        found = self._find(namespace, name)
        if found is None:
            self._send(handler, 404, f'pod "{name}" not found on this node\n'.encode())
            return
        runner, worker = found
        query = {**dict(parse_qsl(url.query)), "container": container}
        with worker.lock:
            pod: dict[str, Any] = {**worker.pod, "status": dict(worker.status)}
        try:
            body = podlogs.read(
                runner.data_dir,
                pod,
                query,
                still_running=lambda: _running(worker, container),
                stopped=lambda: not worker.alive(),
            )
        except podlogs.LogError as error:
            self._send(handler, error.code, f"{error.message}\n".encode())
            return
        if isinstance(body, bytes):
            self._send(handler, 200, body)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()
        try:
            for chunk in body:
                handler.wfile.write(chunk)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _running(worker: Worker, container: str) -> bool:
    with worker.lock:
        statuses = [
            *(worker.status.get("initContainerStatuses") or []),
            *(worker.status.get("containerStatuses") or []),
        ]
    return any(s["name"] == container and "running" in s["state"] for s in statuses)
