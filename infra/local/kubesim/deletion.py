"""What deleting an object means: propagation to dependents, graceful pod termination,
finalizers, PVC protection and namespace termination.

Called with the store lock held; the garbage collector (gc.py) and the kubelet finish what
is left pending here (foreground deletion, terminating pods, protected claims).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, now_rfc3339
from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.status import ApiError
from infra.local.kubesim.store import Obj, Store, meta

FOREGROUND = "foregroundDeletion"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
POLICIES = ("Orphan", "Background", "Foreground")
TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Options:
    propagation: str | None = None  # None: the kind's default (Orphan for batch/v1 Jobs)
    grace: int | None = None  # None: the pod's terminationGracePeriodSeconds
    uid: str | None = None  # preconditions
    resource_version: str | None = None
    dry_run: bool = False


def default_policy(rt: ResourceType) -> str:
    """batch/v1 Jobs orphan their pods by default, for backward compatibility, exactly as
    the real API server does (jobStrategy.DefaultGarbageCollectionPolicy); kubectl and the
    product ask for Background explicitly."""
    return "Orphan" if rt is r.JOBS else "Background"


def claim_in_use(store: Store, namespace: str, claim: str) -> bool:
    for pod in store.raw_items(r.PODS, namespace):
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                return True
    return False


def _orphan_dependents(store: Store, obj: Obj) -> None:
    uid = meta(obj)["uid"]
    for rt, dependent in store.dependents(uid, meta(obj).get("namespace", "")):
        updated = copy.deepcopy(dependent)
        refs = [ref for ref in meta(updated)["ownerReferences"] if ref.get("uid") != uid]
        if refs:
            meta(updated)["ownerReferences"] = refs
        else:
            meta(updated).pop("ownerReferences", None)
        store.save(rt, updated)


def _mark(store: Store, rt: ResourceType, obj: Obj, *, finalizer: str | None = None) -> Obj:
    updated = copy.deepcopy(obj)
    m = meta(updated)
    m.setdefault("deletionTimestamp", now_rfc3339())
    m.setdefault("deletionGracePeriodSeconds", 0)
    if finalizer and finalizer not in (m.get("finalizers") or []):
        m["finalizers"] = [*(m.get("finalizers") or []), finalizer]
    return store.save(rt, updated)


def _check_preconditions(rt: ResourceType, obj: Obj, options: Options) -> None:
    m = meta(obj)
    for label, wanted, actual in (
        ("UID", options.uid, m.get("uid")),
        ("ResourceVersion", options.resource_version, m.get("resourceVersion")),
    ):
        if wanted and wanted != actual:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.qualified} "{m["name"]}": Precondition '
                f"failed: {label} in precondition: {wanted}, {label} in object meta: {actual}",
                {"name": m["name"], "kind": rt.plural, **({"group": rt.group} if rt.group else {})},
            )


def delete(
    store: Store, clock: Clock, rt: ResourceType, obj: Obj, options: Options
) -> tuple[bool, Obj]:
    """Delete `obj` (a stored dict); returns (gone now, its state afterwards)."""
    _check_preconditions(rt, obj, options)
    m = meta(obj)
    if options.dry_run:
        return True, copy.deepcopy(obj)
    if rt is r.NAMESPACES:
        if m["name"] in PROTECTED_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{m["name"]}" is forbidden: this namespace may not be deleted',
                {"name": m["name"], "kind": "namespaces"},
            )
        updated = copy.deepcopy(obj)
        meta(updated).setdefault("deletionTimestamp", now_rfc3339())
        updated.setdefault("status", {})["phase"] = "Terminating"
        return False, store.save(rt, updated)
    if m.get("deletionTimestamp"):
        if rt is r.PODS and options.grace is not None:
            deadline = time.monotonic() + clock.wall(options.grace)
            uid = m["uid"]
            store.grace_deadlines[uid] = min(store.grace_deadlines.get(uid, deadline), deadline)
        return False, copy.deepcopy(obj)
    policy = options.propagation or default_policy(rt)
    if policy == "Orphan":
        _orphan_dependents(store, obj)
    elif policy == "Foreground" and store.dependents(m["uid"], m.get("namespace", "")):
        return False, _mark(store, rt, obj, finalizer=FOREGROUND)
    if rt is r.PVCS and claim_in_use(store, m["namespace"], m["name"]):
        return False, _mark(store, rt, obj, finalizer=PVC_PROTECTION)
    if rt is r.PODS:
        return _delete_pod(store, clock, obj, options)
    others = [f for f in m.get("finalizers") or [] if f != PVC_PROTECTION]
    if others:
        return False, _mark(store, rt, obj)
    return True, store.remove(rt, obj)


def _delete_pod(store: Store, clock: Clock, pod: Obj, options: Options) -> tuple[bool, Obj]:
    spec = pod.get("spec") or {}
    grace = (
        options.grace
        if options.grace is not None
        else spec.get("terminationGracePeriodSeconds", 30)
    )
    status = pod.get("status") or {}
    started = bool(status.get("startTime"))
    if (grace <= 0 or not started or status.get("phase") in TERMINAL) and not meta(pod).get(
        "finalizers"
    ):
        return True, store.remove(r.PODS, pod)
    updated = copy.deepcopy(pod)
    m = meta(updated)
    m["deletionTimestamp"] = now_rfc3339()
    m["deletionGracePeriodSeconds"] = max(0, int(grace))
    store.grace_deadlines[m["uid"]] = time.monotonic() + clock.wall(max(0, grace))
    return False, store.save(r.PODS, updated)


def finish_if_unblocked(store: Store, rt: ResourceType, obj: Obj) -> bool:
    """Remove an object marked for deletion once no finalizer holds it; True if removed."""
    m = meta(obj)
    if not m.get("deletionTimestamp") or m.get("finalizers") or rt is r.NAMESPACES:
        return False
    if rt is r.PODS and store.by_uid(m["uid"]) is not None and m["uid"] in store.grace_deadlines:
        return False  # the kubelet removes a terminating pod once its containers stopped
    store.remove(rt, obj)
    return True
