"""The in-memory object store: one lock, a global resourceVersion counter, and a bounded
log of changes that watches replay.

Everything that reads or writes objects does it under `store.lock` and never runs a
process or sleeps while holding it; callers get deep copies, never the stored dicts.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.local.kubesim.resources import ALL, ResourceType

Obj = dict[str, Any]
EVENT_LOG_SIZE = 20000


@dataclass(frozen=True)
class Change:
    rv: int
    plural: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


def meta(obj: Obj) -> dict[str, Any]:
    result: dict[str, Any] = obj.setdefault("metadata", {})
    return result


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._rv = 0
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {rt.plural: {} for rt in ALL}
        self._by_uid: dict[str, tuple[str, str, str]] = {}
        self._log: deque[Change] = deque(maxlen=EVENT_LOG_SIZE)
        self._on_remove: list[Callable[[ResourceType, Obj], None]] = []
        # Wall-clock deadlines (time.monotonic) for graceful pod deletion, by pod uid.
        self.grace_deadlines: dict[str, float] = {}

    @property
    def resource_version(self) -> int:
        return self._rv

    def on_remove(self, hook: Callable[[ResourceType, Obj], None]) -> None:
        """Run `hook(rt, obj)` under the lock whenever an object leaves the store."""
        self._on_remove.append(hook)

    # -- reads (call under the lock; results are the stored dicts unless copied) ---------

    def raw(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        return self._objects[rt.plural].get((namespace if rt.namespaced else "", name))

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self.raw(rt, namespace, name)
            return copy.deepcopy(obj) if obj is not None else None

    def raw_items(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        after: tuple[str, str] | None = None,
    ) -> list[Obj]:
        """Stored objects in (namespace, name) order, in one namespace or all; only those
        whose key sorts after `after` (a list's continue token) when given."""
        table = self._objects[rt.plural]
        keys = sorted(k for k in table if namespace is None or k[0] == namespace)
        if after is not None:
            keys = keys[bisect.bisect_right(keys, after) :]
        return [table[k] for k in keys]

    def items(self, rt: ResourceType, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return copy.deepcopy(self.raw_items(rt, namespace))

    def by_uid(self, uid: str) -> tuple[str, str, str] | None:
        return self._by_uid.get(uid)

    def dependents(self, owner_uid: str, namespace: str) -> list[tuple[ResourceType, Obj]]:
        found = []
        for rt in ALL:
            if not rt.namespaced:
                continue
            for obj in self.raw_items(rt, namespace):
                refs = meta(obj).get("ownerReferences") or []
                if any(ref.get("uid") == owner_uid for ref in refs):
                    found.append((rt, obj))
        return found

    # -- writes ---------------------------------------------------------------------------

    def _record(self, rt: ResourceType, kind: str, obj: Obj) -> None:
        self._log.append(Change(self._rv, rt.plural, kind, copy.deepcopy(obj)))
        self.changed.notify_all()

    def save(self, rt: ResourceType, obj: Obj, *, created: bool = False) -> Obj:
        """Store `obj` (taking ownership of it) with a new resourceVersion; returns a copy."""
        with self.lock:
            self._rv += 1
            m = meta(obj)
            m["resourceVersion"] = str(self._rv)
            key = (m.get("namespace", "") if rt.namespaced else "", m["name"])
            self._objects[rt.plural][key] = obj
            self._by_uid[m["uid"]] = (rt.plural, key[0], key[1])
            self._record(rt, "ADDED" if created else "MODIFIED", obj)
            return copy.deepcopy(obj)

    def remove(self, rt: ResourceType, obj: Obj) -> Obj:
        """Take `obj` out of the store for good; returns its last state."""
        with self.lock:
            m = meta(obj)
            key = (m.get("namespace", "") if rt.namespaced else "", m["name"])
            stored = self._objects[rt.plural].pop(key, None)
            if stored is None:
                return copy.deepcopy(obj)
            self._by_uid.pop(meta(stored).get("uid", ""), None)
            self.grace_deadlines.pop(meta(stored).get("uid", ""), None)
            self._rv += 1
            meta(stored)["resourceVersion"] = str(self._rv)
            self._record(rt, "DELETED", stored)
            for hook in self._on_remove:
                hook(rt, stored)
            return copy.deepcopy(stored)

    def mutate(
        self, rt: ResourceType, namespace: str, name: str, change: Callable[[Obj], None]
    ) -> Obj | None:
        """Apply `change` to a copy of the object; save it if anything changed.

        Returns the object as stored afterwards, or None when it does not exist.
        """
        with self.lock:
            current = self.raw(rt, namespace, name)
            if current is None:
                return None
            updated = copy.deepcopy(current)
            change(updated)
            if updated == current:
                return copy.deepcopy(current)
            return self.save(rt, updated)

    # -- the change log, for watches --------------------------------------------------------

    def changes_after(self, rv: int) -> list[Change] | None:
        """Changes with a resourceVersion above `rv`, or None if the log no longer has them."""
        with self.lock:
            full = len(self._log) == self._log.maxlen
            if full and rv < self._log[0].rv - 1:
                return None
            out: list[Change] = []
            for change in reversed(self._log):
                if change.rv <= rv:
                    break
                out.append(change)
            out.reverse()
            return out
