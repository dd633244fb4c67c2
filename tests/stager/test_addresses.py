"""Which addresses are public, entry by entry of IANA's special-purpose address registries
(iana-ipv4-special-registry, iana-ipv6-special-registry), and the IPv6 forms that carry an
IPv4 address, judged by the address they carry."""

from __future__ import annotations

import ipaddress

import pytest

from shared.contract.addresses import AddressRefusedError, destination, host_of, is_public

# (a block of the registry, an address in it, globally reachable?)
IPV4_REGISTRY = [
    ("0.0.0.0/8", "0.1.2.3", False),  # "this network"
    ("0.0.0.0/32", "0.0.0.0", False),  # "this host on this network"
    ("10.0.0.0/8", "10.1.2.3", False),  # private
    ("100.64.0.0/10", "100.100.100.100", False),  # shared address space
    ("127.0.0.0/8", "127.0.0.1", False),  # loopback
    ("169.254.0.0/16", "169.254.169.254", False),  # link-local: the metadata server
    ("172.16.0.0/12", "172.31.255.254", False),  # private
    ("192.0.0.0/24", "192.0.0.100", False),  # IETF protocol assignments
    ("192.0.0.0/29", "192.0.0.1", False),  # IPv4 service continuity prefix
    ("192.0.0.8/32", "192.0.0.8", False),  # IPv4 dummy address
    ("192.0.0.9/32", "192.0.0.9", True),  # port control protocol anycast
    ("192.0.0.10/32", "192.0.0.10", True),  # TURN anycast
    ("192.0.0.170/32", "192.0.0.170", False),  # NAT64/DNS64 discovery
    ("192.0.0.171/32", "192.0.0.171", False),  # NAT64/DNS64 discovery
    ("192.0.2.0/24", "192.0.2.1", False),  # documentation (TEST-NET-1)
    ("192.31.196.0/24", "192.31.196.1", True),  # AS112-v4
    ("192.52.193.0/24", "192.52.193.1", True),  # AMT
    ("192.88.99.0/24", "192.88.99.1", False),  # deprecated 6to4 relay anycast
    ("192.168.0.0/16", "192.168.1.1", False),  # private
    ("192.175.48.0/24", "192.175.48.1", True),  # direct delegation AS112 service
    ("198.18.0.0/15", "198.19.0.1", False),  # benchmarking
    ("198.51.100.0/24", "198.51.100.1", False),  # documentation (TEST-NET-2)
    ("203.0.113.0/24", "203.0.113.1", False),  # documentation (TEST-NET-3)
    ("240.0.0.0/4", "250.1.2.3", False),  # reserved
    ("255.255.255.255/32", "255.255.255.255", False),  # limited broadcast
    ("224.0.0.0/4", "239.1.2.3", False),  # multicast (its own registry)
    ("public", "8.8.8.8", True),
    ("public", "93.184.215.14", True),
]

IPV6_REGISTRY = [
    ("::1/128", "::1", False),  # loopback
    ("::/128", "::", False),  # unspecified
    ("::ffff:0:0/96", "::ffff:8.8.8.8", True),  # IPv4-mapped: as its IPv4 address
    ("::ffff:0:0/96", "::ffff:127.0.0.1", False),
    ("64:ff9b::/96", "64:ff9b::808:808", True),  # IPv4-IPv6 translation: as its IPv4
    ("64:ff9b::/96", "64:ff9b::a9fe:a9fe", False),  # NAT64 of the metadata server
    ("64:ff9b:1::/48", "64:ff9b:1::a9fe:a9fe", False),  # local-use translation
    ("100::/64", "100::1", False),  # discard-only
    ("100:0:0:1::/64", "100:0:0:1::1", False),  # dummy prefix
    ("2001::/23", "2001:100::1", False),  # IETF protocol assignments
    ("2001::/32", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", True),  # Teredo: as it embeds
    ("2001::/32", "2001:0:7f00:1:0:0:f5ff:fffe", False),  # Teredo to a loopback client
    ("2001:1::1/128", "2001:1::1", True),  # PCP anycast
    ("2001:1::2/128", "2001:1::2", True),  # TURN anycast
    ("2001:1::3/128", "2001:1::3", True),  # DNS-SD service registration anycast
    ("2001:2::/48", "2001:2::1", False),  # benchmarking
    ("2001:3::/32", "2001:3::1", True),  # AMT
    ("2001:4:112::/48", "2001:4:112::1", True),  # AS112-v6
    ("2001:10::/28", "2001:10::1", False),  # deprecated ORCHID
    ("2001:20::/28", "2001:20::1", True),  # ORCHIDv2
    ("2001:30::/28", "2001:30::1", True),  # drone remote ID
    ("2001:db8::/32", "2001:db8::1", False),  # documentation
    ("2002::/16", "2002:808:808::1", True),  # 6to4: as its IPv4 address
    ("2002::/16", "2002:a9fe:a9fe::1", False),
    ("2620:4f:8000::/48", "2620:4f:8000::1", True),  # direct delegation AS112 service
    ("3fff::/20", "3fff::1", False),  # documentation
    ("5f00::/16", "5f00::1", False),  # segment routing SIDs
    ("fc00::/7", "fd00::1", False),  # unique-local
    ("fe80::/10", "fe80::1", False),  # link-local
    ("fec0::/10", "fec0::1", False),  # site-local (deprecated)
    ("ff00::/8", "ff02::1", False),  # multicast
    ("::/96", "::7f00:1", False),  # IPv4-compatible (deprecated): as its IPv4 address
    ("::/96", "::808:808", True),
    ("::ffff:0:0:0/96", "::ffff:0:7f00:1", False),  # IPv4-translated: as its IPv4
    ("unassigned", "4000::1", False),  # outside 2000::/3: not routed at all
    ("public", "2001:4860:4860::8888", True),
    ("public", "2606:4700:4700::1111", True),
]


@pytest.mark.parametrize(
    ("block", "address", "public"),
    IPV4_REGISTRY + IPV6_REGISTRY,
    ids=[f"{block} {address}" for block, address, _ in IPV4_REGISTRY + IPV6_REGISTRY],
)
def test_public_as_the_registries_say(block: str, address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    "url",
    [
        "https://[::7f00:1]/x",
        "https://[::ffff:0:7f00:1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "https://[64:ff9b:1::a9fe:a9fe]/x",
        "https://[fec0::1]/x",
        "https://2130706433/x",  # 127.0.0.1 as one number
        "https://0x7f.1/x",
        "https://127.1/x",
    ],
)
def test_urls_to_embedded_and_odd_loopback_forms_are_refused(url: str) -> None:
    with pytest.raises(AddressRefusedError, match="not a public address"):
        destination(url)


@pytest.mark.parametrize(
    ("hostname", "host"),
    [
        ("Files.Example.", "files.example"),
        ("files%2eexample", "files.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("::1", "::1"),
    ],
)
def test_the_host_as_connected_to(hostname: str, host: str) -> None:
    assert host_of(hostname) == host


@pytest.mark.parametrize("hostname", ["a%2fb", "a%40b", "a%00b", "a%20b", "%2e", "a..b"])
def test_hosts_that_decode_to_no_name_are_refused(hostname: str) -> None:
    with pytest.raises(AddressRefusedError, match="not a valid host name"):
        host_of(hostname)
