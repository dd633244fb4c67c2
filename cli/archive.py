"""A job's input as a zip (a directory zipped here, or a zip as it is), and its output
unzipped, refusing entries that would land outside the target."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import IO

from cli.errors import CliError


def input_zip(source: Path) -> IO[bytes]:
    """An open temporary file holding the zip of `source`, at position 0."""
    if source.is_dir():
        return zip_directory(source)
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise CliError(f"{source} is neither a directory nor a zip file")
        handle = tempfile.TemporaryFile()
        with source.open("rb") as original:
            shutil.copyfileobj(original, handle)
        handle.seek(0)
        return handle
    raise CliError(f"{source}: no such directory or zip file")


def zip_directory(directory: Path) -> IO[bytes]:
    """Files under `directory`, relative to it, modes kept. Links are stored as what they
    point to (stage-in refuses link entries); special files are skipped."""
    handle = tempfile.TemporaryFile()
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(directory, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                try:
                    if not stat.S_ISREG(path.stat().st_mode):
                        continue
                except OSError:
                    continue  # a dangling link
                archive.write(path, path.relative_to(directory).as_posix())
    handle.seek(0)
    return handle


def size_of(handle: IO[bytes]) -> int:
    position = handle.tell()
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(position)
    return size


def unzip(archive_file: IO[bytes], target: Path) -> list[str]:
    """The zip's files extracted under `target`; names outside it are refused."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        archive = zipfile.ZipFile(archive_file)
    except zipfile.BadZipFile:
        raise CliError("The job's output is not a zip file") from None
    names: list[str] = []
    with archive:
        for info in archive.infolist():
            destination = (root / info.filename).resolve()
            if destination != root and root not in destination.parents:
                raise CliError(f"The output holds an unsafe entry: {info.filename!r}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise CliError(f"The output holds a link: {info.filename!r}")
            archive.extract(info, root)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                destination.chmod(mode | 0o600)
            names.append(info.filename)
    return names
