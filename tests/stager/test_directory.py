"""A zip's central directory is bounded before zipfile reads it: a small upload whose
directory lists millions of entries is refused without building them."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import pytest

from shared.contract.exits import InputRejected
from shared.contract.zipdirectory import check_directory, end_record
from shared.contract.zips import MAX_PATH_BYTES, Limits, inspect_zip
from tests.fixtures.zips import directory_bomb
from tests.stager.conftest import make_zip

MIB = 1024 * 1024
DEFAULT = Limits()  # 10,000 entries


def zipfile_end(data: bytes) -> tuple[int, int, int]:
    """(start, size, entries) of the central directory as zipfile itself finds it."""
    record = zipfile._EndRecData(io.BytesIO(data))  # type: ignore[attr-defined]
    size, offset, location = record[5], record[6], record[9]
    concat = location - size - offset
    if record[0] == b"PK\x06\x06":
        concat -= 56 + 20
    return offset + concat, size, record[4]


SHAPES = {
    "plain": make_zip(("a.txt", b"a"), ("d/b.txt", b"b")),
    "commented": directory_bomb(3, comment=b"PK\x05\x06 a comment that looks like an end"),
    "prefixed": directory_bomb(3, prefix=b"#!/bin/sh\nexit 0\n" * 10),
    "zip64": directory_bomb(5, zip64=True),
    "zip64 declaring fewer": directory_bomb(5, zip64=True, declared=2),
    "declaring fewer": directory_bomb(70, declared=2),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_directory_is_where_zipfile_finds_it(shape: str) -> None:
    data = SHAPES[shape]
    found = end_record(io.BytesIO(data))
    assert found is not None
    assert (found.start, found.size, found.entries) == zipfile_end(data)


def test_no_end_record_is_left_to_zipfile() -> None:
    assert end_record(io.BytesIO(b"not a zip")) is None
    with pytest.raises(InputRejected, match="not a valid zip"):
        inspect_zip(io.BytesIO(b"not a zip" * 10), DEFAULT)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (directory_bomb(10_001), "10001 entries, above the limit of 10000"),
        (directory_bomb(70_000, zip64=True), "70000 entries, above the limit of 10000"),
        # The end record may say anything: the directory's size gives it away.
        (directory_bomb(300_000, declared=5), "central directory is"),
        # A directory that declares two entries and holds more is counted.
        (directory_bomb(10_001, declared=2), "more than 10000 entries"),
    ],
    ids=["declared", "declared in zip64", "too large", "holds more than declared"],
)
def test_refused_by_its_directory(data: bytes, reason: str) -> None:
    with pytest.raises(InputRejected, match=reason):
        inspect_zip(io.BytesIO(data), DEFAULT)


def test_a_directory_of_many_entries_is_refused_without_building_them() -> None:
    """150,000 records of 52 bytes fit the size a 10,000-entry directory may take, and
    declare two entries: zipfile alone would build 150,000 entries (about 80 MB)."""
    data = directory_bomb(150_000, declared=2)
    tracemalloc.start()
    try:
        with pytest.raises(InputRejected, match="more than 10000 entries"):
            inspect_zip(io.BytesIO(data), DEFAULT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, peak


def test_within_the_limits_it_is_read_as_before() -> None:
    summary = inspect_zip(io.BytesIO(directory_bomb(9_999)), DEFAULT)
    assert summary.files == 9_999


def test_check_directory_alone_accepts_the_limit() -> None:
    check_directory(io.BytesIO(directory_bomb(50)), 50, MAX_PATH_BYTES)
    with pytest.raises(InputRejected):
        check_directory(io.BytesIO(directory_bomb(51)), 50, MAX_PATH_BYTES)
