"""The list's paging parameters: `page_size`, and `page_token`, an opaque cursor.

A token is urlsafe base64 of JSON holding the query it belongs to (status, account_id) and
the last job of its page (created, id). It says where to resume, not how many to skip, so a
page costs the same however deep it is. It carries nothing secret: a client that forges one
only moves within a list it may read anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from shared.errors import InvalidParameters
from shared.model.job import Job, Status, canonical_id

MAX_PAGE_SIZE = 1000  # also the size of a page when page_size is not given
MAX_TOKEN = 1024  # characters: a token of ours is about 200


def page_size(args: Mapping[str, str]) -> int:
    raw = args.get("page_size")
    if raw is None:
        return MAX_PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_PAGE_SIZE:
        raise InvalidParameters(
            data={"page_size": f"Must be a whole number from 1 to {MAX_PAGE_SIZE}"}
        )
    return int(raw)


ANY = "any"  # status=any: every status, newest first


def token(status: Status | None, account_id: str | None, last: Job) -> str:
    """The token of the page after the one that ends with `last`."""
    cursor = {"s": _status(status), "a": account_id, "c": last.created, "i": last.id}
    text = json.dumps(cursor, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _status(status: Status | None) -> str:
    return status.value if status is not None else ANY


def cursor(
    raw: str | None, status: Status | None, account_id: str | None
) -> tuple[int, str] | None:
    """(created, id) to resume after, from the request's `page_token`; None for the first
    page. A garbled token, or one of another query, is a 400 naming `page_token`."""
    if not raw:
        return None
    decoded = _decode(raw)
    if decoded is None:
        raise InvalidParameters(
            data={"page_token": "Not a page token: pass next_page_token as it was given"}
        )
    if decoded["s"] != _status(status) or decoded["a"] != account_id:
        raise InvalidParameters(
            data={
                "page_token": "The token of another query: keep status and account_id as "
                "they were for the first page"
            }
        )
    return decoded["c"], decoded["i"]


def _decode(raw: str) -> dict[str, Any] | None:
    if len(raw) > MAX_TOKEN or not raw.isascii():
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        value = json.loads(text)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, dict) or set(value) != {"s", "a", "c", "i"}:
        return None
    created, job_id, account_id = value["c"], value["i"], value["a"]
    if not isinstance(created, int) or isinstance(created, bool) or not 0 <= created < 2**63:
        return None
    if not isinstance(value["s"], str) or not (account_id is None or isinstance(account_id, str)):
        return None
    if not isinstance(job_id, str) or canonical_id(job_id) != job_id:
        return None  # a job id is a UUID; anything else could name another path
    return value
