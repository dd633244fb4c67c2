"""The token check itself: google-auth verifying real signatures against certificates
served on loopback, what it caches, and Identity-Aware Proxy's ES256 assertions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import google.auth.crypt
import google.auth.jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from infra.local.issuer import CertsServer, new_issuer
from infra.local.procs import free_port
from shared.cloud.identity import IAP_ISSUER, MIN_REFETCH_SECONDS, TokenVerifier
from shared.errors import Unauthenticated
from shared.settings import Access
from tests.fixtures.tokens import AUDIENCE, OPERATOR, Tokens

IAP_AUDIENCE = "/projects/123/global/backendServices/456"


def access(tokens: Tokens, **changes: object) -> Access:
    values: dict[str, object] = {
        "enabled": True,
        "audiences": (AUDIENCE,),
        "issuers": (tokens.issuer.url,),
        "certs_url": tokens.issuer.certs_url,
        "iap_audience": None,
        "operators": frozenset({OPERATOR}),
        "accounts_collection": "accounts",
    }
    values.update(changes)
    return Access(**values)  # type: ignore[arg-type]


@pytest.fixture
def issuer() -> Iterator[tuple[Tokens, CertsServer]]:
    """An issuer of this test's own, so that its certificate fetches can be counted."""
    import tempfile
    from pathlib import Path

    from infra.local.issuer import write_key_file

    port = free_port()
    made = new_issuer(f"http://127.0.0.1:{port}")
    server = CertsServer(made, port).start()
    with tempfile.TemporaryDirectory() as folder:
        try:
            yield Tokens(made, write_key_file(made, Path(folder))), server
        finally:
            server.stop()


def test_a_verified_token_names_its_email_and_is_checked_once(issuer):
    tokens, server = issuer
    verifier = TokenVerifier(access(tokens))
    token = tokens.mint("Ana@Example.com")
    assert verifier.email(f"Bearer {token}", None) == "ana@example.com"
    assert server.served == 1
    for _ in range(100):
        assert verifier.email(f"bearer {token}", None) == "ana@example.com"
    assert server.served == 1  # the certificates are kept for their max-age
    # A second token is verified against the certificates already held.
    assert verifier.email(f"Bearer {tokens.mint('bo@example.com')}", None) == "bo@example.com"
    assert server.served == 1


def test_a_cached_token_costs_far_less_than_a_millisecond(issuer):
    tokens, _ = issuer
    verifier = TokenVerifier(access(tokens))
    header = f"Bearer {tokens.mint('ana@example.com')}"
    verifier.email(header, None)
    started = time.perf_counter()
    for _ in range(1000):
        verifier.email(header, None)
    per_call = (time.perf_counter() - started) / 1000
    assert per_call < 0.001, per_call  # a dictionary lookup, not a signature check


def test_a_rotated_key_is_fetched_when_a_token_names_it(issuer):
    tokens, server = issuer
    verifier = TokenVerifier(access(tokens))
    verifier.email(f"Bearer {tokens.mint('ana@example.com')}", None)
    time.sleep(MIN_REFETCH_SECONDS)  # a fetch this recent is not repeated for a key id
    rotated = new_issuer(tokens.issuer.url)
    server.certs[rotated.key_id] = rotated.certificate
    token = tokens.signed(tokens.claims("bo@example.com"), key=rotated)
    assert verifier.email(f"Bearer {token}", None) == "bo@example.com"
    assert server.served == 2
    # A key nobody published is refused, and does not make every request fetch again.
    stranger = new_issuer(tokens.issuer.url)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            verifier.email(f"Bearer {tokens.signed(tokens.claims('x@y.z'), key=stranger)}", None)
    assert server.served == 2


def test_an_expired_token_leaves_the_cache(issuer):
    tokens, _ = issuer
    verifier = TokenVerifier(access(tokens))
    now = int(time.time())
    token = tokens.signed(tokens.claims("ana@example.com", exp=now + 2))
    assert verifier.email(f"Bearer {token}", None) == "ana@example.com"
    time.sleep(3)
    # Within the clock skew google-auth allows, then refused.
    later = tokens.signed(tokens.claims("ana@example.com", iat=now - 100, exp=now - 20))
    with pytest.raises(Unauthenticated, match="expired|Token used too late"):
        verifier.email(f"Bearer {later}", None)


def test_an_unreachable_issuer_is_unauthenticated_not_a_crash(tokens):
    verifier = TokenVerifier(access(tokens, certs_url=f"http://127.0.0.1:{free_port()}/certs"))
    with pytest.raises(Unauthenticated, match="certificates"):
        verifier.email(f"Bearer {tokens.mint('ana@example.com')}", None)


@pytest.fixture
def iap() -> Iterator[tuple[Any, str]]:
    """A stand-in of IAP's key endpoint: an ES256 public key in PEM, by key id, as
    https://www.gstatic.com/iap/verify/public_key serves them."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    port = free_port()
    server = CertsServer(new_issuer(f"http://127.0.0.1:{port}"), port)
    server.certs = {"iap-1": public.decode()}
    server.start()
    try:
        signer = google.auth.crypt.ES256Signer.from_string(private, key_id="iap-1")
        yield signer, f"http://127.0.0.1:{port}/certs"
    finally:
        server.stop()


def test_behind_iap_its_signed_header_names_the_viewer(tokens, iap):
    signer, certs_url = iap
    verifier = TokenVerifier(access(tokens, iap_audience=IAP_AUDIENCE), iap_certs_url=certs_url)
    now = int(time.time())
    claims = {
        "iss": IAP_ISSUER,
        "aud": IAP_AUDIENCE,
        "email": "ana@example.com",
        "sub": "accounts.google.com:1",
        "iat": now,
        "exp": now + 600,
    }
    assertion = google.auth.jwt.encode(signer, claims).decode()
    assert verifier.email(None, assertion) == "ana@example.com"
    # Seen from IAP, it is still no bearer token: another issuer, another audience.
    with pytest.raises(Unauthenticated):
        verifier.email(f"Bearer {assertion}", None)
    wrong = google.auth.jwt.encode(signer, {**claims, "aud": "/projects/9/other"}).decode()
    with pytest.raises(Unauthenticated):
        verifier.email(None, wrong)
    # Without IAP configured, the header is not looked at.
    plain = TokenVerifier(access(tokens), iap_certs_url=certs_url)
    with pytest.raises(Unauthenticated, match="identity token is required"):
        plain.email(None, assertion)
