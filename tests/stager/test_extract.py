"""Refusals and safe extraction, on crafted zips: nothing is ever written outside the target."""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from pathlib import Path

import pytest

from shared.contract.exits import InputRejected
from shared.contract.zips import Limits, inspect_zip
from shared.stager.extract import extract_zip, remove_leftovers
from tests.stager.conftest import (
    SMALL_LIMITS,
    entry,
    lie_about_size,
    make_zip,
    mark_encrypted,
    snapshot,
)

MIB = 1024 * 1024


REFUSED = {
    "absolute path": (make_zip(("/etc/evil", b"x")), "absolute path"),
    "drive letter": (make_zip(("C:/evil", b"x")), "absolute path"),
    "dot-dot": (make_zip(("a/../../evil", b"x")), "'..'"),
    "leading dot-dot": (make_zip(("../evil", b"x")), "'..'"),
    "backslash": (make_zip(("..\\evil", b"x")), "'\\'"),
    "symlink": (make_zip((entry("link", stat.S_IFLNK | 0o777), b"/etc/passwd")), "symbolic"),
    "char device": (make_zip((entry("tty", stat.S_IFCHR | 0o666), b"")), "device"),
    "block device": (make_zip((entry("sda", stat.S_IFBLK | 0o666), b"")), "device"),
    "fifo": (make_zip((entry("pipe", stat.S_IFIFO | 0o666), b"")), "special"),
    "encrypted": (mark_encrypted(make_zip(("secret", b"x"))), "encrypted"),
    "duplicate": (make_zip(("a.txt", b"1"), ("a.txt", b"2")), "twice"),
    "duplicate once normalised": (make_zip(("a.txt", b"1"), ("./a.txt", b"2")), "twice"),
    "file then dir": (make_zip(("a", b"1"), ("a/b", b"2")), "inside a file"),
    "not a zip": (b"this is not a zip file at all", "not a valid zip"),
    "too many files": (make_zip(*((f"f{i}", b"x") for i in range(51))), "51 entries"),
    "too many bytes": (make_zip(("big", os.urandom(9 * MIB))), "uncompressed"),
    "zip bomb": (make_zip(("zeros", bytes(4 * MIB))), "compression ratio"),
    "path too long": (make_zip(("/".join(["d" * 250] * 16), b"x")), "longer than 3840 bytes"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_inspect_refuses(case: str) -> None:
    data, reason = REFUSED[case]
    with pytest.raises(InputRejected, match=re.escape(reason)):
        inspect_zip(io.BytesIO(data), SMALL_LIMITS)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_extract_refuses_and_writes_nothing(case: str, workspace: tuple[Path, Path]) -> None:
    parent, target = workspace
    (target / "lost+found").mkdir()
    before = snapshot(parent)
    with pytest.raises(InputRejected):
        extract_zip(io.BytesIO(REFUSED[case][0]), target, SMALL_LIMITS)
    assert snapshot(parent) == before


def test_header_lying_about_size_is_refused(workspace: tuple[Path, Path]) -> None:
    """Declared 10 bytes, really 2 MiB: the central directory passes, the real bytes do not."""
    parent, target = workspace
    data = lie_about_size(make_zip(("liar.bin", os.urandom(2 * MIB))), declared=10)
    summary = inspect_zip(io.BytesIO(data), SMALL_LIMITS)
    assert summary.uncompressed_bytes == 10
    before = snapshot(parent)
    with pytest.raises(InputRejected):
        extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    assert snapshot(parent) == before


def test_header_claiming_more_than_the_data_is_refused(workspace: tuple[Path, Path]) -> None:
    _, target = workspace
    data = lie_about_size(make_zip(("short.bin", os.urandom(MIB))), declared=2 * MIB)
    with pytest.raises(InputRejected, match="header says"):
        extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    assert os.listdir(target) == []


def test_real_bytes_past_the_total_limit_are_refused(workspace: tuple[Path, Path]) -> None:
    """Each entry under the limit, their real total above it."""
    parent, target = workspace
    data = make_zip(("a", os.urandom(3 * MIB)), ("b", os.urandom(3 * MIB)))
    limits = Limits(max_files=10, max_uncompressed_bytes=5 * MIB)
    with pytest.raises(InputRejected, match="uncompressed"):
        extract_zip(io.BytesIO(data), target, limits)
    assert os.listdir(target) == []


def test_ratio_below_the_floor_is_accepted(workspace: tuple[Path, Path]) -> None:
    _, target = workspace
    extract_zip(io.BytesIO(make_zip(("zeros", bytes(512 * 1024)))), target, SMALL_LIMITS)
    assert (target / "zeros").stat().st_size == 512 * 1024


def test_extracts_files_dirs_and_safe_modes(workspace: tuple[Path, Path]) -> None:
    parent, target = workspace
    data = make_zip(
        (entry("bin/run.sh", stat.S_IFREG | 0o4755), b"#!/bin/sh\necho hi\n"),
        (entry("private.txt", stat.S_IFREG | 0o600), b"secret"),
        ("nested/deeper/data.csv", b"a,b\n1,2\n"),
        ("empty/", b""),
        ("./dotted//name.txt", b"normalised"),
        ("lost+found/junk", b"skipped"),
    )
    summary = extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    assert summary.files == 4 and summary.skipped == ("lost+found/junk",)
    tree = snapshot(target)
    assert tree == {
        "bin": (0o755, ""),
        "bin/run.sh": (0o755, b"#!/bin/sh\necho hi\n"),
        "private.txt": (0o644, b"secret"),
        "nested": (0o755, ""),
        "nested/deeper": (0o755, ""),
        "nested/deeper/data.csv": (0o644, b"a,b\n1,2\n"),
        "empty": (0o755, ""),
        "dotted": (0o755, ""),
        "dotted/name.txt": (0o644, b"normalised"),
    }
    assert {p.name for p in parent.iterdir()} == {"input", "bystander.txt"}


def test_existing_symlinks_in_the_target_are_never_followed(
    workspace: tuple[Path, Path],
) -> None:
    parent, target = workspace
    outside = parent / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    (target / "evil").symlink_to(outside)
    (target / "victim.txt").symlink_to(outside / "victim.txt")
    data = make_zip(("evil/payload.txt", b"payload"), ("victim.txt", b"overwritten?"))
    extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    assert snapshot(outside) == {"victim.txt": (0o644, b"original")}
    assert not (target / "evil").is_symlink()
    assert (target / "evil" / "payload.txt").read_bytes() == b"payload"
    assert not (target / "victim.txt").is_symlink()
    assert (target / "victim.txt").read_bytes() == b"overwritten?"


def test_a_retry_replaces_the_earlier_attempt_and_keeps_lost_and_found(
    workspace: tuple[Path, Path],
) -> None:
    _, target = workspace
    (target / "lost+found").mkdir()
    (target / ".stager-abc123").mkdir()  # an interrupted attempt's staging directory
    data = make_zip(("dir/a.txt", b"A"), ("b.txt", b"B"))
    extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    (target / "dir" / "a.txt").write_bytes(b"changed by the job")
    remove_leftovers(target)
    extract_zip(io.BytesIO(data), target, SMALL_LIMITS)
    assert snapshot(target) == {
        "lost+found": (0o755, ""),
        "dir": (0o755, ""),
        "dir/a.txt": (0o644, b"A"),
        "b.txt": (0o644, b"B"),
    }


def test_summary_counts_without_extracting() -> None:
    data = make_zip(("a/b.txt", b"12345"), ("c/", b""))
    summary = inspect_zip(io.BytesIO(data), Limits())
    assert (summary.files, summary.directories, summary.uncompressed_bytes) == (1, 2, 5)


def test_stored_entries_are_checked_too(workspace: tuple[Path, Path]) -> None:
    _, target = workspace
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("../stored", b"x")
    with pytest.raises(InputRejected, match="'..'"):
        extract_zip(io.BytesIO(buffer.getvalue()), target, SMALL_LIMITS)


def test_skipped_files_are_checked_but_not_written(workspace: tuple[Path, Path]) -> None:
    _, target = workspace
    data = make_zip(("./job.json", b"{}"), ("dir/job.json", b"kept"), ("in.txt", b"i"))
    summary = extract_zip(io.BytesIO(data), target, SMALL_LIMITS, skip=("job.json",))
    assert summary.skipped == ("./job.json",)
    assert snapshot(target) == {
        "dir": (0o755, ""),
        "dir/job.json": (0o644, b"kept"),
        "in.txt": (0o644, b"i"),
    }
    unsafe = make_zip(("job.json", b"{}"), ("../job.json", b"x"))
    with pytest.raises(InputRejected, match="'..'"):
        extract_zip(io.BytesIO(unsafe), target, SMALL_LIMITS, skip=("job.json", "../job.json"))


def test_a_path_at_the_limit_is_extracted(workspace: tuple[Path, Path]) -> None:
    _, target = workspace
    name = "/".join(["d" * 239] * 15 + ["f" * 240])
    assert len(name) == 3840
    extract_zip(io.BytesIO(make_zip((name, b"deep"))), target, SMALL_LIMITS)
    assert (target / name).read_bytes() == b"deep"


def test_a_left_out_file_in_two_spellings_is_refused(workspace: tuple[Path, Path]) -> None:
    """A submission's job.json and ./job.json: neither may silently win."""
    _, target = workspace
    data = make_zip(("job.json", b"{}"), ("./job.json", b'{"a": 1}'), ("in.txt", b"x"))
    with pytest.raises(InputRejected, match=re.escape("entry './job.json' appears twice")):
        extract_zip(io.BytesIO(data), target, SMALL_LIMITS, skip=("job.json",))
    assert list(target.iterdir()) == []
