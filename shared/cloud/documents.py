"""Firestore document events (`google.cloud.firestore.document.v1.*`) as Eventarc delivers
them: `application/protobuf` data, a `google.events.cloud.firestore.v1.DocumentEventData`
whose `value` is the document after the write (absent for a delete) and `old_value` the one
before (absent for a create). Decoded with the `google-events` package into the plain
values the Firestore client hands out (`snapshot.to_dict()`), which JobStore reads.

`encode_event` is the reverse, for the local cloud's stand-in of the trigger and the tests.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

Fields = dict[str, Any]


def decode_event(data: bytes) -> tuple[Fields | None, Fields | None]:
    """(the document before the write, after it) from a DocumentEventData; None for a side
    the event has not (a create has no old value, a delete no new one)."""
    from google.events.cloud.firestore import DocumentEventData

    event = DocumentEventData.pb().FromString(data)
    old = _fields(event.old_value.fields) if event.HasField("old_value") else None
    new = _fields(event.value.fields) if event.HasField("value") else None
    return old, new


def _fields(fields: Mapping[str, Any]) -> Fields:
    return {name: _value(value) for name, value in fields.items()}


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind is None or kind == "null_value":
        return None
    if kind == "timestamp_value":
        return value.timestamp_value.ToDatetime(tzinfo=datetime.UTC)
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "map_value":
        return _fields(value.map_value.fields)
    if kind == "geo_point_value":
        point = value.geo_point_value
        return {"latitude": point.latitude, "longitude": point.longitude}
    return getattr(value, kind)  # boolean, integer, double, string, bytes, reference


def encode_event(
    name: str,
    old: Fields | None,
    new: Fields | None,
    *,
    old_times: tuple[datetime.datetime, datetime.datetime] | None = None,
    new_times: tuple[datetime.datetime, datetime.datetime] | None = None,
) -> bytes:
    """The serialized DocumentEventData of a write of the document `name`
    (projects/P/databases/D/documents/C/ID); `*_times` are (create_time, update_time)."""
    from google.events.cloud.firestore import DocumentEventData

    event = DocumentEventData.pb()()
    for side, fields, times in ((event.old_value, old, old_times), (event.value, new, new_times)):
        if fields is None:
            continue
        side.name = name
        for key, item in fields.items():
            _encode(side.fields[key], item)
        if times is not None:
            side.create_time.FromDatetime(times[0])
            side.update_time.FromDatetime(times[1])
    return bytes(event.SerializeToString())


def _encode(target: Any, value: Any) -> None:
    if value is None:
        target.null_value = 0
    elif isinstance(value, bool):
        target.boolean_value = value
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, datetime.datetime):
        target.timestamp_value.FromDatetime(value)
    elif isinstance(value, list | tuple):
        target.array_value.SetInParent()
        for item in value:
            _encode(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.map_value.SetInParent()
        for key, item in value.items():
            _encode(target.map_value.fields[key], item)
    else:
        raise TypeError(f"no Firestore value for {type(value).__name__}")
