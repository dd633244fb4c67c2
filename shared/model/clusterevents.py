"""The Kubernetes events that tell a job has failed, as Cloud Logging holds them.

On GKE every event reaches Cloud Logging as a log entry of the log `events`, its payload
the core/v1 Event. A log sink (make deploy) routes the few that end a job to a Pub/Sub
topic, whose Eventarc trigger reconciles that one job at once, instead of at the next sync:

- the Job controller's, when it fails a Job (pkg/controller/job: BackoffLimitExceeded,
  DeadlineExceeded, PodFailurePolicy, FailedIndexes, MaxFailedIndexesExceeded);
- the kubelet's `Failed` on a pod, which it records when an image cannot be pulled.

`log_filter` is the sink's filter; `matches` applies the same rules to an entry (the local
cloud's stand-in of the sink, infra/local/eventsink.py), and `log_entry` writes an Event as
GKE's exporter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOG_ID = "events"
JOB_FAILURES = (
    "BackoffLimitExceeded",
    "DeadlineExceeded",
    "PodFailurePolicy",
    "FailedIndexes",
    "MaxFailedIndexesExceeded",
)


@dataclass(frozen=True)
class Route:
    """Events of one component about one kind of object, with these reasons."""

    component: str  # the Event's source.component
    kind: str  # its involvedObject.kind
    resource_type: str  # the log entry's monitored resource on GKE
    reasons: tuple[str, ...]


ROUTES = (
    Route("job-controller", "Job", "k8s_cluster", JOB_FAILURES),
    Route("kubelet", "Pod", "k8s_pod", ("Failed",)),
)


@dataclass(frozen=True)
class Involved:
    """The object an event is about."""

    kind: str
    namespace: str
    name: str


def log_filter(project: str, cluster: str, location: str, namespace: str) -> str:
    """The sink's filter: the events of ROUTES in the jobs' namespace of one cluster."""
    routes = " OR ".join(f"({_route_filter(route)})" for route in ROUTES)
    return " AND ".join(
        [
            f'logName="projects/{project}/logs/{LOG_ID}"',
            f'resource.labels.cluster_name="{cluster}"',
            f'resource.labels.location="{location}"',
            f'jsonPayload.involvedObject.namespace="{namespace}"',
            f"({routes})",
        ]
    )


def _route_filter(route: Route) -> str:
    reasons = " OR ".join(f'"{reason}"' for reason in route.reasons)
    return (
        f'resource.type="{route.resource_type}" AND '
        f'jsonPayload.source.component="{route.component}" AND '
        f'jsonPayload.involvedObject.kind="{route.kind}" AND '
        f"jsonPayload.reason=({reasons})"
    )


def matches(entry: dict[str, Any], namespace: str) -> bool:
    """Whether the sink's filter passes this entry (its project and cluster aside)."""
    event = entry.get("jsonPayload") or {}
    involved = event.get("involvedObject") or {}
    if involved.get("namespace") != namespace:
        return False
    return any(
        (entry.get("resource") or {}).get("type") == route.resource_type
        and (event.get("source") or {}).get("component") == route.component
        and involved.get("kind") == route.kind
        and event.get("reason") in route.reasons
        for route in ROUTES
    )


def log_entry(event: dict[str, Any], project: str, cluster: str, location: str) -> dict[str, Any]:
    """The log entry GKE writes for a core/v1 Event (in its JSON form)."""
    involved = event.get("involvedObject") or {}
    labels: dict[str, Any] = {"project_id": project, "cluster_name": cluster, "location": location}
    resource_type = "k8s_cluster"
    if involved.get("kind") == "Pod":
        resource_type = "k8s_pod"
        labels |= {"namespace_name": involved.get("namespace"), "pod_name": involved.get("name")}
    return {
        "logName": f"projects/{project}/logs/{LOG_ID}",
        "resource": {"type": resource_type, "labels": labels},
        "severity": "WARNING" if event.get("type") == "Warning" else "INFO",
        "timestamp": event.get("lastTimestamp") or event.get("eventTime"),
        "jsonPayload": event,
    }


def involved(entry: dict[str, Any]) -> Involved | None:
    """What the entry's event is about; None for an entry that is no Event."""
    obj = (entry.get("jsonPayload") or {}).get("involvedObject") or {}
    kind, namespace, name = obj.get("kind"), obj.get("namespace"), obj.get("name")
    if not (isinstance(kind, str) and isinstance(namespace, str) and isinstance(name, str)):
        return None
    return Involved(kind, namespace, name)
