"""Safe extraction of a job's input zip.

It first checks the zip as the API does (`shared.contract.zips.summarise`). Extraction
then trusts no header: it counts the bytes really decompressed, and writes into a fresh
private staging directory with O_EXCL|O_NOFOLLOW before moving the result into place.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import BinaryIO

from shared.contract.exits import InputRejected
from shared.contract.zips import RATIO_FLOOR, Entry, Limits, ZipSummary, open_zip, summarise

log = logging.getLogger(__name__)

MIB = 1024 * 1024
READ_CHUNK = MIB
STAGING_PREFIX = ".stager-"


def remove_leftovers(target: Path) -> None:
    """Delete what an interrupted earlier attempt left in `target` (our prefix only)."""
    for child in target.iterdir():
        if child.name.startswith(STAGING_PREFIX):
            _remove(child)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _copy_entry(
    archive: zipfile.ZipFile, entry: Entry, dest: Path, budget: int, ratio: float
) -> int:
    """Write one file's real bytes to `dest`; its byte count. Stops at the first byte past
    its header's size, the ratio limit or the archive's remaining `budget`."""
    info = entry.info
    allowed = min(budget, info.file_size, max(RATIO_FLOOR, int(ratio * info.compress_size)))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    written = 0
    with archive.open(info) as source, os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
        while chunk := source.read(READ_CHUNK):
            written += len(chunk)
            if written > allowed:
                raise InputRejected(
                    f"entry {info.filename!r} decompresses to more than its header says "
                    f"or the limits allow ({allowed} bytes)"
                )
            out.write(chunk)
    if written != info.file_size:
        raise InputRejected(
            f"entry {info.filename!r} holds {written} bytes, its header says {info.file_size}"
        )
    return written


def _mtime(info: zipfile.ZipInfo) -> float:
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return time.time()


def _extract_into(archive: zipfile.ZipFile, summary: ZipSummary, limits: Limits, root: Path) -> int:
    """Write every entry under the private directory `root`; the real bytes written."""
    total = 0
    dir_modes: dict[Path, int] = {}
    for entry in summary.entries:
        path = root.joinpath(*entry.parts)
        parent = path if entry.is_dir else path.parent
        for depth in range(1, len(entry.parts) + (1 if entry.is_dir else 0)):
            directory = root.joinpath(*entry.parts[:depth])
            if directory not in dir_modes:
                directory.mkdir(mode=0o700, exist_ok=True)
                dir_modes[directory] = 0o755
        if not parent.resolve().is_relative_to(root.resolve()):
            raise InputRejected(f"entry {entry.info.filename!r} resolves outside the target")
        if entry.is_dir:
            continue
        budget = limits.max_uncompressed_bytes - total
        total += _copy_entry(archive, entry, path, budget, limits.max_compression_ratio)
        os.chmod(path, 0o755 if entry.executable else 0o644, follow_symlinks=False)
        mtime = _mtime(entry.info)
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    # Deepest first, so a directory stays writable until everything inside it is done.
    for directory in sorted(dir_modes, key=lambda p: len(p.parts), reverse=True):
        os.chmod(directory, dir_modes[directory], follow_symlinks=False)
    return total


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename each top-level entry into `target`, replacing an earlier attempt's copy."""
    for child in sorted(staging.iterdir()):
        dest = target / child.name
        if os.path.lexists(dest):
            _remove(dest)  # never followed: a symlink is unlinked, not its target
        os.rename(child, dest)


def extract_zip(
    fileobj: BinaryIO, target: Path, limits: Limits, skip: Collection[str] = ()
) -> ZipSummary:
    """Unpack the zip into `target` safely, or raise InputRejected leaving `target` as it was.
    Files named in `skip` (relative paths) are checked like the others but not written.

    Top-level entries replace same-named ones already in `target` (a retried init container
    sees its earlier attempt's files); `lost+found` is never touched.
    """
    target.mkdir(parents=True, exist_ok=True)
    with open_zip(fileobj, limits) as archive:
        summary = summarise(archive, limits, skip)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
        try:
            written = _extract_into(archive, summary, limits, staging)
            _move_into_place(staging, target)
        except zipfile.BadZipFile as error:
            raise InputRejected(f"corrupt zip entry: {error}") from error
        except (NotImplementedError, EOFError) as error:
            raise InputRejected(f"cannot decompress an entry: {error}") from error
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InputRejected("the input does not fit the job's input volume") from error
            if error.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP):
                raise InputRejected(f"conflicting entries in the zip: {error}") from error
            if error.errno == errno.ENAMETOOLONG:
                raise InputRejected(f"a path in the zip is too long: {error}") from error
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)
    log.info(
        "input extracted",
        extra={"files": summary.files, "directories": summary.directories, "bytes": written},
    )
    if summary.skipped:
        log.warning(
            "left out entries of the input (lost+found, or asked to)",
            extra={"entries": list(summary.skipped[:20]), "count": len(summary.skipped)},
        )
    return summary
