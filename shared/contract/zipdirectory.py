"""A zip's central directory, bounded before `zipfile` reads it.

`zipfile.ZipFile()` reads the whole central directory into memory and builds an object for
every entry in it before anyone can count them: a 100 MB directory listing 2,000,000
entries costs a gigabyte. `check_directory` runs first. It finds the end records exactly as
`zipfile` does (CPython 3.11's `_EndRecData` and `_EndRecData64`), refuses by the declared
entry count and directory size, then walks the directory's records without keeping them
and refuses by their real count. What `ZipFile()` then reads is bounded by the limits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from shared.contract.exits import InputRejected

END = struct.Struct("<4s4H2LH")  # zipfile.structEndArchive
END_SIGNATURE = b"PK\x05\x06"
LOCATOR = struct.Struct("<4sLQL")  # zipfile.structEndArchive64Locator
LOCATOR_SIGNATURE = b"PK\x06\x07"
END64 = struct.Struct("<4sQ2H2L4Q")  # zipfile.structEndArchive64
END64_SIGNATURE = b"PK\x06\x06"
RECORD = struct.Struct("<4s4B4HL2L5H2L")  # zipfile.structCentralDir
RECORD_SIGNATURE = b"PK\x01\x02"
MAX_COMMENT = 1 << 16
# What one entry's record may hold besides its fixed part and its path: extra fields
# (ZIP64 sizes, timestamps, Unicode names) and a comment. Real archives use tens of bytes.
MAX_RECORD_EXTRA = 1024
# The records of a directory average at most this many bytes: real archives' average about
# a hundred (46 fixed, a path of tens of bytes, an extra field or two). So `zipfile` holds
# about 10 MB of directory for the default 10,000 entries, whatever their paths.
MEAN_RECORD = 1024
READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Directory:
    start: int  # the offset zipfile reads the central directory from
    size: int  # its bytes, as the end record declares
    entries: int  # as the end record declares


def end_record(fileobj: BinaryIO) -> Directory | None:
    """Where the central directory is, as `zipfile` will find it; None if there is no end
    record (zipfile then refuses the file itself)."""
    fileobj.seek(0, 2)
    filesize = fileobj.tell()
    if filesize < END.size:
        return None
    fileobj.seek(filesize - END.size)
    data = fileobj.read(END.size)
    if data[:4] == END_SIGNATURE and data[-2:] == b"\0\0":
        return _with_zip64(fileobj, filesize - END.size, END.unpack(data))
    search_from = max(filesize - MAX_COMMENT - END.size, 0)
    fileobj.seek(search_from)
    data = fileobj.read()
    found = data.rfind(END_SIGNATURE)
    if found < 0 or len(data) - found < END.size:
        return None
    return _with_zip64(fileobj, search_from + found, END.unpack(data[found : found + END.size]))


def _with_zip64(fileobj: BinaryIO, location: int, record: tuple[int, ...]) -> Directory:
    """The ZIP64 end record, when its locator sits just before the end record, overrides
    the end record's count, size and offset (zipfile reads it from just before the locator,
    whatever offset the locator states)."""
    entries, size = record[4], record[5]
    start = location - size
    if location >= LOCATOR.size + END64.size:
        fileobj.seek(location - LOCATOR.size)
        locator = LOCATOR.unpack(fileobj.read(LOCATOR.size))
        if locator[0] == LOCATOR_SIGNATURE:
            if locator[1] != 0 or locator[3] > 1:
                raise InputRejected("the zip spans several disks")
            fileobj.seek(location - LOCATOR.size - END64.size)
            zip64 = END64.unpack(fileobj.read(END64.size))
            if zip64[0] == END64_SIGNATURE:
                entries, size = zip64[7], zip64[8]
                start = location - LOCATOR.size - END64.size - size
    return Directory(start=start, size=size, entries=entries)


def check_directory(fileobj: BinaryIO, max_entries: int, max_path_bytes: int) -> None:
    """Refuse a zip whose central directory declares or holds more than `max_entries`
    entries, or is larger than that many records may be (MEAN_RECORD each, and room for
    one path of `max_path_bytes`). Reads the directory once, a chunk at a time; keeps
    nothing."""
    directory = end_record(fileobj)
    if directory is None:
        return
    if directory.entries > max_entries:
        raise InputRejected(
            f"the zip has {directory.entries} entries, above the limit of {max_entries}"
        )
    most = max_entries * MEAN_RECORD + RECORD.size + max_path_bytes + MAX_RECORD_EXTRA
    if directory.size > most:
        raise InputRejected(
            f"the zip's central directory is {directory.size} bytes, more than its "
            f"{max_entries} entries may take ({most})"
        )
    if directory.start < 0:
        return  # zipfile refuses it: "Bad offset for central directory"
    records = _count_records(fileobj, directory, max_entries + 1)
    if records > max_entries:
        raise InputRejected(f"the zip has more than {max_entries} entries, the limit")


def _count_records(fileobj: BinaryIO, directory: Directory, stop_at: int) -> int:
    """The records in the directory's bytes, counted up to `stop_at`. A malformed record
    ends the count: zipfile refuses the directory then."""
    fileobj.seek(directory.start)
    reader = _Chunks(fileobj, directory.size)
    count = 0
    while count < stop_at:
        fixed = reader.take(RECORD.size)
        if fixed is None or fixed[:4] != RECORD_SIGNATURE:
            return count
        fields = RECORD.unpack(fixed)
        count += 1
        if reader.take(fields[12] + fields[13] + fields[14]) is None:  # name, extra, comment
            return count
    return count


class _Chunks:
    """The next `size` bytes of a file, taken a few at a time, read a chunk at a time."""

    def __init__(self, fileobj: BinaryIO, size: int) -> None:
        self.fileobj, self.left = fileobj, size
        self.buffer, self.at = b"", 0

    def take(self, count: int) -> bytes | None:
        """The next `count` bytes, or None at the end."""
        while len(self.buffer) - self.at < count:
            chunk = self.fileobj.read(min(READ_CHUNK, self.left)) if self.left > 0 else b""
            if not chunk:
                return None
            self.left -= len(chunk)
            self.buffer, self.at = self.buffer[self.at :] + chunk, 0
        taken = self.buffer[self.at : self.at + count]
        self.at += count
        return taken
