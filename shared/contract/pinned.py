"""HTTP to the addresses that were checked, and nowhere else.

A `Destination` (shared/contract/addresses.py) holds a URL's host, as it is connected to, and
the addresses its one lookup gave, each checked. The connection goes to the first of those
addresses that answers; the host name serves only TLS (the certificate is verified for it)
and the Host header. So a name that resolves elsewhere between the check and the
connection (DNS rebinding) cannot move the request. Used by stage-in's download and by the
callbacks' delivery. Standard library only.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from shared.contract.addresses import Destination


def _connect(destination: Destination, timeout: float | None) -> socket.socket:
    """A connection to the first of the checked addresses that answers."""
    error: OSError | None = None
    for address in destination.addresses:
        try:
            return socket.create_connection((address, destination.port), timeout)
        except OSError as failed:
            error = failed
    raise error or OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self.destination = destination

    def connect(self) -> None:
        self.sock = _connect(self.destination, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, destination: Destination, timeout: float) -> None:
        self.tls = ssl.create_default_context()
        super().__init__(destination.host, destination.port, timeout=timeout, context=self.tls)
        self.destination = destination

    def connect(self) -> None:
        raw = _connect(self.destination, self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.destination.host)


@contextmanager
def opened(
    destination: Destination,
    method: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Iterator[http.client.HTTPResponse]:
    """The answer to one request, whatever its status (redirects are the caller's to
    follow, to a destination checked again); the connection is closed on leaving.
    Raises OSError and http.client.HTTPException for the network."""
    kind = _PinnedHTTPS if destination.scheme == "https" else _PinnedHTTP
    connection = kind(destination, timeout)
    try:
        sent = {**(headers or {}), "Connection": "close"}
        connection.request(method, destination.target, body=body, headers=sent)
        yield connection.getresponse()
    finally:
        connection.close()
