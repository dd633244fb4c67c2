"""Each account's share of the cluster, as Kueue enforces it.

An account is a ClusterQueue with its nominal quota of CPU, memory and pods on two resource
flavors, on-demand and Spot capacity, in one cohort per deployment (the jobs' namespace):
what one account leaves idle, another may borrow, and fair sharing divides what is
borrowed by each account's weight. Its jobs go to its LocalQueue (named as the account),
which every Job names in its `kueue.x-k8s.io/queue-name` label. Two queues are the
product's own: `default`, for jobs of no account, and `scheduled`, held, where a job with
`start_after` ahead waits until its time comes; neither name can be an account's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.errors import InvalidParameters
from shared.quantity import parse_quantity
from shared.quota import FLAVORS, ON_DEMAND, RESOURCES, SPOT, Quota, QuotaError, merged

KUEUE = "kueue.x-k8s.io"
VERSION = "v1beta2"
QUEUE_LABEL = f"{KUEUE}/queue-name"
NO_ACCOUNT = "default"  # the LocalQueue of jobs of no account
SCHEDULED = "scheduled"  # the held LocalQueue of jobs whose start time is ahead
RESERVED = frozenset({NO_ACCOUNT, SCHEDULED})
PART_OF = {"app.kubernetes.io/part-of": "kubernetes-task-runner"}
HASH_ANNOTATION = "kubernetes-task-runner/spec-hash"  # what was applied, to compare

# GKE labels each node with its provisioning model (GKE 1.26 and later); a Spot node pool
# may also be tainted cloud.google.com/gke-spot=true:NoSchedule.
PROVISIONING_LABEL = "cloud.google.com/gke-provisioning"
PROVISIONING = {ON_DEMAND: "standard", SPOT: "spot"}
SPOT_TAINT_KEY = "cloud.google.com/gke-spot"

MAX_WEIGHT = Decimal(1000)


@dataclass(frozen=True)
class Share:
    """An account's quota per flavor and resource, and its fair-sharing weight."""

    quota: Quota
    weight: Decimal = Decimal(1)
    queue: str = NO_ACCOUNT  # its LocalQueue: the account's id, or `default`

    def to_api(self) -> dict[str, Any]:
        quota = {flavor: dict(self.quota[flavor]) for flavor in FLAVORS}
        return {"quota": quota, "fair_share_weight": float(self.weight)}


@dataclass(frozen=True)
class Names:
    """Where a deployment's queues are: its namespace, which also names its cohort."""

    namespace: str

    def cluster_queue(self, queue: str) -> str:
        """`<namespace>.<queue>`: DNS labels both, so no two deployments' names meet."""
        return f"{self.namespace}.{queue}"

    @property
    def cohort(self) -> str:
        return self.namespace


def queue_of(account_id: str | None) -> str:
    """The LocalQueue a job of `account_id` (None: of no account) goes to."""
    return account_id if account_id is not None else NO_ACCOUNT


# -- validation --------------------------------------------------------------------------


def quota(value: Any, base: Quota) -> dict[str, dict[str, str]]:
    """`base` with what `value` gives (shared/quota.py), or InvalidParameters."""
    try:
        return merged(value, base)
    except QuotaError as error:
        raise InvalidParameters(data={error.where: error.message}) from None


def weight(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidParameters(data={"fair_share_weight": "Must be a number"})
    number = Decimal(str(value))
    if not 0 < number <= MAX_WEIGHT:
        raise InvalidParameters(
            data={"fair_share_weight": f"Must be more than 0 and at most {MAX_WEIGHT}"}
        )
    return number


# -- what Kueue is given -----------------------------------------------------------------


def flavors() -> list[dict[str, Any]]:
    """The two ResourceFlavors: nodes by GKE's provisioning label; Spot capacity's pods
    tolerate a Spot node pool's taint."""
    objects = []
    for flavor in FLAVORS:
        spec: dict[str, Any] = {"nodeLabels": {PROVISIONING_LABEL: PROVISIONING[flavor]}}
        if flavor == SPOT:
            spec["tolerations"] = [spot_toleration()]
        objects.append(_object("ResourceFlavor", {"name": flavor, "labels": PART_OF}, spec))
    return objects


def spot_toleration() -> dict[str, str]:
    """What lets a pod onto a Spot node pool tainted as GKE taints it."""
    return {"key": SPOT_TAINT_KEY, "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def cluster_queue(names: Names, share: Share) -> dict[str, Any]:
    """The account's ClusterQueue: its nominal quota, in the deployment's cohort, with its
    weight. No preemption: a job that runs is never stopped for another (it would start
    over); what an account lent comes back as the borrower's jobs finish. The queue of jobs
    of no account stands alone: its quota is neither lent nor borrowed."""
    spec: dict[str, Any] = {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": names.namespace},
        },
        "queueingStrategy": "BestEffortFIFO",
        "fairSharing": {"weight": str(share.weight)},
        "resourceGroups": [
            {
                "coveredResources": list(RESOURCES),
                "flavors": [
                    {
                        "name": flavor,
                        "resources": [
                            {"name": resource, "nominalQuota": share.quota[flavor][resource]}
                            for resource in RESOURCES
                        ],
                    }
                    for flavor in FLAVORS
                ],
            }
        ],
        "preemption": {"reclaimWithinCohort": "Never", "withinClusterQueue": "Never"},
    }
    if share.queue != NO_ACCOUNT:
        spec["cohortName"] = names.cohort
    meta = {"name": names.cluster_queue(share.queue), "labels": _labels(names)}
    return _hashed(_object("ClusterQueue", meta, spec))


def local_queue(names: Names, queue: str, *, held: bool = False) -> dict[str, Any]:
    """A LocalQueue in the namespace, of the ClusterQueue of the same name; `held` admits
    nothing (the queue where scheduled jobs wait for their time)."""
    target = NO_ACCOUNT if held else queue
    spec: dict[str, Any] = {"clusterQueue": names.cluster_queue(target)}
    if held:
        spec["stopPolicy"] = "Hold"
    meta = {"name": queue, "namespace": names.namespace, "labels": _labels(names)}
    return _hashed(_object("LocalQueue", meta, spec))


def queues_of(names: Names, share: Share) -> list[dict[str, Any]]:
    """An account's ClusterQueue and LocalQueue, in the order to apply them."""
    return [cluster_queue(names, share), local_queue(names, share.queue)]


def _labels(names: Names) -> dict[str, str]:
    return {**PART_OF, "kubernetes-task-runner/namespace": names.namespace}


def _object(kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{KUEUE}/{VERSION}", "kind": kind, "metadata": metadata, "spec": spec}


def _hashed(thing: dict[str, Any]) -> dict[str, Any]:
    """The object with a hash of its spec, which the sync compares to see what changed."""
    digest = hashlib.sha256(json.dumps(thing["spec"], sort_keys=True).encode()).hexdigest()
    thing["metadata"]["annotations"] = {HASH_ANNOTATION: digest[:16]}
    return thing


def applied_hash(thing: Mapping[str, Any]) -> str | None:
    annotations = (thing.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(HASH_ANNOTATION)
    return str(value) if value is not None else None


# -- what a job asks for, against what its account could ever get -------------------------


@dataclass(frozen=True)
class Demand:
    """A Job's workload as Kueue counts it: each pod's CPU and memory requests (the largest
    init container against the sum of the others, as the scheduler counts them), times
    its parallelism, all at once."""

    cpu: Decimal  # per pod
    memory: Decimal  # per pod, bytes
    pods: int
    flavors: tuple[str, ...]  # those it may use: Spot only, when it asks for Spot

    @property
    def total(self) -> dict[str, Decimal]:
        return {
            "cpu": self.cpu * self.pods,
            "memory": self.memory * self.pods,
            "pods": Decimal(self.pods),
        }


def demand(manifest: Mapping[str, Any]) -> Demand:
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    per_pod = {}
    for resource in ("cpu", "memory"):
        inits = [_request(c, resource) for c in pod.get("initContainers") or []]
        running = sum((_request(c, resource) for c in pod.get("containers") or []), Decimal(0))
        per_pod[resource] = max([running, *inits])
    selected = (pod.get("nodeSelector") or {}).get(PROVISIONING_LABEL)
    flavors = tuple(f for f in FLAVORS if selected in (None, PROVISIONING[f]))
    return Demand(per_pod["cpu"], per_pod["memory"], int(spec.get("parallelism") or 1), flavors)


def _request(container: Mapping[str, Any], resource: str) -> Decimal:
    """Its request; its limit when it sets only that (Kubernetes defaults one to the
    other)."""
    resources = container.get("resources") or {}
    given = (resources.get("requests") or {}).get(resource) or (resources.get("limits") or {}).get(
        resource
    )
    return parse_quantity(str(given)) or Decimal(0) if given is not None else Decimal(0)


def never_fits(
    wanted: Demand,
    ceiling: Mapping[str, Mapping[str, Decimal]] | None,
    nodes: Mapping[str, Mapping[str, Decimal]],
) -> str | None:
    """Why `wanted` could never be admitted and run, with the numbers; None if it could.
    `ceiling`: per flavor, the most the account could ever be given (its nominal quota
    and what its cohort could lend); `nodes`: per flavor, the largest node's allocatable
    CPU and memory (a flavor with no node known is not held to one). A `ceiling` not known
    (None) holds it to none."""
    problems = []
    for flavor in wanted.flavors:
        short = [
            f"{_amount(resource, wanted.total[resource])} {resource} at once"
            f" ({_amount(resource, ceiling[flavor][resource])} at most)"
            for resource in RESOURCES
            if ceiling is not None and wanted.total[resource] > ceiling[flavor][resource]
        ]
        largest = nodes.get(flavor)
        if largest is not None:
            short += [
                f"{_amount(resource, per_pod)} {resource} a pod (the largest node: "
                f"{_amount(resource, largest[resource])})"
                for resource, per_pod in (("cpu", wanted.cpu), ("memory", wanted.memory))
                if per_pod > largest[resource]
            ]
        if not short:
            return None
        problems.append(f"{flavor}: " + ", ".join(short))
    return "It could never run: " + "; ".join(problems)


def _amount(resource: str, value: Decimal) -> str:
    if resource == "memory":
        return f"{value / 2**30:.3g}Gi"
    return f"{value.normalize():f}" if resource == "cpu" else str(int(value))
