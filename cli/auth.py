"""The identity token each request carries: a deployed API's (Cloud Functions with
--no-allow-unauthenticated) from the user's Google credentials; the local cloud's signed
with its issuer's key, for `operator@local` or the email of `--as`."""

from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cli.errors import CliError

NO_CREDENTIALS = (
    "No Google credentials for an identity token to call {url}: run "
    "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key ({detail})"
)


LOCAL_CALLER = "operator@local"  # who ktr is on the local cloud without --as
TOKEN_SECONDS = 3600  # as long as Google's identity tokens live


def needs_token(url: str) -> bool:
    """An https URL whose host is not loopback: a deployed function, which wants the
    caller's Google identity token."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def audience(url: str) -> str:
    """The function's URL without query or trailing slash, as Cloud Functions checks it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def identity_token(url: str) -> str:
    """A service account's (key file or metadata server) token for the URL, or else the
    id_token of the user's application-default credentials after a refresh."""
    import google.auth
    import google.auth.exceptions
    import google.auth.transport.requests
    import google.oauth2.credentials
    import google.oauth2.id_token

    request = google.auth.transport.requests.Request()
    target = audience(url)
    try:
        credentials, _ = google.auth.default()
    except google.auth.exceptions.GoogleAuthError as error:
        raise CliError(NO_CREDENTIALS.format(url=url, detail=_first_line(error))) from None
    try:
        if isinstance(credentials, google.oauth2.credentials.Credentials):
            credentials.refresh(request)
            token = credentials.id_token
            if not token:
                raise CliError(
                    NO_CREDENTIALS.format(url=url, detail="the user credentials hold no id_token")
                )
            return str(token)
        return str(google.oauth2.id_token.fetch_id_token(request, target))
    except google.auth.exceptions.GoogleAuthError as error:
        raise CliError(
            f"Could not get an identity token for {target}: {_first_line(error)}"
        ) from None


def local_token(key_file: Path, email: str, audience: str, seconds: int = TOKEN_SECONDS) -> str:
    """An identity token for `email`, signed with the local cloud's issuer key, as Google
    signs one: RS256, the key's id in the header, the audience, a verified email."""
    try:
        info = json.loads(key_file.read_text())
        issuer = info["issuer"]
    except (OSError, ValueError, KeyError) as error:
        raise CliError(f"The local cloud's issuer key {key_file} is unusable: {error}") from None
    return signed(info, claims(issuer, email, audience, seconds))


def claims(issuer: str, email: str, audience: str, seconds: int) -> dict[str, Any]:
    """What Google's identity token for `email` says, from now for `seconds`."""
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": email,
        "email": email,
        "email_verified": True,
        "iat": now,
        "exp": now + seconds,
    }


def signed(key_info: dict[str, Any], token_claims: dict[str, Any]) -> str:
    """`token_claims` as a JWT signed with the key of a key file's JSON."""
    import google.auth.crypt
    import google.auth.jwt

    try:
        signer = google.auth.crypt.RSASigner.from_service_account_info(key_info)
    except (ValueError, KeyError) as error:
        raise CliError(f"The local cloud's issuer key is unusable: {error}") from None
    return google.auth.jwt.encode(signer, token_claims).decode()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
