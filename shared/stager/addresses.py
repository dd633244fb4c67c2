"""Whether a URL a user gave may be fetched: never the metadata server, loopback or a
private network (server-side request forgery).

Standard library only: the API checks an `input_url` with it at create, and stage-in checks
again before each request and each redirect, since a name may resolve elsewhere by then.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

SCHEMES = ("https",)
PRIVATE_SCHEMES = ("https", "http")  # with private addresses allowed (the local cloud)


class AddressRefusedError(ValueError):
    """The URL may not be fetched; the message says why, without the URL's query."""


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Routable on the internet: not loopback, link-local (169.254.169.254, the metadata
    server), private, shared (100.64/10), multicast, reserved or unspecified."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return _public(mapped)
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise AddressRefusedError unless `url` is https to a host whose every address is public.

    With `allow_private`, http and any address are allowed (for a local cloud only).
    """
    _checked(url, allow_private=allow_private, resolve=not allow_private)


def resolve_checked(url: str, *, allow_private: bool = False) -> list[str]:
    """check_url, returning the host's addresses: connect to one of them, never to the name
    again, so that a name resolving elsewhere by then cannot move the request."""
    return _checked(url, allow_private=allow_private, resolve=True)


def _checked(url: str, *, allow_private: bool, resolve: bool) -> list[str]:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise AddressRefusedError("not a valid URL") from None
    schemes = PRIVATE_SCHEMES if allow_private else SCHEMES
    if parts.scheme not in schemes or not host:
        raise AddressRefusedError(f"must be {' or '.join(schemes)} with a host")
    if not resolve:
        return []
    try:
        found = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise AddressRefusedError(f"the host {host} does not resolve") from None
    addresses = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not allow_private and not _public(address):
            raise AddressRefusedError(
                f"the host {host} resolves to {address}, a loopback, link-local or private address"
            )
        addresses.append(str(address))
    if not addresses:
        raise AddressRefusedError(f"the host {host} does not resolve")
    return addresses
