"""Safe extraction of a job's input zip.

`inspect_zip` checks the central directory without writing anything; the API calls it on an
upload and `extract_zip` calls it first, so both apply the same rules. Extraction then trusts
no header: it counts the bytes really decompressed, and writes into a fresh private staging
directory with O_EXCL|O_NOFOLLOW before moving the result into place.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import struct
import tempfile
import time
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.stager.config import Limits
from shared.stager.directory import check_directory
from shared.stager.errors import InputRejected

log = logging.getLogger(__name__)

MIB = 1024 * 1024
READ_CHUNK = MIB
# Below this many uncompressed bytes an entry's ratio is not judged: a small file of zeros
# compresses a thousandfold without being a bomb.
RATIO_FLOOR = MIB
STAGING_PREFIX = ".stager-"
SKIPPED_TOP_LEVEL = frozenset({"lost+found"})  # the volume's own, never replaced
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_MAX_NAME_BYTES = 255  # a path component, as every Linux file system allows
# A whole path: Linux refuses one of 4,096 bytes or more (PATH_MAX, its NUL included), and
# the input is written below a staging directory (/input/.stager-xxxxxxxx/) first. The room
# left for the zip's own path is this, with a margin for deeper mount paths.
MAX_PATH_BYTES = 3840


@dataclass(frozen=True)
class Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # the normalised relative path
    is_dir: bool
    executable: bool


@dataclass(frozen=True)
class ZipSummary:
    files: int
    directories: int
    uncompressed_bytes: int  # as declared by the central directory (checked when extracting)
    compressed_bytes: int
    skipped: tuple[str, ...]  # entries left out: top-level lost+found, and those asked
    entries: tuple[Entry, ...]


def _parts(name: str) -> tuple[str, ...]:
    """The path components of an entry name, or InputRejected saying why it is unsafe."""
    if not name or "\x00" in name:
        raise InputRejected(f"entry {name!r} has an empty name or a NUL character")
    if "\\" in name:
        raise InputRejected(f"entry {name!r} uses '\\' (zip names separate with '/')")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise InputRejected(f"entry {name!r} is an absolute path")
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts:
        raise InputRejected(f"entry {name!r} has a '..' component")
    if not parts:
        raise InputRejected(f"entry {name!r} names no file")
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in parts):
        raise InputRejected(f"entry {name!r} has a component longer than 255 bytes")
    if len("/".join(parts).encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise InputRejected(
            f"entry {name[:100]!r}... has a path longer than {MAX_PATH_BYTES} bytes"
        )
    return parts


def _entry(info: zipfile.ZipInfo, limits: Limits) -> Entry:
    parts = _parts(info.filename)
    if info.flag_bits & 0x1:
        raise InputRejected(f"entry {info.filename!r} is encrypted")
    if info.compress_type not in _METHODS:
        raise InputRejected(
            f"entry {info.filename!r} uses unsupported compression method {info.compress_type}"
        )
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise InputRejected(f"entry {info.filename!r} is a symbolic link")
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise InputRejected(f"entry {info.filename!r} is a device or special file")
    is_dir = info.is_dir() or stat.S_ISDIR(mode) or bool(info.external_attr & 0x10)
    if is_dir and info.file_size:
        raise InputRejected(f"directory entry {info.filename!r} carries data")
    allowed = max(limits.max_compression_ratio * info.compress_size, RATIO_FLOOR)
    if info.file_size > allowed:
        ratio = info.file_size / max(info.compress_size, 1)
        raise InputRejected(
            f"entry {info.filename!r} has compression ratio {ratio:.0f}, "
            f"above the limit of {limits.max_compression_ratio:g}"
        )
    return Entry(info=info, parts=parts, is_dir=is_dir, executable=bool(mode & 0o111))


def _summarise(archive: zipfile.ZipFile, limits: Limits, skip: Collection[str] = ()) -> ZipSummary:
    """`skip`: relative paths of files left out (a submission's own job.json), matched on
    the normalised name, so `./job.json` is `job.json` too."""
    infos = archive.infolist()
    if len(infos) > limits.max_files:
        raise InputRejected(
            f"the zip has {len(infos)} entries, above the limit of {limits.max_files}"
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_uncompressed_bytes:
        raise InputRejected(
            f"the zip holds {declared} bytes uncompressed, "
            f"above the limit of {limits.max_uncompressed_bytes}"
        )
    entries: list[Entry] = []
    skipped: list[str] = []
    files: set[tuple[str, ...]] = set()
    dirs: set[tuple[str, ...]] = set()
    left_out: set[tuple[str, ...]] = set()
    for info in infos:
        entry = _entry(info, limits)
        if entry.parts[0] in SKIPPED_TOP_LEVEL or (
            not entry.is_dir and "/".join(entry.parts) in skip
        ):
            if not entry.is_dir and entry.parts in left_out:  # job.json and ./job.json
                raise InputRejected(f"entry {info.filename!r} appears twice")
            left_out.add(entry.parts)
            skipped.append(info.filename)
            continue
        parents = {entry.parts[:i] for i in range(1, len(entry.parts))}
        if entry.is_dir:
            if entry.parts in files:
                raise InputRejected(f"entry {info.filename!r} is both a file and a directory")
            dirs.add(entry.parts)
        else:
            if entry.parts in files:
                raise InputRejected(f"entry {info.filename!r} appears twice")
            if entry.parts in dirs:
                raise InputRejected(f"entry {info.filename!r} is both a file and a directory")
            files.add(entry.parts)
        if parents & files:
            raise InputRejected(f"entry {info.filename!r} is inside a file")
        dirs |= parents
        entries.append(entry)
    if files & dirs:
        raise InputRejected("an entry is both a file and a directory")
    return ZipSummary(
        files=len(files),
        directories=len(dirs),
        uncompressed_bytes=declared,
        compressed_bytes=sum(info.compress_size for info in infos),
        skipped=tuple(skipped),
        entries=tuple(entries),
    )


def open_zip(fileobj: BinaryIO, limits: Limits) -> zipfile.ZipFile:
    """The zip, once its central directory is known to fit the limits (check_directory):
    zipfile reads all of it into memory."""
    try:
        check_directory(fileobj, limits.max_files, MAX_PATH_BYTES)
        return zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, struct.error) as error:
        raise InputRejected(f"not a valid zip archive: {error}") from error


def inspect_zip(fileobj: BinaryIO, limits: Limits, skip: Collection[str] = ()) -> ZipSummary:
    """Check a zip's names, kinds, count, declared sizes and ratios; extract nothing.

    Raises InputRejected with a message fit for the user. `fileobj` must be seekable; only
    the central directory is read, so a ranged reader of a large object reads little.
    """
    with open_zip(fileobj, limits) as archive:
        return _summarise(archive, limits, skip)


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
        summary = _summarise(archive, limits, skip)
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
