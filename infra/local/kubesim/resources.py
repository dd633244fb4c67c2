"""The resource types kubesim serves, and the discovery documents that describe them.

kubectl and the client libraries find resources through discovery (/api, /apis, ...), so
the table here is the single source for routing, error wording and discovery.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    plural: str
    kind: str
    group: str  # "" for the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    # DELETE answers with the object (pods, namespaces) rather than a Status.
    returns_deleted_object: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How error messages name the resource: `pods`, `jobs.batch`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()


NAMESPACES = ResourceType("namespaces", "Namespace", "", "v1", False, ("ns",), True)
PODS = ResourceType("pods", "Pod", "", "v1", True, ("po",), True)
SECRETS = ResourceType("secrets", "Secret", "", "v1", True)
PVCS = ResourceType(
    "persistentvolumeclaims", "PersistentVolumeClaim", "", "v1", True, ("pvc",), True
)
JOBS = ResourceType("jobs", "Job", "batch", "v1", True)

ALL = (NAMESPACES, PODS, SECRETS, PVCS, JOBS)
BY_GROUP_VERSION: dict[tuple[str, str], dict[str, ResourceType]] = {}
for _rt in ALL:
    BY_GROUP_VERSION.setdefault((_rt.group, _rt.version), {})[_rt.plural] = _rt

SUBRESOURCES = {
    "pods": ("status", "log", "eviction"),
    "jobs": ("status",),
    "namespaces": ("status",),
    "persistentvolumeclaims": ("status",),
}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return BY_GROUP_VERSION.get((group, version), {}).get(plural)


def _resource_entry(rt: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": VERBS if rt is not NAMESPACES else [v for v in VERBS if v != "deletecollection"],
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt is JOBS:
        entry["categories"] = ["all"]
    if rt is PODS:
        entry["categories"] = ["all"]
    return entry


def _subresource_entry(rt: ResourceType, sub: str) -> dict[str, Any]:
    """As /api/v1 lists them; pods/eviction names its own group and version, which is how
    kubectl drain finds the Eviction API (drain.CheckEvictionSupport)."""
    entry: dict[str, Any] = {
        "name": f"{rt.plural}/{sub}",
        "singularName": "",
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": ["get", "patch", "update"],
    }
    if sub == "log":
        entry["verbs"] = ["get"]
    elif sub == "eviction":
        entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
    return entry


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    types = BY_GROUP_VERSION.get((group, version))
    if types is None:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types.values():
        resources.append(_resource_entry(rt))
        for sub in SUBRESOURCES.get(rt.plural, ()):
            resources.append(_subresource_entry(rt, sub))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group("batch")]}


def api_group(name: str) -> dict[str, Any] | None:
    if name != "batch":
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def version_info() -> dict[str, str]:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
