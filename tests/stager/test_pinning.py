"""Outbound connections go to the addresses that were checked, and nowhere else: stage-in's
download of a user's URL (each redirect too) and a callback's POST, against an HTTPS server
on loopback that stands in for a public host, behind a name server that changes its answer
between lookups (tests/fixtures/network.py)."""

from __future__ import annotations

import io

import pytest

from shared.cloud import webhooks
from shared.stager import fetch
from shared.stager.errors import InputMissing
from tests.fixtures.network import Network, send
from tests.stager.conftest import make_zip

PUBLIC = "93.184.215.14"  # a public address; the stand-in network routes it to loopback
OTHER_PUBLIC = "93.184.215.15"
ZIP = make_zip(("a.txt", b"a"))


def download(url: str) -> bytes:
    out = io.BytesIO()
    fetch.download(url, out, max_bytes=1 << 20, deadline=0, public_only=True)
    return out.getvalue()


@pytest.fixture
def site(network: Network, tls_site):
    """files.example (and its spellings) at PUBLIC, serving /in.zip."""
    served = tls_site("files.example", "xn--bcher-kva.example", "rebind.test", "hooks.example")
    served.pages["/in.zip"] = send(200, ZIP)
    network.routed.add(PUBLIC)
    return served


def test_a_name_that_rebinds_to_loopback_is_looked_up_once(network, site):
    """The name server answers a public address, then loopback: the download asks once and
    connects to the address it checked."""
    network.answers["rebind.test"] = [PUBLIC, "127.0.0.1"]
    assert download(f"https://rebind.test:{site.port}/in.zip") == ZIP
    assert network.asked == ["rebind.test"]
    assert network.connected == [(PUBLIC, site.port)]


@pytest.mark.parametrize(
    ("spelling", "asked"),
    [
        ("rebind%2etest", "rebind.test"),  # percent-encoded, as urllib would decode it
        ("REBIND.test.", "rebind.test"),  # case and a trailing dot
        ("bücher.example", "xn--bcher-kva.example"),  # IDNA
    ],
)
def test_the_host_checked_is_the_host_connected_to(network, site, spelling, asked):
    network.answers[asked] = [PUBLIC, "127.0.0.1"]
    assert download(f"https://{spelling}:{site.port}/in.zip") == ZIP
    assert network.asked == [asked]
    assert network.connected == [(PUBLIC, site.port)]
    assert site.requests == [("GET", f"{asked}:{site.port}", "/in.zip")]


def test_a_spelling_that_hides_loopback_is_refused(network, site):
    network.answers["rebind.test"] = ["127.0.0.1"]
    with pytest.raises(InputMissing, match="127.0.0.1, which is not a public address"):
        download(f"https://rebind%2etest:{site.port}/in.zip")
    assert network.connected == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/computeMetadata/v1/",
        "https://10.0.0.1/x",
        "https://[::ffff:7f00:1]/x",
        "https://[64:ff9b::a9fe:a9fe]/x",
        "file:///etc/passwd",
        "https://rebind.test/x",  # resolves to loopback by now
    ],
)
def test_a_redirect_is_checked_before_it_is_followed(network, site, target):
    network.answers["files.example"] = [PUBLIC]
    network.answers["rebind.test"] = ["127.0.0.1"]
    site.pages["/moved"] = send(302, Location=target)
    with pytest.raises(InputMissing, match="refused to download"):
        download(f"https://files.example:{site.port}/moved")
    assert network.connected == [(PUBLIC, site.port)]


def test_a_redirect_to_a_public_host_is_followed_there(network, site):
    network.answers["files.example"] = [PUBLIC]
    network.answers["rebind.test"] = [OTHER_PUBLIC, "127.0.0.1"]
    network.routed.add(OTHER_PUBLIC)
    site.pages["/moved"] = send(302, Location=f"https://rebind.test:{site.port}/in.zip")
    assert download(f"https://files.example:{site.port}/moved") == ZIP
    assert network.connected == [(PUBLIC, site.port), (OTHER_PUBLIC, site.port)]


def test_a_callback_is_posted_to_the_address_checked(network, site):
    network.answers["hooks.example"] = [PUBLIC, "127.0.0.1"]
    site.pages["/hook"] = send(204)
    answer = webhooks.post(
        f"https://hooks.example:{site.port}/hook", b"{}", {}, allow_private=False
    )
    assert answer.delivered, answer
    assert network.asked == ["hooks.example"]
    assert network.connected == [(PUBLIC, site.port)]


def test_a_certificate_for_another_name_is_refused(network, site):
    """The pinned connection still verifies TLS for the name in the URL."""
    network.answers["elsewhere.example"] = [PUBLIC]
    answer = webhooks.post(
        f"https://elsewhere.example:{site.port}/hook", b"{}", {}, allow_private=False
    )
    assert not answer.delivered and "CERTIFICATE_VERIFY_FAILED" in answer.detail, answer
