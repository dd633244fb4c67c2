"""Stage-in's download: the input zip through the URL the API put in INPUT_URL.

That is a signed URL of a bucket object, or a user's own https URL (`input_url`). The pod
runs the user's code, so it holds no identity: a signed URL reads one object, for a limited
time, and nothing else. A user's URL is checked before each request and each redirect
(INPUT_URL_PUBLIC_ONLY): it must not reach the metadata server or a private address, and the
connection goes to the addresses checked, nowhere else. Only the standard library: the
download streams to a file in bounded chunks, never more than `max_bytes`.
"""

from __future__ import annotations

import http.client
import logging
import time
from typing import IO
from urllib.parse import urljoin, urlsplit

from shared.contract import addresses, pinned
from shared.contract.addresses import AddressRefusedError, UnresolvedHostError
from shared.contract.exits import InputRejected, StagerError
from shared.stager.errors import InputMissing, TransientStorageError

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
SOCKET_TIMEOUT = 60.0  # s without a byte before an attempt gives up
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_REDIRECTS = {301, 302, 303, 307, 308}
MAX_REDIRECTS = 10  # as urllib follows


def where(url: str) -> str:
    """The URL without its query: a signature or an upload_id must not reach the logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def download(
    url: str, dest: IO[bytes], *, max_bytes: int, deadline: float, public_only: bool = False
) -> int:
    """Write the object at `url` to `dest` (from its start); its size.

    Connection errors, timeouts, 408, 429 and 5xx are retried with backoff for `deadline`
    seconds, then TransientStorageError (exit 75: the Job retries the pod). 404, and the
    400 or 403 of a malformed or expired signature, are InputMissing (66): no retry can
    help. More than `max_bytes` is InputRejected (65). With `public_only`, a URL or redirect
    to a loopback, link-local or private address is InputMissing; a host that does not
    resolve is retried.
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
    """One download, following redirects: each to a destination checked again, connected to
    at the addresses checked (shared/contract/pinned.py)."""
    for _ in range(MAX_REDIRECTS + 1):
        try:
            destination = addresses.destination(url, allow_private=not public_only)
        except UnresolvedHostError as unresolved:  # the name server may answer next time
            raise TransientStorageError(f"could not download {where(url)}: {unresolved}") from None
        except AddressRefusedError as refused:
            raise InputMissing(f"refused to download {where(url)}: {refused}") from None
        try:
            with pinned.opened(destination, "GET", timeout=SOCKET_TIMEOUT) as response:
                location = response.getheader("Location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(url, location)
                    continue
                return _save(response, destination.shown, dest, max_bytes)
        except StagerError:
            raise
        except (OSError, http.client.HTTPException) as error:
            raise TransientStorageError(f"could not download {where(url)}: {error}") from None
    raise InputMissing(f"could not download {where(url)}: more than {MAX_REDIRECTS} redirects")


def _save(response: http.client.HTTPResponse, shown: str, dest: IO[bytes], max_bytes: int) -> int:
    """The answer's body written to `dest`; its size. An error status raises as download
    says."""
    if response.status in _TRANSIENT_STATUS:
        raise TransientStorageError(f"could not download {shown}: HTTP {response.status}")
    if response.status in (400, 403, 404):
        raise InputMissing(
            f"could not download {shown}: HTTP {response.status} (missing object, or a "
            "malformed or expired URL)"
        )
    if response.status >= 300:
        raise StagerError(f"could not download {shown}: HTTP {response.status}")
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise InputRejected(f"the input is {declared} bytes, more than {max_bytes}")
    size = 0
    while chunk := response.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise InputRejected(f"the input is more than {max_bytes} bytes")
        dest.write(chunk)
    return size
