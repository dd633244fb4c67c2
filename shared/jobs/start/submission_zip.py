"""A submission's zip, read in ranged reads: its central directory, checked as stage-in will
check it, and its root job.json, the create's body. A submission may be as large as
MAX_INPUT_URL_BYTES; only those two are read."""

from __future__ import annotations

import json
import zipfile
from typing import IO, Any, BinaryIO

from shared.cloud.backends import Backends
from shared.cloud.bucket import ObjectInfo
from shared.contract.exits import InputRejected
from shared.contract.zips import Limits, inspect_zip, open_zip
from shared.errors import InvalidParameters, PayloadTooLarge
from shared.model.manifests import SUBMISSION_BODY
from shared.quantity import parse_quantity

MAX_BODY_BYTES = 1024 * 1024  # job.json, uncompressed: a create body without its input


def read(object_name: str, info: ObjectInfo, backends: Backends) -> tuple[Any, bool]:
    """The submission's job.json, and whether the zip holds an input besides it."""
    settings = backends.settings
    limits = Limits(
        max_files=settings.max_input_files,
        max_uncompressed_bytes=max(settings.max_input_uncompressed, _bytes(settings.volume_size)),
    )
    return backends.bucket.read_ranges(object_name, info, lambda file: read_body(file, limits))


def read_body(file: BinaryIO, limits: Limits) -> tuple[Any, bool]:
    """job.json's JSON and whether the zip holds anything else; the zip is checked as
    stage-in will check it, from its central directory alone."""
    try:
        summary = inspect_zip(file, limits, skip=(SUBMISSION_BODY,))
    except InputRejected as rejected:
        raise InvalidParameters(
            msg=f"The submission is not a zip a job can take: {rejected}"
        ) from None
    if not summary.skipped or SUBMISSION_BODY not in _normalised(summary.skipped):
        raise InvalidParameters(
            msg=f"The submission has no {SUBMISSION_BODY} at its root: it holds the create's body"
        )
    member = next(n for n in summary.skipped if _normalised((n,)) == {SUBMISSION_BODY})
    file.seek(0)
    try:
        with open_zip(file, limits) as archive:
            entry = archive.getinfo(member)
            if entry.file_size > MAX_BODY_BYTES:
                raise PayloadTooLarge(
                    msg=f"{SUBMISSION_BODY} is larger than {MAX_BODY_BYTES} bytes"
                )
            with archive.open(entry) as source:
                raw = _bounded(source)
    except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError, InputRejected) as error:
        raise InvalidParameters(msg=f"Cannot read {SUBMISSION_BODY}: {error}") from None
    try:
        body = json.loads(raw)
        json.dumps(body, ensure_ascii=False).encode()  # a lone surrogate is no Unicode
    except UnicodeEncodeError:
        raise InvalidParameters(
            msg=f"Malformed JSON in {SUBMISSION_BODY}: a string holds a lone UTF-16 surrogate"
        ) from None
    except (ValueError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise InvalidParameters(msg=f"Malformed JSON in {SUBMISSION_BODY}: {detail}") from None
    return body, bool(summary.entries)


def _bounded(source: IO[bytes]) -> bytes:
    raw = source.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(msg=f"{SUBMISSION_BODY} is larger than {MAX_BODY_BYTES} bytes")
    return raw


def _normalised(names: tuple[str, ...]) -> set[str]:
    return {"/".join(p for p in name.split("/") if p not in ("", ".")) for name in names}


def _bytes(quantity: str) -> int:
    number = parse_quantity(quantity)
    assert number is not None  # Settings checked it
    return int(number)
