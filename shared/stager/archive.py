"""Zip a job's output directory into a write-only stream, in bounded memory.

Entries are relative to the output directory, top-level `lost+found` is left out, every
directory gets an entry (empty ones too) and modes travel in `external_attr`. Symbolic links,
sockets, FIFOs and devices are skipped with a log line: following a link could archive files
from outside the output, and a job's leftover links should not cost it all its output.
"""

from __future__ import annotations

import logging
import os
import stat
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shared.stager.errors import OutputRejected

log = logging.getLogger(__name__)

READ_CHUNK = 1024 * 1024
PROBE_BYTES = 64 * 1024  # sample that decides whether a file is worth compressing
PROBE_MIN_SAVING = 0.05  # below this saving at level 1, store the file (deflate level 0)
SKIPPED_TOP_LEVEL = frozenset({"lost+found"})


class Sink(Protocol):
    """Where the zip goes: written once, front to back (never seeked)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def tell(self) -> int: ...


@dataclass
class ArchiveSummary:
    files: int = 0
    directories: int = 0
    bytes_in: int = 0  # file content read from the output directory
    skipped: int = 0  # links and special files left out


def _walk(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(archive name, entry) for everything under `root`, parents first, sorted by name."""
    stack: list[tuple[str, Path]] = [("", root)]
    while stack:
        prefix, directory = stack.pop()
        try:
            with os.scandir(directory) as scan:
                children = sorted(scan, key=lambda e: e.name)
        except PermissionError as error:
            raise OutputRejected(
                f"cannot list output directory {prefix or '.'!r} (uid {os.getuid()})"
            ) from error
        subdirs = []
        for child in children:
            if not prefix and child.name in SKIPPED_TOP_LEVEL:
                continue
            name = prefix + child.name
            yield name, child
            if child.is_dir(follow_symlinks=False):
                subdirs.append((name + "/", Path(child.path)))
        stack.extend(reversed(subdirs))


def _zip_info(name: str, st: os.stat_result) -> zipfile.ZipInfo:
    # Zip timestamps cover 1980-2107 only.
    date_time = time.localtime(st.st_mtime)[:6]
    if date_time[0] < 1980:
        date_time = (1980, 1, 1, 0, 0, 0)
    elif date_time[0] > 2107:
        date_time = (2107, 12, 31, 23, 59, 59)
    info = zipfile.ZipInfo(name, date_time)
    info.external_attr = (st.st_mode & 0xFFFF) << 16
    info.create_system = 3  # Unix: readers take the mode from external_attr
    if stat.S_ISDIR(st.st_mode):
        info.external_attr |= 0x10  # the MS-DOS directory flag, for readers that want it
        info.CRC = info.compress_size = info.file_size = 0  # ZipFile.mkdir expects them set
    return info


def _level(sample: bytes, level: int) -> int:
    """Deflate level for a file starting with `sample`: 0 (stored blocks) when it barely
    compresses, which saves the time deflate wastes on media, archives and random data."""
    if level == 0 or len(sample) < PROBE_BYTES:
        return level
    probe = zlib.compressobj(1, zlib.DEFLATED, -15)
    size = len(probe.compress(sample[:PROBE_BYTES])) + len(probe.flush())
    return 0 if size > PROBE_BYTES * (1 - PROBE_MIN_SAVING) else level


def _add_file(archive: zipfile.ZipFile, name: str, path: str, level: int) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except PermissionError as error:
        raise OutputRejected(
            f"cannot read output file {name!r} (uid {os.getuid()}): {error.strerror}"
        ) from error
    with os.fdopen(fd, "rb") as source:
        st = os.fstat(fd)
        info = _zip_info(name, st)
        info.file_size = st.st_size  # decides zip64 before any byte is written
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = source.read(READ_CHUNK)
        # ZipInfo has no public field for the level before 3.13 (and keeps this alias after).
        info._compresslevel = _level(chunk, level)  # type: ignore[attr-defined]
        read = 0
        with archive.open(info, "w") as dest:
            while chunk:
                dest.write(chunk)
                read += len(chunk)
                chunk = source.read(READ_CHUNK)
    return read


def write_zip(source: Path, sink: Sink, *, level: int = 6) -> ArchiveSummary:
    """Stream a zip of `source` into `sink`; memory is a few read chunks whatever the size."""
    summary = ArchiveSummary()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, entry in _walk(source):
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                log.warning(
                    "skipped an output entry whose name is not UTF-8", extra={"entry": repr(name)}
                )
                summary.skipped += 1
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                archive.mkdir(_zip_info(name + "/", st))
                summary.directories += 1
            elif stat.S_ISREG(st.st_mode):
                summary.bytes_in += _add_file(archive, name, entry.path, level)
                summary.files += 1
            else:
                kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
                log.warning(f"skipped a {kind} in the output", extra={"entry": name})
                summary.skipped += 1
    return summary
