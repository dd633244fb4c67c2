"""The output zip: relative names, lost+found and links left out, directories and modes kept,
written front to back into a stream that cannot seek."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from shared.stager.archive import write_zip
from shared.stager.errors import OutputRejected


class ForwardOnly:
    """A sink like the upload: write, tell and flush, no seek."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def tell(self) -> int:
        return self.buffer.tell()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _zip(source: Path, level: int = 6) -> zipfile.ZipFile:
    sink = ForwardOnly()
    write_zip(source, sink, level=level)
    return zipfile.ZipFile(io.BytesIO(sink.buffer.getvalue()))


def test_entries_are_relative_with_modes_and_empty_dirs(tmp_path: Path) -> None:
    out = tmp_path / "output"
    (out / "nested" / "deeper").mkdir(parents=True)
    (out / "empty").mkdir()
    (out / "lost+found").mkdir()
    (out / "lost+found" / "orphan").write_bytes(b"fsck")
    (out / "nested" / "lost+found").mkdir()  # only the volume's own, at the top, is skipped
    (out / "run.sh").write_bytes(b"#!/bin/sh\n")
    (out / "run.sh").chmod(0o755)
    (out / "nested" / "deeper" / "secret").write_bytes(b"s")
    (out / "nested" / "deeper" / "secret").chmod(0o600)
    archive = _zip(out)
    assert archive.testzip() is None
    modes = {i.filename: (i.external_attr >> 16) for i in archive.infolist()}
    assert modes == {
        "empty/": stat.S_IFDIR | 0o755,
        "nested/": stat.S_IFDIR | 0o755,
        "nested/deeper/": stat.S_IFDIR | 0o755,
        "nested/deeper/secret": stat.S_IFREG | 0o600,
        "nested/lost+found/": stat.S_IFDIR | 0o755,
        "run.sh": stat.S_IFREG | 0o755,
    }


def test_empty_output_is_a_valid_empty_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path)
    assert archive.infolist() == [] and archive.testzip() is None


def test_symlinks_and_fifos_are_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private").write_bytes(b"not the job's")
    out = tmp_path / "output"
    out.mkdir()
    (out / "real.txt").write_bytes(b"kept")
    (out / "to-file").symlink_to(outside / "private")
    (out / "to-dir").symlink_to(outside)
    os.mkfifo(out / "pipe")
    assert _zip(out).namelist() == ["real.txt"]


def test_incompressible_files_are_stored_and_text_compressed(tmp_path: Path) -> None:
    (tmp_path / "random.bin").write_bytes(os.urandom(1024 * 1024))
    (tmp_path / "text.txt").write_bytes(b"the same line again\n" * 50_000)
    archive = _zip(tmp_path)
    infos = {i.filename: i for i in archive.infolist()}
    assert infos["random.bin"].compress_type == zipfile.ZIP_DEFLATED
    assert infos["random.bin"].compress_size < 1024 * 1024 * 1.01
    assert infos["text.txt"].compress_size < infos["text.txt"].file_size / 50
    assert archive.read("random.bin") == (tmp_path / "random.bin").read_bytes()


@pytest.mark.skipif(os.getuid() == 0, reason="root reads any file")
def test_an_unreadable_output_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "locked").write_bytes(b"x")
    (tmp_path / "locked").chmod(0o000)
    with pytest.raises(OutputRejected, match="cannot read output file 'locked'"):
        _zip(tmp_path)
