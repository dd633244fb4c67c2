"""An input zip's checks, from its central directory alone: names, kinds, count, declared
sizes and compression ratios. The API applies them to an input before anything is created
(and to a submission, in ranged reads), stage-in before it extracts anything
(shared/stager/extract.py): both refuse the same zips."""

from __future__ import annotations

import os
import stat
import struct
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from shared.contract.env import EnvReader
from shared.contract.exits import InputRejected, UsageError
from shared.contract.zipdirectory import check_directory

MIB = 1024 * 1024
# Below this many uncompressed bytes an entry's ratio is not judged: a small file of zeros
# compresses a thousandfold without being a bomb.
RATIO_FLOOR = MIB
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


def summarise(archive: zipfile.ZipFile, limits: Limits, skip: Collection[str] = ()) -> ZipSummary:
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
        return summarise(archive, limits, skip)


@dataclass(frozen=True)
class Limits:
    """Bounds on an input zip, shared by the API's upload check and the stager."""

    max_files: int = 10_000  # MAX_INPUT_FILES: entries (files and directories)
    max_uncompressed_bytes: int = 1024 * MIB  # MAX_INPUT_UNCOMPRESSED_BYTES: all entries, B
    max_compression_ratio: float = 100.0  # MAX_INPUT_COMPRESSION_RATIO: per entry

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        read = EnvReader(os.environ if env is None else env, UsageError)
        return cls(
            max_files=read.integer("MAX_INPUT_FILES", cls.max_files, minimum=1),
            max_uncompressed_bytes=read.integer(
                "MAX_INPUT_UNCOMPRESSED_BYTES", cls.max_uncompressed_bytes
            ),
            max_compression_ratio=read.number(
                "MAX_INPUT_COMPRESSION_RATIO", cls.max_compression_ratio, minimum=1.0
            ),
        )
