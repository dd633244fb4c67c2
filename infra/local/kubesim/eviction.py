"""POST pods/NAME/eviction: the Eviction API (policy/v1 Eviction), what `kubectl drain`
and cluster autoscalers use to take a pod off its node.

Modelled on pkg/registry/core/pod/storage/eviction.go (EvictionREST.Create and
addConditionAndDeletePod, 1.31-1.33). kubesim serves no PodDisruptionBudgets, so every
eviction is allowed, which is what the real server decides for a pod no budget covers:

- The body must be an Eviction (policy/v1 or policy/v1beta1) named as the URL names the
  pod: 400 BadRequest otherwise ("name in URL does not match name in Eviction object").
- A missing pod is a 404 (`pods "NAME" not found`).
- Unless it is a dry run, the pod first gets the DisruptionTarget condition (status True,
  reason EvictionByEvictionAPI, message "Eviction API: evicting"), checked against the
  deleteOptions' preconditions (409 Conflict naming `Pod "NAME"`), then it is deleted with
  the deleteOptions: their gracePeriodSeconds, else the pod's terminationGracePeriodSeconds
  (0 for a pod not yet scheduled or already terminal, which are deleted at once: canIgnorePDB
  evicts those directly). This happens for a terminal pod too.
- Success is a Status {"status": "Success"} with code 201, as the create handler
  (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go) fills in a Status without
  a code.
"""

from __future__ import annotations

import copy
from typing import Any

from infra.local.kubesim import deletion, podstatus
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock
from infra.local.kubesim.status import ApiError, bad_request, not_found
from infra.local.kubesim.store import Obj, Store, meta

VERSIONS = ("policy/v1", "policy/v1beta1")
REASON = "EvictionByEvictionAPI"
MESSAGE = "Eviction API: evicting"


def _options(body: Obj, query: dict[str, str]) -> deletion.Options:
    raw = body.get("deleteOptions") or {}
    if not isinstance(raw, dict):
        raise bad_request("deleteOptions must be an object")
    policy = raw.get("propagationPolicy")
    if policy is not None and policy not in deletion.POLICIES:
        raise bad_request(
            f'DeleteOptions.PropagationPolicy: Unsupported value: "{policy}": supported values: '
            '"Foreground", "Background", "Orphan", "nil"'
        )
    grace = raw.get("gracePeriodSeconds")
    pre = raw.get("preconditions") or {}
    return deletion.Options(
        propagation=policy,
        grace=int(grace) if grace is not None else None,
        uid=pre.get("uid"),
        resource_version=pre.get("resourceVersion"),
        dry_run=bool(raw.get("dryRun") or query.get("dryRun")),
    )


def _conflict(name: str, detail: str) -> ApiError:
    """errors.NewConflict(schema.GroupResource{Resource: "Pod"}, name, err)."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on Pod "{name}": {detail}',
        {"name": name, "kind": "Pod"},
    )


def _check_preconditions(pod: Obj, options: deletion.Options) -> None:
    """getLatestPod in addConditionAndDeletePod."""
    m = meta(pod)
    if options.uid and options.uid != m["uid"]:
        raise _conflict(
            m["name"],
            f"the UID in the precondition ({options.uid}) does not match the UID in record "
            f"({m['uid']}). The object might have been deleted and then recreated",
        )
    if options.resource_version and options.resource_version != m["resourceVersion"]:
        raise _conflict(
            m["name"],
            f"the ResourceVersion in the precondition ({options.resource_version}) does not "
            f"match the ResourceVersion in record ({m['resourceVersion']}). The object might "
            "have been modified",
        )


def evict(
    store: Store, clock: Clock, namespace: str, name: str, body: Obj, query: dict[str, str]
) -> dict[str, Any]:
    kind, version = body.get("kind"), body.get("apiVersion")
    if kind and kind != "Eviction":
        raise bad_request(f"the object provided is unrecognized (must be of type Eviction): {kind}")
    if version and version not in VERSIONS:
        raise bad_request(
            f"the API version in the data ({version}) does not match the expected API version "
            "(policy/v1)"
        )
    bmeta = body.get("metadata") or {}
    if bmeta.get("namespace") and bmeta["namespace"] != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if bmeta.get("name") != name:
        raise bad_request("name in URL does not match name in Eviction object")
    options = _options(body, query)
    with store.lock:
        pod = store.raw(r.PODS, namespace, name)
        if pod is None:
            raise not_found(r.PODS, name)
        if not options.dry_run:
            _check_preconditions(pod, options)
            updated = copy.deepcopy(pod)
            podstatus.set_condition(
                updated.setdefault("status", {}), "DisruptionTarget", True, REASON, MESSAGE
            )
            if updated != pod:
                pod = store.save(r.PODS, updated)
                pod = store.raw(r.PODS, namespace, name) or pod
            if options.resource_version:
                # "bump the resource version, since we are the one who modified it"
                options = deletion.Options(
                    propagation=options.propagation,
                    grace=options.grace,
                    uid=options.uid,
                    resource_version=meta(pod)["resourceVersion"],
                )
        deletion.delete(store, clock, r.PODS, pod, options)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
