"""Stage-in's download: the input zip through the URL the API put in INPUT_URL.

That is a signed URL of a bucket object, or a user's own https URL (`input_url`). The pod
runs the user's code, so it holds no identity: a signed URL reads one object, for a limited
time, and nothing else. A user's URL is checked before each request and each redirect
(INPUT_URL_PUBLIC_ONLY): it must not reach the metadata server or a private address. Only
the standard library: the download streams to a file in bounded chunks, never more than
`max_bytes`.
"""

from __future__ import annotations

import http.client
import logging
import time
import urllib.error
import urllib.request
from typing import IO
from urllib.parse import urlsplit

from shared.stager.addresses import AddressRefusedError, check_url
from shared.stager.errors import InputMissing, InputRejected, StagerError, TransientStorageError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
SOCKET_TIMEOUT = 60.0  # s without a byte before an attempt gives up
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def where(url: str) -> str:
    """The URL without its query: a signature or an upload_id must not reach the logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL that passes the same address check."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        try:
            check_url(newurl)
        except AddressRefusedError as refused:
            raise InputMissing(f"refused a redirect to {where(newurl)}: {refused}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    url: str, dest: IO[bytes], *, max_bytes: int, deadline: float, public_only: bool = False
) -> int:
    """Write the object at `url` to `dest` (from its start); its size.

    Connection errors, timeouts, 408, 429 and 5xx are retried with backoff for `deadline`
    seconds, then TransientStorageError (exit 75: the Job retries the pod). 404, and the
    400 or 403 of a malformed or expired signature, are InputMissing (66): no retry can
    help. More than `max_bytes` is InputRejected (65). With `public_only`, a URL or redirect
    to a loopback, link-local or private address is InputMissing.
    """
    give_up = time.monotonic() + deadline
    pause = 1.0
    while True:
        dest.seek(0)
        dest.truncate()
        try:
            return _attempt(url, dest, max_bytes, public_only)
        except TransientStorageError as error:
            if time.monotonic() + pause > give_up:
                raise
            log.warning("input download failed; retrying", extra={"error": str(error)})
            time.sleep(pause)
            pause = min(pause * 2, 30.0)


def _attempt(url: str, dest: IO[bytes], max_bytes: int, public_only: bool) -> int:
    shown = where(url)
    opener = urllib.request.build_opener()
    if public_only:
        try:
            check_url(url)
        except AddressRefusedError as refused:
            raise InputMissing(f"refused to download {shown}: {refused}") from None
        opener = urllib.request.build_opener(_CheckedRedirects)
    try:
        with opener.open(url, timeout=SOCKET_TIMEOUT) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise InputRejected(f"the input is {declared} bytes, more than {max_bytes}")
            size = 0
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise InputRejected(f"the input is more than {max_bytes} bytes")
                dest.write(chunk)
            return size
    except StagerError:
        raise
    except urllib.error.HTTPError as error:
        if error.code in _TRANSIENT_STATUS:
            raise TransientStorageError(f"could not download {shown}: HTTP {error.code}") from None
        if error.code in (400, 403, 404):
            raise InputMissing(
                f"could not download {shown}: HTTP {error.code} (missing object, or a "
                "malformed or expired URL)"
            ) from None
        raise StagerError(f"could not download {shown}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise TransientStorageError(f"could not download {shown}: {reason}") from None
