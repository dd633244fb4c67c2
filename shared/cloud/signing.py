"""Signing credentials for V4 URLs when the function's own identity holds no private key.

On Cloud Functions the credentials come from the metadata server and have no key: they
sign through the IAM signBlob API as their service account (which needs
`roles/iam.serviceAccountTokenCreator` on itself, see infra/deploy/iam.py). Every HTTP
request this takes (the token refresh, signBlob and the libraries' own retries) shares one
deadline, so signing is bounded like every other backend call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shared.errors import SigningError, SigningUnavailableError

if TYPE_CHECKING:
    import requests
    from google.auth.transport import Response

TOKEN_URI = "https://oauth2.googleapis.com/token"  # required by the class, never called


def iam_signing_credentials(credentials: Any, session: requests.Session, timeout: float) -> Any:
    """Credentials whose `sign_bytes` calls IAM signBlob as `credentials`' service account.

    Refreshing them, and later signing, raise SigningError when the credentials have no
    service account (user credentials) or IAM refuses (403: no right to sign), and
    SigningUnavailableError when the metadata server or IAM gets no answer in `timeout`
    seconds or keeps answering 429 or 5xx.
    """
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    if getattr(credentials, "service_account_email", None) is None:
        raise SigningError(f"{type(credentials).__name__} have no service account to sign as")
    request = DeadlineRequest(session, timeout)
    if not credentials.valid:
        try:
            credentials.refresh(request)
        except GoogleAuthError as error:
            raise request.failure("refreshing the credentials", error) from error
    email = credentials.service_account_email  # "default" until the first refresh
    return service_account.Credentials(IamSigner(request, credentials, email), email, TOKEN_URI)


class IamSigner:
    """google-auth's IAM signer, its failures told apart: out of reach or refused."""

    key_id = None  # IAM picks the key

    def __init__(self, request: DeadlineRequest, credentials: Any, email: str) -> None:
        from google.auth import iam

        self._request = request
        self._iam = iam.Signer(request, credentials, email)

    def sign(self, message: bytes) -> bytes:
        from google.auth.exceptions import GoogleAuthError

        try:
            signature: bytes = self._iam.sign(message)
        except GoogleAuthError as error:
            raise self._request.failure("IAM signBlob", error) from error
        return signature


class DeadlineRequest:
    """google-auth's requests transport with one deadline for every request it makes.

    Each request waits at most what is left. A request that cannot start in time, or gets
    no answer, raises SigningUnavailableError: it is not google-auth's TransportError, so
    the libraries' retry loops (minutes, with backoff) stop at once. Answers, 5xx
    included, go back to the library, which retries them until the deadline.
    """

    def __init__(self, session: requests.Session, timeout: float) -> None:
        from google.auth.transport.requests import Request

        self._transport = Request(session)
        self._timeout = timeout
        self._ends = time.monotonic() + timeout
        self.last_status: int | None = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Response:
        import requests
        from google.auth.exceptions import TransportError

        left = self._ends - time.monotonic()
        if left <= 0:
            raise SigningUnavailableError(f"no answer in {self._timeout:g} s from {_host(url)}")
        wait = min(timeout, left) if timeout else left
        try:
            response = self._transport(url, method, body, headers, timeout=wait, **kwargs)
        except TransportError as error:
            if isinstance(error.__cause__, requests.Timeout):
                message = f"{_host(url)} did not answer in {wait:.3g} s"
            else:
                message = f"{_host(url)} out of reach: {error}"
            raise SigningUnavailableError(message) from error
        self.last_status = response.status
        return response

    def failure(self, action: str, error: Exception) -> SigningError:
        """What a library error after this transport's last answer means for the caller."""
        status = self.last_status
        if status is not None and (status == 429 or status >= 500):
            return SigningUnavailableError(f"{action}: {error}")
        return SigningError(f"{action}: {error}")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc
