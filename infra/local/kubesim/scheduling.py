"""Where kubesim's one node may take a pod: its labels against the pod's nodeSelector, and
its taints (none) against the pod's tolerations.

kubesim's node stands for every node a job may ask for, a GKE Spot node included, so that
Spot jobs run on the local cloud: it carries the well-known labels of a Linux amd64 node
and GKE's `cloud.google.com/gke-spot: "true"`. A pod whose nodeSelector asks for any other
label stays Pending with the scheduler's NodeAffinity message, as on a cluster without
such a node.

- nodeSelector: "the node must have each of the indicated key-value pairs as labels"
  (https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodeselector;
  pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go, ErrReasonPod "node(s)
  didn't match Pod's node affinity/selector").
- No taints on the node, so no toleration is ever needed (pkg/scheduler/framework/plugins/
  tainttoleration). Node affinity expressions are not modelled.
"""

from __future__ import annotations

from typing import Any

NODE_NAME = "kubesim"
NODE_LABELS = {
    "kubernetes.io/hostname": NODE_NAME,
    "kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "cloud.google.com/gke-spot": "true",
}
NODE_AFFINITY_MISMATCH = (
    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)


def node_blocker(pod: dict[str, Any]) -> str | None:
    """The scheduler's message if the node's labels do not satisfy the nodeSelector."""
    wanted = ((pod.get("spec") or {}).get("nodeSelector")) or {}
    if all(NODE_LABELS.get(key) == value for key, value in wanted.items()):
        return None
    return NODE_AFFINITY_MISMATCH
