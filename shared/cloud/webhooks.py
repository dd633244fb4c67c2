"""One POST to a user's callback URL, to the address that was checked.

The host is resolved once, every address checked (no loopback, link-local or private one
unless allowed), and the connection made to a checked address: a name that resolves
elsewhere between the check and the connection (DNS rebinding) cannot redirect the POST.
TLS still verifies the certificate for the host's name. Redirects are never followed: a
3xx answer is a failed delivery. Standard library only: nothing to import on a cold start.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.stager.addresses import AddressRefusedError, resolve_checked

TIMEOUT_SECONDS = 10.0  # connect, and each read of the answer
MAX_ANSWER_BYTES = 2000  # of the answer's body kept for the record and the log


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused address, connection, timeout)
    detail: str  # "200 OK", "302 Found (redirects are not followed)", "timeout", ...

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connect(addresses: list[str], port: int, timeout: float | None) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as failed:
            error = failed
    raise error or OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self.addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        self.context = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self.context)
        self.addresses = addresses

    def connect(self) -> None:
        raw = _connect(self.addresses, self.port, self.timeout)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: float = TIMEOUT_SECONDS,
) -> Answer:
    """POST `body` once; the answer, or why there was none. Never raises for the network."""
    try:
        addresses = resolve_checked(url, allow_private=allow_private)
    except AddressRefusedError as refused:
        return Answer(None, f"refused: {refused}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kind = _PinnedHTTPS if https else _PinnedHTTP
    connection = kind(host, port, addresses, timeout)
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={**headers, "Content-Type": "application/json", "Connection": "close"},
        )
        response = connection.getresponse()
        response.read(MAX_ANSWER_BYTES)
        detail = f"{response.status} {response.reason}".strip()
        if 300 <= response.status < 400:
            detail += " (redirects are not followed)"
        return Answer(response.status, detail)
    except TimeoutError:
        return Answer(None, "timeout")
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, f"{type(error).__name__}: {error}"[:MAX_ANSWER_BYTES])
    finally:
        connection.close()
