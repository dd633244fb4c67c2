"""Turning a URL path and method into (resource, namespace, name, subresource, verb)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.local.kubesim import resources as r
from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.status import method_not_allowed, path_not_found


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    rt: ResourceType | None  # None: the group version's discovery document
    namespace: str | None  # None: a cluster-scoped object, or a list across namespaces
    name: str | None
    sub: str = ""

    def verb(self, method: str, watch: bool) -> str:
        if self.rt is None:
            if method != "GET":
                raise method_not_allowed()
            return "get"
        if self.name is None:
            verbs = {
                "GET": "watch" if watch else "list",
                "POST": "create",
                "DELETE": "deletecollection",
            }
        elif self.sub == "log":
            verbs = {"GET": "get"}
        elif self.sub == "eviction":
            verbs = {"POST": "create"}
        else:
            verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
            if self.sub:
                verbs.pop("DELETE")
        if method not in verbs:
            raise method_not_allowed()
        verb = verbs[method]
        if verb == "deletecollection" and not self.rt.namespaced:
            raise method_not_allowed()
        if self.rt.namespaced and self.namespace is None and verb not in ("list", "watch"):
            raise method_not_allowed()
        return verb


def parse(path: str) -> Route:
    """Parse /api/v1/... or /apis/GROUP/VERSION/...; 404 for anything else."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise path_not_found()
    if r.resource_list(group, version) is None:
        raise path_not_found()
    if not rest:
        return Route(group, version, None, None, None)
    namespace_sub = group == "" and len(rest) == 3 and rest[2] in ("status", "finalize")
    if rest[0] == "namespaces" and len(rest) >= 3 and not namespace_sub:
        rt = r.lookup(group, version, rest[2])
        if rt is None or not rt.namespaced or len(rest) > 5:
            raise path_not_found()
        name = rest[3] if len(rest) >= 4 else None
        sub = rest[4] if len(rest) == 5 else ""
        return _checked(Route(group, version, rt, rest[1], name, sub))
    if namespace_sub:
        return Route(group, version, r.NAMESPACES, "", rest[1], rest[2])
    rt = r.lookup(group, version, rest[0])
    if rt is None or len(rest) > 2 or (rt.namespaced and len(rest) != 1):
        raise path_not_found()
    if rt.namespaced:
        return Route(group, version, rt, None, None)
    return Route(group, version, rt, "", rest[1] if len(rest) == 2 else None)


def _checked(route: Route) -> Route:
    if (
        route.sub
        and route.rt is not None
        and route.sub not in r.SUBRESOURCES.get(route.rt.plural, ())
    ):
        raise path_not_found()
    return route
