"""Helpers for the stager tests: crafted zips, a snapshot of a directory tree, upload
sessions on fake-gcs-server and on a loopback server with Cloud Storage's semantics."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.contract.zips import Limits
from tests.stager.resumable import ResumableServer, serve

SMALL_LIMITS = Limits(max_files=50, max_uncompressed_bytes=8 * 1024 * 1024)


def make_zip(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    """A zip of (name or ZipInfo, content) pairs, deflated."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        warnings.simplefilter("ignore")  # duplicate names are what some tests want
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def entry(name: str, mode: int) -> zipfile.ZipInfo:
    """A ZipInfo whose external_attr carries a Unix `mode` (type and permissions)."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _patch(data: bytes, local: tuple[int, str], central: tuple[int, str], value: int) -> bytes:
    """Write `value` at a field of every local (PK\3\4) and central (PK\1\2) header."""
    raw = bytearray(data)
    for signature, (field, fmt) in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        offset = 0
        while (offset := raw.find(signature, offset)) != -1:
            struct.pack_into(fmt, raw, offset + field, value)
            offset += 4
    return bytes(raw)


def lie_about_size(data: bytes, declared: int) -> bytes:
    """Every entry claims `declared` uncompressed bytes, in both of its headers."""
    return _patch(data, (22, "<I"), (24, "<I"), declared)


def mark_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' general-purpose flag (bit 0) in both headers of every entry."""
    return _patch(data, (6, "<H"), (8, "<H"), 0x1)


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every path under `root` with its mode and content (or link target)."""
    tree: dict[str, tuple[int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content: bytes | str = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            else:
                content = ""
            tree[str(path.relative_to(root))] = (stat.S_IMODE(st.st_mode), content)
    return tree


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """(parent, target): the target directory inside a parent watched for stray writes."""
    target = tmp_path / "input"
    target.mkdir()
    (tmp_path / "bystander.txt").write_text("must not change")
    return tmp_path, target


@pytest.fixture
def resumable() -> Iterator[ResumableServer]:
    """A loopback server with Cloud Storage's resumable upload semantics, and faults."""
    yield from serve()


def open_session(storage_client: Any, bucket: str, name: str, job_id: str = "job-1") -> str:
    """What the functions hand stage-out: a session for `name`, as a zip, with the job-id
    metadata, that may only create the object (ifGenerationMatch=0)."""
    blob = storage_client.bucket(bucket).blob(name)
    blob.metadata = {"job-id": job_id}
    url: str = blob.create_resumable_upload_session(
        content_type="application/zip", if_generation_match=0
    )
    return url
