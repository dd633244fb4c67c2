"""The identity token a deployed API (Cloud Functions with --no-allow-unauthenticated)
wants, from the user's Google credentials. Loopback and plain http get none."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from cli.errors import CliError

NO_CREDENTIALS = (
    "No Google credentials for an identity token to call {url}: run "
    "`gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a service-account key ({detail})"
)


def needs_token(url: str) -> bool:
    """An https URL whose host is not loopback: a deployed function."""
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


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
