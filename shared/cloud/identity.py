"""Who is calling: the email of a verified identity token, checked with google-auth.

A request carries `Authorization: Bearer <token>`: a Google identity token (what
`gcloud auth print-identity-token` prints, or a service account's), or on the local cloud
one signed by its own issuer. Behind Identity-Aware Proxy, the proxy's signed
`X-Goog-IAP-JWT-Assertion` header names the caller instead (the status page in a browser).
Either way the signature is checked against the issuer's published certificates, and the
audience, the issuer, the expiry and a verified email are required. No header a caller can
simply type is trusted.

Both checks are cached: the issuer's certificates for as long as it says (Cache-Control),
and each verified token until it expires, so a token's second request costs a dict lookup.
The certificates are fetched with the standard library: a cold start does not import an
HTTP client for them.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions

from shared.errors import Unauthenticated
from shared.settings import Access

IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_HEADER = "X-Goog-IAP-JWT-Assertion"
MAX_TOKEN_CHARS = 8192  # Google's identity tokens are about 1 KB
CLOCK_SKEW_SECONDS = 10
CACHED_TOKENS = 10_000  # verified tokens kept, the least recently used dropped first
CERTS_SECONDS = 300.0  # certificates kept without a max-age
MIN_REFETCH_SECONDS = 5.0  # an unknown key id fetches the certificates again, this often
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True)
class Issuer:
    """Whose signatures are accepted for which audiences."""

    certs_url: str
    issuers: tuple[str, ...]
    audiences: tuple[str, ...]


class _Certs:
    """One issuer's certificates (key id -> PEM), fetched when stale or when a token names
    a key they lack (the issuer rotated its keys), at most every MIN_REFETCH_SECONDS."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.certs: Mapping[str, str] = {}
        self.expires = 0.0
        self.fetched = -MIN_REFETCH_SECONDS
        self.lock = threading.Lock()

    def for_key(self, key_id: str | None) -> Mapping[str, str]:
        with self.lock:
            now = time.monotonic()
            stale = now >= self.expires
            unknown = key_id is not None and key_id not in self.certs
            if stale or (unknown and now - self.fetched >= MIN_REFETCH_SECONDS):
                self._fetch(now)
            return self.certs

    def _fetch(self, now: float) -> None:
        """A GET of the certificates (the URL is the settings', never a caller's)."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:  # noqa: S310
                certs = json.loads(response.read())
                cache_control = response.headers.get("Cache-Control", "")
        except urllib.error.HTTPError as error:
            raise Unauthenticated(
                f"The token issuer's certificates are unavailable (HTTP {error.code})"
            ) from None
        except (OSError, ValueError) as error:
            raise Unauthenticated(
                f"The token issuer's certificates are unreachable: {error}"
            ) from None
        self.certs = certs
        self.fetched = now
        age = _MAX_AGE.search(cache_control)
        self.expires = now + (float(age.group(1)) if age else CERTS_SECONDS)


class TokenVerifier:
    """Verifies bearer tokens (and IAP's header, when configured) against the settings."""

    def __init__(
        self, access: Access, timeout: float = 15.0, iap_certs_url: str = IAP_CERTS_URL
    ) -> None:
        self.bearer = Issuer(access.certs_url, access.issuers, access.audiences)
        self.iap = (
            Issuer(iap_certs_url, (IAP_ISSUER,), (access.iap_audience,))
            if access.iap_audience
            else None
        )
        self._certs = {
            issuer.certs_url: _Certs(issuer.certs_url, timeout)
            for issuer in (self.bearer, self.iap)
            if issuer is not None
        }
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def email(self, authorization: str | None, iap_assertion: str | None) -> str:
        """The verified email of a request's caller, from its `Authorization` header or
        else IAP's; Unauthenticated saying why not."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.verify(token.strip(), self.bearer)
        if self.iap is not None and iap_assertion:
            return self.verify(iap_assertion, self.iap)
        raise Unauthenticated(
            "An identity token is required: send `Authorization: Bearer <token>` "
            "(`gcloud auth print-identity-token`; on the local cloud, `ktr auth token`)"
        )

    def verify(self, token: str, issuer: Issuer) -> str:
        key = f"{issuer.certs_url} {token}"  # a token counts for the issuer it verified with
        cached = self._cached(key)
        if cached is not None:
            return cached
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated(f"The identity token is longer than {MAX_TOKEN_CHARS} characters")
        claims = self._claims(token, issuer)
        email = _verified_email(claims)
        self._remember(key, email, float(claims["exp"]))
        return email

    def _claims(self, token: str, issuer: Issuer) -> Mapping[str, Any]:
        from google.auth import jwt  # its crypto is imported by the requests that verify

        try:
            key_id = jwt.decode_header(token).get("kid")
            certs = self._certs[issuer.certs_url].for_key(key_id)
            claims = jwt.decode(
                token,
                certs=certs,
                audience=list(issuer.audiences),
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as error:
            raise Unauthenticated(f"The identity token does not verify: {error}") from None
        if claims.get("iss") not in issuer.issuers:
            issued_by = claims.get("iss")
            raise Unauthenticated(f"The identity token's issuer {issued_by!r} is not trusted")
        return claims

    def _cached(self, key: str) -> str | None:
        with self._lock:
            entry = self._verified.get(key)
            if entry is None:
                return None
            email, expires = entry
            if time.time() > expires:
                del self._verified[key]
                return None
            self._verified.move_to_end(key)
            return email

    def _remember(self, key: str, email: str, expires: float) -> None:
        with self._lock:
            self._verified[key] = (email, expires)
            while len(self._verified) > CACHED_TOKENS:
                self._verified.popitem(last=False)


def _verified_email(claims: Mapping[str, Any]) -> str:
    """The `email` claim, when the issuer vouches for it (IAP's tokens carry no
    `email_verified`: the proxy itself signed the user in)."""
    email = claims.get("email")
    vouched = claims.get("email_verified", claims.get("iss") == IAP_ISSUER)
    if not isinstance(email, str) or not email or vouched is not True:
        raise Unauthenticated(
            "The identity token carries no verified email (a service account's token "
            "needs it: the metadata server's `format=full`)"
        )
    return email.lower()
