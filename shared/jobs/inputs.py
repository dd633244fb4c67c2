"""A create request's `input_zip`: strict base64 of a zip that the stager will accept.

The API applies the checks stage-in applies (shared/contract/zips.py) before anything is
created, so an unsafe or oversized zip is a 400 at once rather than a failed job later.
"""

from __future__ import annotations

import base64
import binascii
import io

from shared.contract.exits import InputRejected
from shared.contract.zips import Limits, inspect_zip
from shared.errors import InvalidParameters
from shared.settings import Settings


def _refuse(message: str) -> InvalidParameters:
    return InvalidParameters(data={"job_parameters": {"input_zip": message}})


def decode_input(text: str, settings: Settings) -> bytes:
    """The zip's bytes; InvalidParameters naming what is wrong. Never echoes the input."""
    # Base64 from `base64.encodebytes` (the earlier clients) carries newlines: allowed.
    compact = b"".join(text.encode("ascii", errors="replace").split())
    if len(compact) > (settings.max_input_bytes + 2) // 3 * 4:
        raise _refuse(f"Larger than {settings.max_input_bytes} bytes once decoded")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("Not valid base64") from None
    limits = Limits(
        max_files=settings.max_input_files,
        max_uncompressed_bytes=settings.max_input_uncompressed,
    )
    try:
        inspect_zip(io.BytesIO(data), limits)
    except InputRejected as rejected:
        raise _refuse(f"Not an acceptable zip: {rejected}") from None
    return data
