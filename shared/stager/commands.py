"""The two things the stager does, each a function of its settings: stage-in (the first
init container) and stage-out (the pod's regular container, after the user's)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.contract.exits import UsageError
from shared.contract.zips import Limits
from shared.stager import archive, extract, fetch, tasks, upload
from shared.stager.tasks import UploadPlan

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


def stage_in(
    *,
    url: str,
    directory: Path,
    limits: Limits,
    max_bytes: int,
    deadline: float,
    public_only: bool = False,
    skip: tuple[str, ...] = (),
) -> extract.ZipSummary:
    """Download the input zip from a signed URL (or a user's URL, checked when
    `public_only`) and unpack it safely into `directory`, but for the files in `skip`."""
    with _download_file(directory) as temp:
        size = fetch.download(
            url, temp, max_bytes=max_bytes, deadline=deadline, public_only=public_only
        )
        log.info("input downloaded", extra={"url": fetch.where(url), "bytes": size})
        temp.seek(0)
        return extract.extract_zip(temp, directory, limits, skip)


@dataclass(frozen=True)
class StageOutResult:
    stored: upload.Stored
    files: int
    directories: int
    bytes_in: int


def stage_out(
    *,
    upload_url: str,
    directory: Path,
    chunk_size: int = 24 * 1024 * 1024,
    compress_level: int = 6,
    retry_seconds: float = 120.0,
    plan: UploadPlan | None = None,
) -> StageOutResult:
    """Zip `directory` straight into the upload session's object, in `chunk_size` requests.

    The session creates exactly one object, once; see upload.py for what happens when it
    is gone, refused, already complete, or holds an earlier attempt's bytes. An array job's
    task follows its tasks' `plan` instead (tasks.py): its own session, or a form upload.
    """
    if not directory.is_dir():
        raise UsageError(f"output directory {directory} does not exist")
    form = plan
    if plan is not None and plan.kind == "session":
        upload_url, form = tasks.open_session(plan, retry_seconds=retry_seconds), None
    if form is not None:
        stored, summary = tasks.form_upload(
            form, directory, compress_level=compress_level, retry_seconds=retry_seconds
        )
    else:
        sink = upload.ResumableUpload(
            upload_url, chunk_size=chunk_size, retry_seconds=retry_seconds
        )
        try:
            summary = archive.write_zip(directory, sink, level=compress_level)
            stored = sink.finish()
        finally:
            sink.close()
    message = (
        "output already uploaded by an earlier attempt (the same zip)"
        if stored.already_complete
        else "output uploaded"
    )
    log.info(
        message,
        extra={
            "object": stored.name,
            "files": summary.files,
            "directories": summary.directories,
            "bytes_in": summary.bytes_in,
            "bytes_out": stored.size,
            "md5": stored.md5,
            "requests": stored.requests,
        },
    )
    return StageOutResult(stored, summary.files, summary.directories, summary.bytes_in)
