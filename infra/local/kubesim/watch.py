"""Watches: a stream of ADDED/MODIFIED/DELETED events, one JSON object a line.

Without a resourceVersion (or with "0") a watch starts with an ADDED event per existing
object, as the API server does; with one, it replays the changes after it from the
store's change log, or answers with a 410 Expired event when the log no longer has them.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from infra.local.kubesim.store import Store

DEFAULT_TIMEOUT = 1800.0  # seconds, when the client sets no timeoutSeconds


def events(
    store: Store,
    rt: ResourceType,
    namespace: str | None,
    query: dict[str, str],
    *,
    stopped: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    labels = parse_label_selector(query.get("labelSelector"))
    fields = parse_field_selector(query.get("fieldSelector"), rt.plural)
    timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    deadline = time.monotonic() + timeout

    def wanted(obj: dict[str, Any]) -> bool:
        m = obj.get("metadata") or {}
        if namespace is not None and rt.namespaced and m.get("namespace") != namespace:
            return False
        return labels_match(labels, obj) and fields_match(fields, obj)

    def line(kind: str, obj: dict[str, Any]) -> bytes:
        obj = dict(obj, kind=rt.kind, apiVersion=rt.api_version)
        return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

    start = query.get("resourceVersion") or ""
    initial: list[dict[str, Any]] = []
    with store.lock:
        if start in ("", "0"):
            initial = [copy.deepcopy(o) for o in store.raw_items(rt, namespace) if wanted(o)]
            last = store.resource_version
        else:
            try:
                last = int(start)
            except ValueError:
                last = -1
    if last < 0:
        yield _expired(f"invalid resourceVersion {start!r}", 400, "BadRequest")
        return
    for obj in initial:
        yield line("ADDED", obj)
    while time.monotonic() < deadline and not stopped():
        changes = store.changes_after(last)
        if changes is None:
            yield _expired(f"too old resource version: {last}", 410, "Expired")
            return
        if not changes:
            with store.changed:
                if store.resource_version == last:
                    store.changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
            continue
        for change in changes:
            last = change.rv
            if change.plural == rt.plural and wanted(change.obj):
                yield line(change.type, change.obj)


def _expired(message: str, code: int, reason: str) -> bytes:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
