"""The API verbs on stored objects: create, get, list, update, patch, delete.

This is the API server's generic registry in miniature: server-set metadata, defaulting
and validation, resourceVersion preconditions, selectors and paginated lists.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import uuid
from pathlib import Path
from typing import Any

from infra.local.kubesim import deletion, kinds, patch
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, now_rfc3339
from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from infra.local.kubesim.status import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    namespace_terminating,
    not_found,
    required,
    success,
)
from infra.local.kubesim.store import Obj, Store, meta

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # as k8s.io/apimachinery's rand.String


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(length))


def typed(rt: ResourceType, obj: Obj) -> Obj:
    obj["kind"] = rt.kind
    obj["apiVersion"] = rt.api_version
    return obj


def decode_body(body: bytes) -> Obj:
    try:
        obj = json.loads(body or b"")
    except ValueError as error:
        raise bad_request(f"json: cannot unmarshal request body: {error}") from error
    if not isinstance(obj, dict):
        raise bad_request("json: cannot unmarshal non-object into Go value of type struct")
    if not isinstance(obj.get("metadata", {}), dict):
        raise bad_request("json: cannot unmarshal metadata into Go struct field of type ObjectMeta")
    return obj


def _check_type(rt: ResourceType, obj: Obj) -> None:
    kind, version = obj.get("kind"), obj.get("apiVersion")
    if kind and kind != rt.kind:
        raise bad_request(
            f"the object provided is unrecognized (must be of type {rt.kind}): {kind}"
        )
    if version and version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({version}) does not match the expected API version "
            f"({rt.api_version})"
        )


class Registry:
    def __init__(self, store: Store, clock: Clock, data_dir: Path) -> None:
        self.store = store
        self.clock = clock
        self.data_dir = data_dir

    def claim_dir(self, namespace: str, name: str) -> Path:
        return self.data_dir / "pvc" / namespace / name

    # -- create -----------------------------------------------------------------------------

    def _namespace_ready(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.raw(r.NAMESPACES, "", namespace)
        if ns is None:
            raise not_found(r.NAMESPACES, namespace)
        if meta(ns).get("deletionTimestamp"):
            raise namespace_terminating(namespace, rt, name)

    def create(self, rt: ResourceType, namespace: str, body: Obj, *, dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(body)
        _check_type(rt, obj)
        m = meta(obj)
        if rt.namespaced:
            if m.get("namespace") and m["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            m["namespace"] = namespace
        else:
            m.pop("namespace", None)
        if not m.get("name"):
            if not m.get("generateName"):
                raise invalid(
                    rt, "", [required("metadata.name", "name or generateName is required")]
                )
            m["name"] = f"{m['generateName']}{random_suffix()}"
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            m.pop(key, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_rfc3339()
        if rt is r.JOBS:
            m["generation"] = 1
        kinds.prepare_create(rt, obj)
        with self.store.lock:
            if rt.namespaced:
                self._namespace_ready(rt, namespace, m["name"])
            if self.store.raw(rt, namespace, m["name"]) is not None:
                raise already_exists(rt, m["name"])
            typed(rt, obj)
            if dry_run:
                return obj
            if rt is r.PVCS:
                self._bind_claim(obj)
            return self.store.save(rt, obj, created=True)

    def _bind_claim(self, claim: Obj) -> None:
        """Provision at once: a host directory, status Bound, the protection finalizer."""
        m = meta(claim)
        path = self.claim_dir(m["namespace"], m["name"])
        path.mkdir(parents=True, exist_ok=True)
        m["finalizers"] = [*(m.get("finalizers") or []), deletion.PVC_PROTECTION]
        m.setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
        spec = claim["spec"]
        spec["volumeName"] = f"pvc-{m['uid']}"
        claim["status"] = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or []),
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
        }

    # -- read -------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise not_found(rt, name)
        return typed(rt, obj)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        token: str | None = None,
    ) -> Obj:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.plural)
        start = _decode_continue(token) if token else None
        # A page with a selector stops at its limit (plus one, to know there is more), as
        # an API server reading etcd in key order does: paging through n objects stays
        # O(n), not O(n^2 / limit). Without a selector the remaining count is exact.
        stop_early = limit > 0 and bool(labels or fields)
        with self.store.lock:
            rv = self.store.resource_version
            matched = []
            for obj in self.store.raw_items(rt, namespace, after=start):
                if labels_match(labels, obj) and fields_match(fields, obj):
                    matched.append(obj)
                    if stop_early and len(matched) > limit:
                        break
            page = matched[:limit] if limit > 0 else matched
            items = copy.deepcopy(page)
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit > 0 and len(matched) > limit:
            last = page[-1]["metadata"]
            list_meta["continue"] = _encode_continue(rv, last.get("namespace", ""), last["name"])
            if not stop_early:
                list_meta["remainingItemCount"] = len(matched) - limit
        return {
            "kind": f"{rt.kind}List",
            "apiVersion": rt.api_version,
            "metadata": list_meta,
            "items": items,
        }

    # -- update and patch -------------------------------------------------------------------

    def update(
        self, rt: ResourceType, namespace: str, name: str, body: Obj, *, subresource: str = ""
    ) -> Obj:
        new = copy.deepcopy(body)
        _check_type(rt, new)
        m = meta(new)
        if m.get("name") and m["name"] != name:
            raise bad_request(
                f"the name of the object ({m['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and m.get("namespace") and m["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        with self.store.lock:
            current = self.store.raw(rt, namespace, name)
            if current is None:
                raise not_found(rt, name)
            if (
                m.get("resourceVersion")
                and m["resourceVersion"] != meta(current)["resourceVersion"]
            ):
                raise conflict(rt, name)
            return self._store_update(rt, current, new, subresource)

    def _store_update(self, rt: ResourceType, current: Obj, new: Obj, subresource: str) -> Obj:
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status", {})
            new = merged
        else:
            new["status"] = copy.deepcopy(current.get("status", {}))
        m, old_meta = meta(new), meta(current)
        for key in ("uid", "creationTimestamp", "name", "deletionTimestamp", "generation"):
            if key in old_meta:
                m[key] = old_meta[key]
            else:
                m.pop(key, None)
        if rt.namespaced:
            m["namespace"] = old_meta["namespace"]
        if rt is r.NAMESPACES:
            new["spec"] = copy.deepcopy(current.get("spec", {}))
        kinds.validate_update(rt, current, new)
        if rt is r.JOBS and new.get("spec") != current.get("spec"):
            m["generation"] = int(old_meta.get("generation", 1)) + 1
        typed(rt, new)
        saved = self.store.save(rt, new)
        # Removing the last finalizer of an object being deleted completes its deletion.
        deletion.finish_if_unblocked(self.store, rt, new)
        return saved

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        *,
        subresource: str = "",
    ) -> Obj:
        with self.store.lock:
            current = self.store.raw(rt, namespace, name)
            if current is None:
                raise not_found(rt, name)
            patched = patch.apply(content_type, typed(rt, copy.deepcopy(current)), body)
            m = meta(patched)
            if m.get("name") != name or (rt.namespaced and m.get("namespace") != namespace):
                raise invalid(
                    rt,
                    name,
                    [kinds.invalid_value("metadata.name", m.get("name"), "field is immutable")],
                )
            if m.get("resourceVersion") != meta(current)["resourceVersion"]:
                raise conflict(rt, name)
            return self._store_update(rt, current, patched, subresource)

    # -- delete -----------------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str, name: str, options: deletion.Options) -> Obj:
        with self.store.lock:
            current = self.store.raw(rt, namespace, name)
            if current is None:
                raise not_found(rt, name)
            gone, last = deletion.delete(self.store, self.clock, rt, current, options)
        typed(rt, last)
        if gone and not rt.returns_deleted_object:
            return success(rt, name, last["metadata"]["uid"])
        return last

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        options: deletion.Options,
        *,
        label_selector: str | None,
        field_selector: str | None,
    ) -> Obj:
        listed = self.list(
            rt, namespace, label_selector=label_selector, field_selector=field_selector
        )
        deleted = []
        for item in listed["items"]:
            m = item["metadata"]
            try:
                deleted.append(self.delete(rt, m.get("namespace", ""), m["name"], options))
            except ApiError as error:
                if error.code != 404:
                    raise
        listed["items"] = [i for i in deleted if i.get("kind") == rt.kind]
        return listed


def _encode_continue(rv: int, namespace: str, name: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [namespace, name]})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["start"]
        return str(namespace), str(name)
    except (binascii.Error, ValueError, KeyError, TypeError) as error:
        raise bad_request(f"continue key is not valid: {error}") from error
