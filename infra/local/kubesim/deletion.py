"""What deleting an object means: propagation to dependents, graceful pod termination,
finalizers, PVC protection and namespace termination.

Called with the store lock held; the garbage collector (gc.py), the volume controllers
(storage.py), the Job controller and the kubelet finish what is left pending here
(foreground deletion, protected claims, tracked and terminating pods).
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


def _controlled_by(obj: Obj, owner: Obj) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == meta(owner)["uid"]
        for ref in meta(obj).get("ownerReferences") or []
    )


def pod_is_shut_down(pod: Obj) -> bool:
    """podIsShutDown (pvc_protection_controller.go): deleted with a zero grace period, by
    the kubelet once it is done with the pod, or by a force deletion."""
    m = meta(pod)
    return bool(m.get("deletionTimestamp")) and m.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    """podUsesPVC (pkg/controller/volume/pvcprotection/pvc_protection_controller.go): only a
    scheduled pod holds a claim, whatever its phase (a Succeeded or Failed pod still holds
    it until the pod object is gone); a generic ephemeral volume holds the claim made for
    it (`<pod>-<volume>`, controlled by the pod) until the pod is shut down."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or meta(pod).get("namespace") != meta(claim).get("namespace"):
        return False
    name = meta(claim)["name"]
    for volume in spec.get("volumes") or []:
        if (volume.get("persistentVolumeClaim") or {}).get("claimName") == name:
            return True
        if (
            volume.get("ephemeral") is not None
            and f"{meta(pod)['name']}-{volume.get('name')}" == name
            and _controlled_by(claim, pod)
            and not pod_is_shut_down(pod)
        ):
            return True
    return False


def claim_in_use(store: Store, claim: Obj) -> bool:
    pods = store.raw_items(r.PODS, meta(claim)["namespace"])
    return any(pod_uses_claim(pod, claim) for pod in pods)


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
            return False, _shorten_grace(store, clock, obj, pod_grace(obj, options))
        return False, copy.deepcopy(obj)
    policy = options.propagation or default_policy(rt)
    if policy == "Orphan":
        _orphan_dependents(store, obj)
    elif policy == "Foreground" and store.dependents(m["uid"], m.get("namespace", "")):
        return False, _mark(store, rt, obj, finalizer=FOREGROUND)
    if rt is r.PODS:
        return _delete_pod(store, clock, obj, options)
    if m.get("finalizers"):
        # A claim keeps its kubernetes.io/pvc-protection finalizer until the protection
        # controller (storage.py) sees no pod using it; any finalizer holds an object.
        return False, _mark(store, rt, obj)
    return True, store.remove(rt, obj)


def pod_grace(pod: Obj, options: Options) -> int:
    """podStrategy.CheckGracefulDelete (pkg/registry/core/pod/strategy.go): the request's
    grace period, else the pod's terminationGracePeriodSeconds; 0 for a pod that is not
    scheduled yet or already terminal; a negative one means 1."""
    spec = pod.get("spec") or {}
    grace = options.grace
    if grace is None:
        grace = int(spec.get("terminationGracePeriodSeconds") or 0)
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in TERMINAL:
        grace = 0
    return 1 if grace < 0 else grace


def _deletion_time(clock: Clock, grace: int) -> str:
    """rest.BeforeDelete sets deletionTimestamp to the moment the grace period ends (in
    wall time here: a simulated grace period lasts grace / speed seconds)."""
    return now_rfc3339(time.time() + clock.wall(grace))


def _shorten_grace(store: Store, clock: Clock, pod: Obj, grace: int) -> Obj:
    """A second delete may only shorten the grace period (rest.BeforeDelete)."""
    m = meta(pod)
    if grace >= int(m.get("deletionGracePeriodSeconds") or 0):
        return copy.deepcopy(pod)
    deadline = time.monotonic() + clock.wall(grace)
    store.grace_deadlines[m["uid"]] = min(store.grace_deadlines.get(m["uid"], deadline), deadline)
    updated = copy.deepcopy(pod)
    meta(updated)["deletionTimestamp"] = _deletion_time(clock, grace)
    meta(updated)["deletionGracePeriodSeconds"] = grace
    return store.save(r.PODS, updated)


def _delete_pod(store: Store, clock: Clock, pod: Obj, options: Options) -> tuple[bool, Obj]:
    grace = pod_grace(pod, options)
    if grace == 0 and not meta(pod).get("finalizers"):
        return True, store.remove(r.PODS, pod)
    updated = copy.deepcopy(pod)
    m = meta(updated)
    m["deletionTimestamp"] = _deletion_time(clock, grace)
    m["deletionGracePeriodSeconds"] = grace
    store.grace_deadlines[m["uid"]] = time.monotonic() + clock.wall(grace)
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
