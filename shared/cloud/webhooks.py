"""One POST to a user's callback URL, to the address that was checked.

The host is resolved once, every address checked (no loopback, link-local or private one
unless allowed), and the connection made to a checked address (shared/contract/pinned.py): a
name that resolves elsewhere between the check and the connection (DNS rebinding) cannot
redirect the POST. Redirects are never followed: a 3xx answer is a failed delivery.
Standard library only: nothing to import on a cold start.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from shared.contract.addresses import AddressRefusedError, destination
from shared.contract.pinned import opened

TIMEOUT_SECONDS = 10.0  # connect, and each read of the answer
MAX_ANSWER_BYTES = 2000  # of the answer's body kept for the record and the log


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused address, connection, timeout)
    detail: str  # "200 OK", "302 Found (redirects are not followed)", "timeout", ...

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: float = TIMEOUT_SECONDS,
) -> Answer:
    """POST `body` once; the answer, or why there was none. Never raises for the network."""
    try:
        where = destination(url, allow_private=allow_private)
    except AddressRefusedError as refused:
        return Answer(None, f"refused: {refused}")
    sent = {**headers, "Content-Type": "application/json"}
    try:
        with opened(where, "POST", timeout=timeout, headers=sent, body=body) as response:
            response.read(MAX_ANSWER_BYTES)
            detail = f"{response.status} {response.reason}".strip()
            if 300 <= response.status < 400:
                detail += " (redirects are not followed)"
            return Answer(response.status, detail)
    except TimeoutError:
        return Answer(None, "timeout")
    except (OSError, http.client.HTTPException) as error:
        return Answer(None, f"{type(error).__name__}: {error}"[:MAX_ANSWER_BYTES])
