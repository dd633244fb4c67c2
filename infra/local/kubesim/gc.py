"""The garbage collector and the namespace controller: dependents of deleted owners
(Background), owners waiting for their dependents (Foreground), and namespaces being
terminated. Claims protected while a pod uses them are released in storage.py.
"""

from __future__ import annotations

import copy

from infra.local.kubesim import deletion
from infra.local.kubesim import resources as r
from infra.local.kubesim.loop import StoreLoop
from infra.local.kubesim.store import Obj, meta

NAMESPACED = [rt for rt in r.ALL if rt.namespaced]


class GarbageCollector(StoreLoop):
    name = "garbage collector pass"
    full_pass = 0.2  # wall seconds: a pass even when nothing changed

    def pass_once(self, now: float) -> None:
        for ns in list(self.store.raw_items(r.NAMESPACES)):
            if meta(ns).get("deletionTimestamp"):
                self._terminate_namespace(ns)
        for rt in NAMESPACED:
            for obj in list(self.store.raw_items(rt)):
                if self.store.by_uid(meta(obj)["uid"]) is None:
                    continue  # removed earlier in this pass
                self._collect(rt, obj)

    def _delete(self, rt: r.ResourceType, obj: Obj, grace: int | None = None) -> None:
        if meta(obj).get("deletionTimestamp") and not (rt is r.PODS and grace == 0):
            return
        options = deletion.Options(propagation="Background", grace=grace)
        deletion.delete(self.store, self.clock, rt, obj, options)

    def _collect(self, rt: r.ResourceType, obj: Obj) -> None:
        m = meta(obj)
        refs = m.get("ownerReferences") or []
        if refs and not m.get("deletionTimestamp"):
            if all(self.store.by_uid(ref.get("uid", "")) is None for ref in refs):
                self._delete(rt, obj)
                return
        if deletion.FOREGROUND in (m.get("finalizers") or []):
            dependents = self.store.dependents(m["uid"], m["namespace"])
            for drt, dependent in dependents:
                self._delete(drt, dependent)
            if not dependents:
                self._drop_finalizer(rt, obj, deletion.FOREGROUND)

    def _drop_finalizer(self, rt: r.ResourceType, obj: Obj, finalizer: str) -> None:
        updated = copy.deepcopy(obj)
        remaining = [f for f in meta(updated).get("finalizers") or [] if f != finalizer]
        if remaining:
            meta(updated)["finalizers"] = remaining
        else:
            meta(updated).pop("finalizers", None)
        saved = self.store.save(rt, updated)
        deletion.finish_if_unblocked(
            self.store,
            rt,
            self.store.raw(rt, meta(saved)["namespace"], meta(saved)["name"]) or saved,
        )

    def _terminate_namespace(self, ns: Obj) -> None:
        """Delete everything in it (pods at once), then, once the finalizers of what is
        left have let go (claims, tracked pods), the namespace itself."""
        name = meta(ns)["name"]
        leftover = False
        for rt in NAMESPACED:
            for obj in list(self.store.raw_items(rt, name)):
                leftover = True
                if rt is r.PODS:
                    if meta(obj).get("deletionGracePeriodSeconds") != 0:
                        self._delete(rt, obj, grace=0)
                elif not meta(obj).get("deletionTimestamp"):
                    self._delete(rt, obj)
                else:
                    # Foreground deletion waits for dependents that are going anyway.
                    finalizers = [
                        f for f in meta(obj).get("finalizers") or [] if f != deletion.FOREGROUND
                    ]
                    if not finalizers:
                        self.store.remove(rt, obj)
        if not leftover:
            self.store.remove(r.NAMESPACES, ns)
