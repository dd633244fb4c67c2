"""The volume controllers of kube-controller-manager: the ephemeral volume controller and
the PVC protection controller.

- Ephemeral volumes (pkg/controller/volume/ephemeral/controller.go, handleVolume): for
  each volume of a pod that is not being deleted whose source is `ephemeral`, a claim
  named `<pod name>-<volume name>` is created from `volumeClaimTemplate` (its labels,
  annotations and spec), with the pod as its controlling owner (blockOwnerDeletion), so
  the garbage collector deletes it with the pod. A claim of that name that the pod does
  not control is left alone: the pod cannot be scheduled (volumes.py).
- PVC protection (pkg/controller/volume/pvcprotection/pvc_protection_controller.go,
  processPVC): every claim carries `kubernetes.io/pvc-protection` (added at creation, as
  the admission plugin does, and re-added if it goes missing); a deleted claim keeps it,
  Terminating, while a pod uses it (deletion.pod_uses_claim), and loses it once none does.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from infra.local.kubesim import deletion
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, log
from infra.local.kubesim.loop import StoreLoop
from infra.local.kubesim.registry import Registry
from infra.local.kubesim.status import ApiError
from infra.local.kubesim.store import Obj, Store, meta


def claim_body(pod: Obj, volume: dict[str, Any]) -> Obj:
    """The claim the ephemeral volume controller creates for one volume of a pod."""
    template = volume["ephemeral"].get("volumeClaimTemplate") or {}
    tmeta = template.get("metadata") or {}
    m = meta(pod)
    body: Obj = {
        "metadata": {
            "name": f"{m['name']}-{volume['name']}",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": m["name"],
                    "uid": m["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            body["metadata"][key] = dict(tmeta[key])
    return body


class VolumeControllers(StoreLoop):
    name = "volume controllers pass"
    full_pass = 0.2  # wall seconds: a pass even when nothing changed

    def __init__(self, store: Store, clock: Clock, data_dir: Path) -> None:
        super().__init__(store, clock)
        self.registry = Registry(store, clock, data_dir)
        self._refused: set[tuple[str, str]] = set()  # (pod uid, volume): logged once

    def pass_once(self, now: float) -> None:
        for pod in list(self.store.raw_items(r.PODS)):
            if meta(pod).get("deletionTimestamp"):
                continue  # "Ignore pods which are already getting deleted."
            for volume in (pod.get("spec") or {}).get("volumes") or []:
                if volume.get("ephemeral") is not None:
                    self._ensure_claim(pod, volume)
        for claim in list(self.store.raw_items(r.PVCS)):
            self._protect(claim)

    def _ensure_claim(self, pod: Obj, volume: dict[str, Any]) -> None:
        m = meta(pod)
        name = f"{m['name']}-{volume['name']}"
        if self.store.raw(r.PVCS, m["namespace"], name) is not None:
            return  # made already, or someone else's claim (the pod stays unschedulable)
        try:
            self.registry.create(r.PVCS, m["namespace"], claim_body(pod, volume))
        except ApiError as error:
            key = (m["uid"], volume["name"])
            if key not in self._refused:
                self._refused.add(key)
                log("WARNING", f"ephemeral volume {volume['name']}: create PVC {name}: {error}")

    def _protect(self, claim: Obj) -> None:
        m = meta(claim)
        finalizers = list(m.get("finalizers") or [])
        if m.get("deletionTimestamp"):
            if deletion.PVC_PROTECTION in finalizers and not deletion.claim_in_use(
                self.store, claim
            ):
                self._set_finalizers(claim, [f for f in finalizers if f != deletion.PVC_PROTECTION])
        elif deletion.PVC_PROTECTION not in finalizers:
            self._set_finalizers(claim, [*finalizers, deletion.PVC_PROTECTION])

    def _set_finalizers(self, claim: Obj, finalizers: list[str]) -> None:
        def change(c: Obj) -> None:
            if finalizers:
                meta(c)["finalizers"] = finalizers
            else:
                meta(c).pop("finalizers", None)

        m = meta(claim)
        if self.store.mutate(r.PVCS, m["namespace"], m["name"], change) is not None:
            current = self.store.raw(r.PVCS, m["namespace"], m["name"])
            if current is not None:
                deletion.finish_if_unblocked(self.store, r.PVCS, current)
