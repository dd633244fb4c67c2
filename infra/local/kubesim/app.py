"""Wiring: the store, registry, controllers and admin state of one kubesim, and how an
API request (already routed) becomes a response.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.kubesim import deletion, eviction, podlogs, routes, watch
from infra.local.kubesim import resources as r
from infra.local.kubesim.admin import Admin
from infra.local.kubesim.clock import Clock, now_rfc3339
from infra.local.kubesim.controller import JobController
from infra.local.kubesim.gc import GarbageCollector
from infra.local.kubesim.kubelet import Kubelet
from infra.local.kubesim.registry import Registry, decode_body
from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.runtime import Runtime
from infra.local.kubesim.selectors import parse_field_selector, parse_label_selector
from infra.local.kubesim.status import ApiError, bad_request
from infra.local.kubesim.storage import VolumeControllers
from infra.local.kubesim.store import Obj, Store

JSON = "application/json"


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    stream: Iterator[bytes] | None = None

    @staticmethod
    def json(status: int, payload: Any) -> Response:
        return Response(status, json.dumps(payload).encode())


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    stopped: Any = field(default=lambda: False)


def _int(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as error:
        raise bad_request(f"invalid value for {key}: {value!r}") from error


def delete_options(query: dict[str, str], body: bytes) -> deletion.Options:
    """DeleteOptions from a JSON body or from query parameters (the body wins)."""
    opts: dict[str, Any] = {}
    if body.strip():
        parsed = decode_body(body)
        opts = parsed
    policy = opts.get("propagationPolicy") or query.get("propagationPolicy")
    orphan = opts.get("orphanDependents", query.get("orphanDependents"))
    if policy is None and orphan is not None:
        policy = "Orphan" if str(orphan).lower() == "true" else "Background"
    if policy is not None and policy not in deletion.POLICIES:
        raise bad_request(
            f'DeleteOptions.PropagationPolicy: Unsupported value: "{policy}": supported values: '
            '"Foreground", "Background", "Orphan", "nil"'
        )
    grace = opts.get("gracePeriodSeconds")
    if grace is None:
        grace = _int(query, "gracePeriodSeconds")
    pre = opts.get("preconditions") or {}
    dry = opts.get("dryRun") or query.get("dryRun")
    return deletion.Options(
        propagation=policy,
        grace=int(grace) if grace is not None else None,
        uid=pre.get("uid"),
        resource_version=pre.get("resourceVersion"),
        dry_run=bool(dry),
    )


class App:
    def __init__(self, data_dir: Path, speed: float, stager_image: str | None, token: str) -> None:
        self.data_dir = data_dir
        self.token = token
        self.clock = Clock(speed)
        self.store = Store()
        self.registry = Registry(self.store, self.clock, data_dir)
        self.admin = Admin()
        self.kubelet = Kubelet(self.store, self.clock, data_dir, Runtime(self.clock, stager_image))
        self.controller = JobController(self.store, self.clock)
        self.gc = GarbageCollector(self.store, self.clock)
        self.volumes = VolumeControllers(self.store, self.clock, data_dir)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.store.on_remove(self._removed)
        self.registry.create(r.NAMESPACES, "", {"metadata": {"name": "default"}})

    def _removed(self, rt: ResourceType, obj: Obj) -> None:
        if rt is r.PVCS:
            meta = obj["metadata"]
            shutil.rmtree(
                self.registry.claim_dir(meta["namespace"], meta["name"]), ignore_errors=True
            )

    def start(self) -> None:
        for name, loop in (
            ("kubelet", self.kubelet.run),
            ("job-controller", self.controller.run),
            ("garbage-collector", self.gc.run),
            ("volume-controllers", self.volumes.run),
        ):
            thread = threading.Thread(target=loop, args=(self._stop,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # -- API requests --------------------------------------------------------------------

    def handle(self, route: routes.Route, verb: str, request: Request) -> Response:
        rt = route.rt
        if rt is None:
            return Response.json(200, r.resource_list(route.group, route.version))
        query = request.query
        namespace = route.namespace if route.namespace is not None else None
        ns = namespace or ""
        dry_run = bool(query.get("dryRun"))
        if verb == "list":
            return Response.json(
                200,
                self.registry.list(
                    rt,
                    namespace,
                    label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"),
                    limit=_int(query, "limit") or 0,
                    token=query.get("continue") or None,
                ),
            )
        if verb == "watch":
            parse_label_selector(query.get("labelSelector"))
            parse_field_selector(query.get("fieldSelector"), rt.plural)
            stream = watch.events(self.store, rt, namespace, query, stopped=request.stopped)
            return Response(200, stream=stream)
        if verb == "create" and route.sub == "eviction":
            assert route.name is not None
            status = eviction.evict(
                self.store, self.clock, ns, route.name, decode_body(request.body), query
            )
            return Response.json(201, status)
        if verb == "create":
            created = self.registry.create(rt, ns, decode_body(request.body), dry_run=dry_run)
            return Response.json(201, created)
        if verb == "deletecollection":
            return Response.json(
                200,
                self.registry.delete_collection(
                    rt,
                    namespace,
                    delete_options(query, request.body),
                    label_selector=query.get("labelSelector"),
                    field_selector=query.get("fieldSelector"),
                ),
            )
        assert route.name is not None
        if verb == "get" and route.sub == "log":
            pod = self.registry.get(rt, ns, route.name)
            body = podlogs.read(
                self.data_dir,
                pod,
                query,
                still_running=self._runs(ns, route.name, pod["metadata"]["uid"], query),
                stopped=request.stopped,
            )
            if isinstance(body, bytes):
                return Response(200, body, "text/plain")
            return Response(200, content_type="text/plain", stream=body)
        if verb == "get":
            return Response.json(200, self.registry.get(rt, ns, route.name))
        if verb == "update":
            return Response.json(
                200,
                self.registry.update(
                    rt, ns, route.name, decode_body(request.body), subresource=route.sub
                ),
            )
        if verb == "patch":
            ctype = request.headers.get("content-type", "")
            return Response.json(
                200,
                self.registry.patch(rt, ns, route.name, ctype, request.body, subresource=route.sub),
            )
        if verb == "delete":
            return Response.json(
                200, self.registry.delete(rt, ns, route.name, delete_options(query, request.body))
            )
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _runs(self, namespace: str, name: str, uid: str, query: dict[str, str]) -> Any:
        """Whether the followed container may still write to its log: the pod is there and
        the container has not terminated."""

        def running() -> bool:
            pod = self.store.get(r.PODS, namespace, name)
            if pod is None or pod["metadata"]["uid"] != uid:
                return False
            try:
                container, init = podlogs.pick_container(pod, query)
            except ApiError:
                return False
            entry = podlogs.container_state(pod, container, init) or {}
            return "terminated" not in (entry.get("state") or {})

        return running

    def admin_request(self, request: Request) -> Response:
        path, method = request.path.rstrip("/"), request.method
        if path == "/_kubesim/faults":
            if method == "GET":
                return Response.json(200, {"faults": self.admin.faults()})
            if method == "DELETE":
                self.admin.clear_faults()
                return Response.json(200, {"faults": []})
            if method == "POST":
                from infra.local.kubesim.admin import parse_fault

                try:
                    body = json.loads(request.body or b"{}")
                except ValueError as error:
                    raise bad_request(f"bad JSON: {error}") from error
                self.admin.add_fault(parse_fault(body))
                return Response.json(201, {"faults": self.admin.faults()})
        if path == "/_kubesim/stats" and method == "GET":
            return Response.json(200, self.admin.stats())
        if path == "/_kubesim/stats/reset" and method == "POST":
            self.admin.reset_stats()
            return Response.json(200, self.admin.stats())
        if path == "/_kubesim/info" and method == "GET":
            return Response.json(
                200,
                {
                    "speed": self.clock.speed,
                    "dataDir": str(self.data_dir),
                    "resourceVersion": self.store.resource_version,
                    "time": now_rfc3339(),
                },
            )
        raise ApiError(404, "NotFound", f"no admin endpoint {method} {path}")
