"""Whether a URL a user gave may be fetched: never the metadata server, loopback or a
private network (server-side request forgery).

An address is public when the IANA special-purpose registries say it is globally reachable
(https://www.iana.org/assignments/iana-ipv4-special-registry and
iana-ipv6-special-registry), as written out below rather than taken from `ipaddress`, whose
idea of "global" changes between patch releases of Python. An IPv6 address that carries an
IPv4 one (IPv4-mapped, -compatible and -translated, NAT64, 6to4, Teredo) is judged by the
IPv4 address it carries, since that is where a translator or relay sends it.

`destination` resolves a URL's host once, exactly as it will be connected to, and checks
every address: shared/contract/pinned.py then connects to those addresses only, so a name
that resolves elsewhere by then (DNS rebinding) cannot move the request. Standard library
only: the stager image copies this package alone.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

SCHEMES = ("https",)
PRIVATE_SCHEMES = ("https", "http")  # with private addresses allowed (the local cloud)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network

# IPv4: every special-purpose block that is not globally reachable, and multicast.
NOT_PUBLIC_V4 = tuple(
    _v4(block)
    for block in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local: the metadata server is 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (but the two below)
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 (limited broadcast)
    )
)
PUBLIC_V4 = (_v4("192.0.0.9/32"), _v4("192.0.0.10/32"))  # PCP and TURN anycast

# IPv6: only global unicast (2000::/3) is routed at all; within it, these blocks are not
# globally reachable. The forms that carry an IPv4 address are judged by it (_carried).
GLOBAL_UNICAST_V6 = _v6("2000::/3")
NOT_PUBLIC_V6 = tuple(
    _v6(block)
    for block in (
        "2001::/23",  # IETF protocol assignments (but those in PUBLIC_V6)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
PUBLIC_V6 = tuple(
    _v6(block)
    for block in (
        "2001:1::1/128",  # PCP anycast
        "2001:1::2/128",  # TURN anycast
        "2001:1::3/128",  # DNS-SD service registration anycast
        "2001:3::/32",  # AMT
        "2001:4:112::/48",  # AS112-v6
        "2001:20::/28",  # ORCHIDv2
        "2001:30::/28",  # drone remote ID
    )
)
# The last 32 bits are an IPv4 address: IPv4-mapped, IPv4-translated (SIIT), NAT64's
# well-known prefix, IPv4-compatible (deprecated; :: and ::1 fall in it, as 0.0.0.0/8).
LAST_32_BITS_V4 = tuple(
    _v6(block) for block in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "::/96")
)
SIXTOFOUR = _v6("2002::/16")
NOT_IN_NAMES = frozenset("/\\@:?#%[] \t\r\n\0")  # once percent-decoded
TEREDO = _v6("2001::/32")


class AddressRefusedError(ValueError):
    """The URL may not be fetched; the message says why, without the URL's query."""


class UnresolvedHostError(AddressRefusedError):
    """The host did not resolve: perhaps for now only."""


def _carried(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries and leads to, or None for a native one."""
    if any(address in block for block in LAST_32_BITS_V4):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in SIXTOFOUR and address.sixtofour is not None:
        return [address.sixtofour]
    if address in TEREDO and address.teredo is not None:
        return list(address.teredo)  # the Teredo server and the client behind it
    return None


def is_public(address: IPAddress) -> bool:
    """Globally reachable, by the IANA registries (see the module's docstring)."""
    if isinstance(address, ipaddress.IPv4Address):
        if any(address in block for block in PUBLIC_V4):
            return True
        return not any(address in block for block in NOT_PUBLIC_V4)
    carried = _carried(address)
    if carried is not None:
        return all(is_public(inner) for inner in carried)
    if any(address in block for block in PUBLIC_V6):
        return True
    return address in GLOBAL_UNICAST_V6 and not any(address in b for b in NOT_PUBLIC_V6)


@dataclass(frozen=True)
class Destination:
    """Where a URL leads: the host as connected to (and verified by TLS), and its checked
    addresses, to connect to and nowhere else."""

    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]

    @property
    def shown(self) -> str:
        """The URL without its query: a signature or an upload_id must not reach the logs."""
        return f"{self.scheme}://{self.host}:{self.port}{self.target.split('?', 1)[0]}"


def host_of(hostname: str) -> str:
    """The host a URL names, as it is connected to: percent-decoded (as urllib and browsers
    do), lowercase, without trailing dots, and in IDNA's ASCII form."""
    host = unquote(hostname).lower().rstrip(".")
    if _is_ip(host):
        return host
    if not host or any(character in NOT_IN_NAMES for character in host):
        raise AddressRefusedError(f"the host {hostname!r} is not a valid host name")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise AddressRefusedError(f"the host {hostname!r} is not a valid host name") from None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def destination(url: str, *, allow_private: bool = False) -> Destination:
    """The URL's destination, its host resolved once and every address checked: https to
    public addresses only, unless `allow_private` (the local cloud: http and any address).
    Raises AddressRefusedError saying why."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        raise AddressRefusedError("not a valid URL") from None
    schemes = PRIVATE_SCHEMES if allow_private else SCHEMES
    if parts.scheme not in schemes or not hostname:
        raise AddressRefusedError(f"must be {' or '.join(schemes)} with a host")
    host = host_of(hostname)
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port, allow_private)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, target, addresses)


def _resolve(host: str, port: int, allow_private: bool) -> tuple[str, ...]:
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise UnresolvedHostError(f"the host {host} does not resolve") from None
    addresses: list[str] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not allow_private and not is_public(address):
            raise AddressRefusedError(
                f"the host {host} resolves to {address}, which is not a public address"
            )
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise UnresolvedHostError(f"the host {host} does not resolve")
    return tuple(addresses)


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise AddressRefusedError unless `url` is https to a host whose every address is
    public. With `allow_private`, http and any address are allowed, and nothing resolved."""
    if allow_private:
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:
            raise AddressRefusedError("not a valid URL") from None
        if parts.scheme not in PRIVATE_SCHEMES or not hostname:
            raise AddressRefusedError(f"must be {' or '.join(PRIVATE_SCHEMES)} with a host")
        host_of(hostname)
        return
    destination(url)
