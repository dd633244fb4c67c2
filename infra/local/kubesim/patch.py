"""PATCH bodies: JSON merge patch (RFC 7386), an approximation of strategic merge patch,
and JSON patch (RFC 6902).

Strategic merge here is a merge patch in which lists of objects with a `name` (containers,
env, volumes, ...) or `type` (conditions) are merged by that key, and `$patch: delete`
removes the entry; the other directives of the real one are not supported.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from infra.local.kubesim.status import ApiError, bad_request

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(items: list[Any]) -> str | None:
    if items and all(isinstance(i, dict) for i in items):
        for key in ("name", "type", "uid", "mountPath"):
            if all(key in i for i in items):
                return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    if isinstance(patch, list) and isinstance(target, list):
        key = _merge_key(patch)
        if key is None or (target and _merge_key(target) != key):
            return copy.deepcopy(patch)
        result = [copy.deepcopy(t) for t in target]
        for item in patch:
            index = next((i for i, t in enumerate(result) if t.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    result.pop(index)
            elif index is None:
                result.append(copy.deepcopy(item))
            else:
                result[index] = strategic_merge(result[index], item)
        return result
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = strategic_merge(merged.get(key), value)
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent, last = _parent(doc, parts)
    removed = parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)
    return removed


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _get(doc, parts)
                _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "test":
                if _get(doc, parts) != op["value"]:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an "
                        f"error in our request: testing value {op['path']} failed",
                    )
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = copy.deepcopy(_get(doc, source))
                if kind == "move":
                    _remove(doc, source)
                doc = _add(doc, parts, value)
            else:
                raise bad_request(f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our "
                f"request: {type(error).__name__} applying {json.dumps(op)}",
            ) from error
    return doc


def apply(content_type: str, current: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The patched object; 415 for patch types kubesim does not speak."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype not in (MERGE, STRATEGIC, JSON_PATCH):
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON_PATCH}, {MERGE}, {STRATEGIC}",
        )
    try:
        patch = json.loads(body or b"null")
    except ValueError as error:
        raise bad_request(f"error decoding patch: {error}") from error
    if ctype == JSON_PATCH:
        result = json_patch(current, patch)
    elif not isinstance(patch, dict):
        raise bad_request("error decoding patch: the patch must be a JSON object")
    elif ctype == MERGE:
        result = merge_patch(current, patch)
    else:
        result = strategic_merge(current, patch)
    if not isinstance(result, dict):
        raise bad_request("the patch did not produce an object")
    return result
