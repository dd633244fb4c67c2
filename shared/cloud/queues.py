"""Kueue's objects of one deployment in the cluster: each account's ClusterQueue and
LocalQueue (shared/model/queues.py renders them), applied with server-side apply.

Who applies them: the accounts API when an operator changes an account's share, a job's
create for a queue this instance has not applied lately (an account made before its queue,
or a change another instance made), and the sync, which compares every account with what
the cluster holds and applies what differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.cloud.cluster import call_api, json_body
from shared.model.queues import (
    KUEUE,
    NO_ACCOUNT,
    PROVISIONING,
    PROVISIONING_LABEL,
    SCHEDULED,
    VERSION,
    Names,
    Share,
    applied_hash,
    local_queue,
    queues_of,
)
from shared.quantity import parse_quantity
from shared.quota import FLAVORS, RESOURCES, Quota

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

VISIBILITY = "visibility.kueue.x-k8s.io"  # Kueue's aggregated API of pending workloads
PAGE = 1000  # pending workloads a page (the visibility API's own default limit)
FIELD_MANAGER = "kubernetes-task-runner"
ENSURED_SECONDS = 300.0  # how long a create trusts its own instance's apply of a queue
READ_SECONDS = 30.0  # how long a create trusts its reading of the quotas and the nodes
_PLURAL = {"ClusterQueue": "clusterqueues", "LocalQueue": "localqueues"}


class Queues:
    def __init__(
        self, api: ApiClient, namespace: str, default_quota: Quota, timeout: float = 15.0
    ) -> None:
        from kubernetes import client

        self.names = Names(namespace)
        self.default_quota = default_quota
        self.timeout = timeout
        self.custom: Any = client.CustomObjectsApi(api)
        self._applied: dict[str, float] = {}  # queue -> when this instance applied it
        self._queue_of: dict[str, str] = {}  # account id ("": none) -> its queue
        self._listings: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._selector = f"kubernetes-task-runner/namespace={namespace}"

    def apply(self, thing: dict[str, Any]) -> None:
        """Server-side apply of one ClusterQueue or LocalQueue, as this product's."""
        kind, name = thing["kind"], thing["metadata"]["name"]
        namespace = thing["metadata"].get("namespace")
        arguments: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": "application/apply-patch+yaml",
            "_preload_content": False,
            "_request_timeout": self.timeout,
        }
        if namespace:
            call = lambda: self.custom.patch_namespaced_custom_object(  # noqa: E731
                KUEUE, VERSION, namespace, _PLURAL[kind], name, thing, **arguments
            )
        else:
            call = lambda: self.custom.patch_cluster_custom_object(  # noqa: E731
                KUEUE, VERSION, _PLURAL[kind], name, thing, **arguments
            )
        call_api(f"applying {kind} {name}", lambda: json_body(call()))
        if kind == "ClusterQueue":
            self._listings.pop("clusterqueues", None)  # its quota as it is now

    def apply_share(self, share: Share) -> None:
        """An account's ClusterQueue and LocalQueue: its share changed."""
        for thing in queues_of(self.names, share):
            self.apply(thing)
        self._applied[share.queue] = time.monotonic()

    def own(self) -> list[dict[str, Any]]:
        """The product's own queues: jobs of no account's, and the held one of scheduled
        jobs (of the same ClusterQueue)."""
        share = Share(quota=self.default_quota, queue=NO_ACCOUNT)
        return [*queues_of(self.names, share), local_queue(self.names, SCHEDULED, held=True)]

    def ensure(self, account_id: str | None, share: Callable[[], Share]) -> str:
        """The LocalQueue a job of `account_id` names: it and the product's own exist,
        applied now unless this instance did within ENSURED_SECONDS."""
        if self._stale(SCHEDULED):
            for thing in self.own():
                self.apply(thing)
            self._applied[SCHEDULED] = self._applied[NO_ACCOUNT] = time.monotonic()
        queue = self._queue_of.get(account_id or "")
        if queue is None or self._stale(queue):
            wanted = share()
            if wanted.queue != NO_ACCOUNT:
                self.apply_share(wanted)
            self._queue_of[account_id or ""] = queue = wanted.queue
        return queue

    def _stale(self, queue: str) -> bool:
        applied = self._applied.get(queue)
        return applied is None or time.monotonic() - applied > ENSURED_SECONDS

    def reconcile(self, shares: list[Share]) -> int:
        """Apply whatever of these accounts' queues and the product's own differs from what
        the cluster holds; how many objects were applied."""
        wanted = self.own() + [t for share in shares for t in queues_of(self.names, share)]
        held = self.applied()
        changed = 0
        for thing in wanted:
            key = (thing["kind"], thing["metadata"]["name"])
            if held.get(key, "missing") != applied_hash(thing):
                self.apply(thing)
                changed += 1
        return changed

    def applied(self) -> dict[tuple[str, str], str | None]:
        """(kind, name) -> the spec hash it was applied with (None: changed by another
        hand since), of the deployment's queues."""
        listings = (
            ("ClusterQueue", self._cluster_queues()),
            ("LocalQueue", self._namespaced("localqueues")),
        )
        found: dict[tuple[str, str], str | None] = {}
        for kind, listed in listings:
            for thing in listed or []:
                found[(kind, thing["metadata"]["name"])] = _as_applied(thing)
        return found

    # -- what a job could ever be given -----------------------------------------------------

    def ceiling(self, queue: str) -> dict[str, dict[str, Decimal]] | None:
        """Per flavor, the most the ClusterQueue of `queue` could ever be given: its own
        nominal quota and all its cohort could lend (every other account's, as no lending
        limit is set); its own alone when it is in no cohort. None if it is not found."""
        name = self.names.cluster_queue(queue)
        listed = self._cached("clusterqueues", self._cluster_queues)
        if not any(q["metadata"]["name"] == name for q in listed):
            self._listings.pop("clusterqueues", None)  # made since it was read: read again
            listed = self._cached("clusterqueues", self._cluster_queues)
        own = next((q for q in listed if q["metadata"]["name"] == name), None)
        if own is None or not own["spec"].get("resourceGroups"):
            return None
        cohort = own["spec"].get("cohortName")
        members = [q for q in listed if cohort and q["spec"].get("cohortName") == cohort] or [own]
        total = {flavor: {r: Decimal(0) for r in RESOURCES} for flavor in FLAVORS}
        for member in members:
            for group in member["spec"].get("resourceGroups") or []:
                for flavor in group.get("flavors") or []:
                    for resource in flavor.get("resources") or []:
                        if flavor["name"] in total and resource["name"] in RESOURCES:
                            amount = parse_quantity(str(resource.get("nominalQuota", "0")))
                            total[flavor["name"]][resource["name"]] += amount or Decimal(0)
        return total

    def forget(self) -> None:
        """Read the quotas and the nodes again next time."""
        self._listings.clear()

    def largest_nodes(self) -> dict[str, dict[str, Decimal]]:
        """Per flavor, the largest allocatable CPU and memory of its nodes (by GKE's
        provisioning label); a flavor with no node now is left out."""
        largest: dict[str, dict[str, Decimal]] = {}
        for node in self._cached("nodes", self._nodes):
            labels = node["metadata"].get("labels") or {}
            flavor = next(
                (f for f in FLAVORS if labels.get(PROVISIONING_LABEL) == PROVISIONING[f]), None
            )
            if flavor is None:
                continue
            allocatable = (node.get("status") or {}).get("allocatable") or {}
            seen = largest.setdefault(flavor, {"cpu": Decimal(0), "memory": Decimal(0)})
            for resource in ("cpu", "memory"):
                amount = parse_quantity(str(allocatable.get(resource, "0"))) or Decimal(0)
                seen[resource] = max(seen[resource], amount)
        return largest

    def _cached(self, what: str, read: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """A listing kept READ_SECONDS: a create reads it, the quota changes seldom."""
        kept = self._listings.get(what)
        if kept is None or time.monotonic() - kept[0] > READ_SECONDS:
            kept = self._listings[what] = (time.monotonic(), read())
        return kept[1]

    def _namespaced(self, plural: str) -> list[dict[str, Any]]:
        """The namespace's LocalQueues or workloads."""
        listed = call_api(
            f"listing {plural}",
            lambda: json_body(
                self.custom.list_namespaced_custom_object(
                    KUEUE, VERSION, self.names.namespace, plural,
                    _preload_content=False, _request_timeout=self.timeout,
                )
            ),
        )  # fmt: skip
        return list(listed.get("items") or [])

    def _cluster_queues(self) -> list[dict[str, Any]]:
        listed = call_api(
            "listing ClusterQueues",
            lambda: json_body(
                self.custom.list_cluster_custom_object(
                    KUEUE, VERSION, "clusterqueues", label_selector=self._selector,
                    _preload_content=False, _request_timeout=self.timeout,
                )
            ),
        )  # fmt: skip
        return list(listed.get("items") or [])

    def _nodes(self) -> list[dict[str, Any]]:
        from kubernetes import client

        core: Any = client.CoreV1Api(self.custom.api_client)
        listed = call_api(
            "listing nodes",
            lambda: json_body(
                core.list_node(_preload_content=False, _request_timeout=self.timeout)
            ),
        )
        return list(listed.get("items") or [])

    # -- what Kueue decided ----------------------------------------------------------------

    def workloads(self) -> dict[str, dict[str, Any]]:
        """The namespace's workloads, by the name of the Job each is of."""
        found = {}
        for workload in self._namespaced("workloads"):
            for owner in workload["metadata"].get("ownerReferences") or []:
                if owner.get("kind") == "Job":
                    found[owner["name"]] = workload
        return found

    def positions(self, queue: str) -> dict[str, int]:
        """Workload name -> its place in the LocalQueue `queue` (0: admitted next), as
        Kueue's visibility API orders its pending workloads, a page of PAGE at a time."""
        path = (
            f"/apis/{VISIBILITY}/{VERSION}/namespaces/{self.names.namespace}"
            f"/localqueues/{queue}/pendingworkloads"
        )
        found: dict[str, int] = {}
        while True:
            page = self._get(path, {"limit": PAGE, "offset": len(found)})
            items = page.get("items") or []
            for item in items:
                found[item["metadata"]["name"]] = int(item.get("positionInLocalQueue", 0))
            if len(items) < PAGE:
                return found

    def _get(self, path: str, query: dict[str, Any]) -> Any:
        """A GET of a path the typed clients have no method for (an aggregated API)."""
        from kubernetes.client import ApiException

        api = self.custom.api_client

        def get() -> Any:
            method, url, headers, _, _ = api.param_serialize(
                "GET", path, query_params=list(query.items()),
                header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
            )  # fmt: skip
            response = api.call_api(method, url, headers, _request_timeout=self.timeout)
            response.read()
            if not 200 <= response.status < 300:
                raise ApiException(status=response.status, reason=response.reason,
                                   body=response.data.decode(errors="replace"))  # fmt: skip
            return json.loads(response.data)

        return call_api(f"reading {path}", get)


def _as_applied(thing: dict[str, Any]) -> str | None:
    """The hash it was applied with; None when another hand has changed its spec since
    (its managed fields say who set what): applied again."""
    for entry in thing["metadata"].get("managedFields") or []:
        others = entry.get("manager") != FIELD_MANAGER and not entry.get("subresource")
        if others and "f:spec" in (entry.get("fieldsV1") or {}):
            return None
    return applied_hash(thing)
