"""The two things the stager does, each a function of its settings and a storage client:
stage-in (init container) and stage-out (cleanup job)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from shared.stager import archive, extract, fetch, storage
from shared.stager.config import Limits
from shared.stager.errors import OutputConflictError, UsageError

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud.storage import Client

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _download_file(directory: Path) -> Iterator[BinaryIO]:
    """A temporary file inside `directory` (the root filesystem is read-only), unlinked as
    soon as it is open so it never shows among the job's input."""
    directory.mkdir(parents=True, exist_ok=True)
    extract.remove_leftovers(directory)
    fd, temp_name = tempfile.mkstemp(prefix=extract.STAGING_PREFIX + "download-", dir=directory)
    with os.fdopen(fd, "w+b") as temp:
        os.unlink(temp_name)
        yield temp


def stage_in_from_url(
    *, url: str, directory: Path, limits: Limits, max_bytes: int, deadline: float
) -> extract.ZipSummary:
    """Download the input zip from a signed URL and unpack it safely into `directory`."""
    with _download_file(directory) as temp:
        size = fetch.download(url, temp, max_bytes=max_bytes, deadline=deadline)
        log.info("input downloaded", extra={"url": fetch.where(url), "bytes": size})
        temp.seek(0)
        return extract.extract_zip(temp, directory, limits)


def stage_in(
    *,
    client: Client,
    bucket: str,
    object_name: str,
    directory: Path,
    limits: Limits,
    retry: Retry,
) -> extract.ZipSummary:
    """Download the input zip with the stager's identity and unpack it into `directory`."""
    with _download_file(directory) as temp:
        size = storage.download(client, bucket, object_name, temp, retry=retry)
        log.info(
            "input downloaded", extra={"object": f"gs://{bucket}/{object_name}", "bytes": size}
        )
        temp.seek(0)
        return extract.extract_zip(temp, directory, limits)


@dataclass(frozen=True)
class StageOutResult:
    uploaded: bool  # False: the same job's object was already there
    files: int = 0
    directories: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


def _check_existing(client: Client, bucket: str, name: str, job_id: str, retry: Retry) -> bool:
    """True if the object is already this job's output; OutputConflictError if another's."""
    owner = storage.existing_job_id(client, bucket, name, retry=retry)
    if owner is None:
        return False
    if owner == job_id:
        return True
    raise OutputConflictError(
        f"gs://{bucket}/{name} already exists for job {owner or '(unknown)'}; not overwritten"
    )


def stage_out(
    *,
    client: Client,
    bucket: str,
    object_name: str,
    directory: Path,
    job_id: str,
    retry: Retry,
    chunk_size: int = 24 * 1024 * 1024,
    compress_level: int = 6,
) -> StageOutResult:
    """Zip `directory` straight into the output object, created once and only if absent.

    A retried cleanup whose earlier attempt finished finds its own object (metadata job-id)
    and does nothing. The existence check spares a retry the zipping; ifGenerationMatch=0 on
    the upload closes the race the check leaves open.
    """
    if not directory.is_dir():
        raise UsageError(f"output directory {directory} does not exist")
    if _check_existing(client, bucket, object_name, job_id, retry):
        log.info("output already uploaded by an earlier attempt", extra={"object": object_name})
        return StageOutResult(uploaded=False)
    blob = client.bucket(bucket).blob(object_name)
    sink = storage.UploadSink(blob, chunk_size=chunk_size, retry=retry, metadata={"job-id": job_id})
    try:
        summary = archive.write_zip(directory, sink, level=compress_level)
        sink.finish()
    except storage.PreconditionFailed:
        sink.abort()
        if _check_existing(client, bucket, object_name, job_id, retry):
            log.info(
                "output uploaded concurrently by another attempt", extra={"object": object_name}
            )
            return StageOutResult(uploaded=False)
        raise
    except BaseException:
        sink.abort()
        raise
    log.info(
        "output uploaded",
        extra={
            "object": f"gs://{bucket}/{object_name}",
            "files": summary.files,
            "directories": summary.directories,
            "bytes_in": summary.bytes_in,
            "bytes_out": sink.tell(),
            "resumable": sink.resumable,
        },
    )
    return StageOutResult(
        uploaded=True,
        files=summary.files,
        directories=summary.directories,
        bytes_in=summary.bytes_in,
        bytes_out=sink.tell(),
    )
