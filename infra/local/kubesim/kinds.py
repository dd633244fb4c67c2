"""Per-kind defaulting and validation on create and update (what the API server's
strategies do), so bad manifests fail in tests with the errors a cluster would give.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from infra.local.kubesim import jobspec, quantity
from infra.local.kubesim import resources as r
from infra.local.kubesim.resources import ResourceType
from infra.local.kubesim.status import (
    Cause,
    bad_request,
    forbidden,
    invalid,
    invalid_value,
    required,
    unsupported,
)
from infra.local.kubesim.validation import (
    LABEL_MAX,
    config_key_errors,
    dns_label_errors,
    map_causes,
    name_causes,
)

JOB_NAME = "job-name"
CONTROLLER_UID = "controller-uid"
BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
SECRET_MAX_BYTES = 1024 * 1024
POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only "
    "additions to existing tolerations) or `spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)"
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _container_causes(path: str, containers: Any, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, container in enumerate(containers or []):
        at = f"{path}[{i}]"
        if not isinstance(container, dict):
            causes.append(invalid_value(at, str(container), "must be an object"))
            continue
        name = container.get("name")
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            causes.extend(invalid_value(f"{at}.name", name, m) for m in dns_label_errors(name))
            if name in seen:
                causes.append(
                    Cause(f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
                )
            seen.add(name)
        if not container.get("image"):
            causes.append(required(f"{at}.image"))
        for j, mount in enumerate(container.get("volumeMounts") or []):
            mat = f"{at}.volumeMounts[{j}]"
            if not mount.get("name"):
                causes.append(required(f"{mat}.name"))
            elif mount["name"] not in volumes:
                causes.append(
                    Cause(f"{mat}.name", "FieldValueNotFound", f'Not found: "{mount["name"]}"')
                )
            if not mount.get("mountPath"):
                causes.append(required(f"{mat}.mountPath"))
        for j, env in enumerate(container.get("env") or []):
            if not _dict(env).get("name"):
                causes.append(required(f"{at}.env[{j}].name"))
    return causes


def _claim_spec_causes(spec: dict[str, Any], path: str) -> list[Cause]:
    """ValidatePersistentVolumeClaimSpec's share kubesim checks: access modes and size."""
    causes = []
    modes = spec.get("accessModes") or []
    if not modes:
        causes.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append(unsupported(f"{path}.accessModes", mode, ACCESS_MODES))
    storage = _dict(_dict(spec.get("resources")).get("requests")).get("storage")
    if not storage:
        causes.append(required(f"{path}.resources[storage]"))
    return causes


def _ephemeral_causes(source: dict[str, Any], path: str) -> list[Cause]:
    """validateEphemeralVolumeSource (pkg/apis/core/validation/validation.go): a generic
    ephemeral volume needs a volumeClaimTemplate whose spec is a valid claim spec."""
    template = source.get("volumeClaimTemplate")
    at = f"{path}.ephemeral.volumeClaimTemplate"
    if not isinstance(template, dict):
        return [required(at)]
    causes = map_causes(
        f"{at}.metadata.labels", _dict(template.get("metadata")).get("labels"), check_values=True
    )
    causes.extend(_claim_spec_causes(_dict(template.get("spec")), f"{at}.spec"))
    return causes


def check_quantities(kind: str, spec: dict[str, Any]) -> None:
    """Quantities are decoded with the body: a malformed one is a 400, as the API server's
    JSON decoder refuses it (resource.Quantity.UnmarshalJSON) before any validation."""

    def check(value: Any) -> None:
        try:
            quantity.parse(value)
        except quantity.QuantityError as error:
            raise bad_request(
                f'{kind} in version "v1" cannot be handled as a {kind}: {error}'
            ) from error

    for volume in spec.get("volumes") or []:
        empty_dir = _dict(_dict(volume).get("emptyDir"))
        if empty_dir.get("sizeLimit") is not None:
            check(empty_dir["sizeLimit"])
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = _dict(_dict(container).get("resources"))
        for group in ("limits", "requests"):
            for value in _dict(resources.get(group)).values():
                check(value)


def pod_spec_causes(spec: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    volumes: set[str] = set()
    for i, volume in enumerate(spec.get("volumes") or []):
        name = _dict(volume).get("name")
        if not name:
            causes.append(required(f"{path}.volumes[{i}].name"))
            continue
        causes.extend(
            invalid_value(f"{path}.volumes[{i}].name", name, m) for m in dns_label_errors(name)
        )
        claim = _dict(volume.get("persistentVolumeClaim"))
        if "persistentVolumeClaim" in volume and not claim.get("claimName"):
            causes.append(required(f"{path}.volumes[{i}].persistentVolumeClaim.claimName"))
        if "ephemeral" in volume:
            causes.extend(_ephemeral_causes(_dict(volume["ephemeral"]), f"{path}.volumes[{i}]"))
        volumes.add(name)
    if not spec.get("containers"):
        causes.append(required(f"{path}.containers"))
    causes.extend(_container_causes(f"{path}.containers", spec.get("containers"), volumes))
    causes.extend(_container_causes(f"{path}.initContainers", spec.get("initContainers"), volumes))
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        causes.append(
            unsupported(f"{path}.restartPolicy", policy, ["Always", "OnFailure", "Never"])
        )
    return causes


def _default_containers(containers: Any) -> None:
    for container in containers or []:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault(
            "imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always"
        )
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    _default_containers(spec.get("containers"))
    _default_containers(spec.get("initContainers"))


def _pod(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise bad_request("spec must be an object")
    default_pod_spec(spec)
    check_quantities("Pod", spec)
    obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    return pod_spec_causes(spec, "spec")


def default_job(obj: dict[str, Any]) -> None:
    """SetDefaults_Job and the generated selector and labels (jobStrategy.PrepareForCreate)."""
    meta = obj["metadata"]
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise bad_request("spec must be an object")
    jobspec.default_counts(spec)
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    jobspec.default_job_spec(spec)
    uid = meta["uid"]
    spec.setdefault("selector", {"matchLabels": {BATCH_CONTROLLER_UID: uid}})
    template = spec.get("template")
    if not isinstance(template, dict):
        template = spec["template"] = {}
    tmeta = template.setdefault("metadata", {})
    # SetDefaults_Job gives a Job without labels its template's labels, and shares the map:
    # the Job also carries the generated labels added to the template below.
    share = isinstance(tmeta.get("labels"), dict) and not meta.get("labels")
    labels = tmeta.setdefault("labels", {})
    labels.update(
        {
            CONTROLLER_UID: uid,
            JOB_NAME: meta["name"],
            BATCH_CONTROLLER_UID: uid,
            BATCH_JOB_NAME: meta["name"],
        }
    )
    if share:
        meta["labels"] = dict(labels)
    tspec = template.setdefault("spec", {})
    if not isinstance(tspec, dict):
        raise bad_request("spec.template.spec must be an object")
    default_pod_spec(tspec)
    check_quantities("Job", tspec)


def job_spec_causes(spec: dict[str, Any]) -> list[Cause]:
    """validateJobSpec's checks, in its order (see jobspec.py)."""
    causes = jobspec.counters_causes(spec)
    causes.extend(jobspec.pod_failure_policy_causes(spec))
    causes.extend(jobspec.pod_replacement_policy_causes(spec))
    tspec = _dict(_dict(spec.get("template")).get("spec"))
    causes.extend(pod_spec_causes(tspec, "spec.template.spec"))
    causes.extend(jobspec.restart_policy_causes(spec))
    return causes


def _job(obj: dict[str, Any]) -> list[Cause]:
    meta = obj["metadata"]
    causes = []
    if len(meta.get("name", "")) > LABEL_MAX:
        causes.append(
            invalid_value(
                "metadata.name", meta["name"], f"must be no more than {LABEL_MAX} characters"
            )
        )
    had_template = isinstance(obj.get("spec"), dict) and bool(obj["spec"].get("template"))
    default_job(obj)
    if not had_template:
        causes.append(required("spec.template"))
    causes.extend(job_spec_causes(obj["spec"]))
    causes.extend(jobspec.hostname_causes(meta["name"], obj["spec"]))
    obj["status"] = {}
    return causes


def _pvc(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.setdefault("spec", {})
    causes = _claim_spec_causes(spec, "spec")
    spec.setdefault("volumeMode", "Filesystem")
    spec.setdefault("storageClassName", "standard")
    obj["status"] = {"phase": "Pending"}
    return causes


def _secret(obj: dict[str, Any]) -> list[Cause]:
    obj.setdefault("type", "Opaque")
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise bad_request("data must be a map of base64 strings")
    causes: list[Cause] = []
    total = 0
    for key, value in data.items():
        try:
            total += len(base64.b64decode(str(value), validate=True))
        except (binascii.Error, ValueError) as error:
            raise bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                f"at input byte 0 ({key})"
            ) from error
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
        total += len(str(value).encode())
    for key in data:
        causes.extend(invalid_value(f"data[{key}]", key, m) for m in config_key_errors(key))
    if total > SECRET_MAX_BYTES:
        causes.append(
            Cause(
                "data", "FieldValueTooLong", f"Too long: must have at most {SECRET_MAX_BYTES} bytes"
            )
        )
    if data:
        obj["data"] = data
    return causes


def _namespace(obj: dict[str, Any]) -> list[Cause]:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}
    return []


_PREPARE = {
    "pods": _pod,
    "jobs": _job,
    "persistentvolumeclaims": _pvc,
    "secrets": _secret,
    "namespaces": _namespace,
}


def prepare_create(rt: ResourceType, obj: dict[str, Any]) -> None:
    """Default and validate a new object in place (metadata already filled); 422 on errors."""
    meta = obj["metadata"]
    causes = name_causes(meta["name"], label=rt is r.NAMESPACES)
    causes.extend(map_causes("metadata.labels", meta.get("labels"), check_values=True))
    causes.extend(map_causes("metadata.annotations", meta.get("annotations"), check_values=False))
    causes.extend(_PREPARE[rt.plural](obj))
    if causes:
        raise invalid(rt, meta["name"], causes)


def validate_update(rt: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Metadata rules plus the immutable parts of a spec; 422 on errors."""
    meta = new["metadata"]
    causes = map_causes("metadata.labels", meta.get("labels"), check_values=True)
    causes.extend(map_causes("metadata.annotations", meta.get("annotations"), check_values=False))
    if rt is r.JOBS:
        spec = new.setdefault("spec", {})
        if not isinstance(spec, dict):
            raise bad_request("spec must be an object")
        jobspec.default_counts(spec)
        jobspec.default_job_spec(spec)
        default_pod_spec(_dict(_dict(spec.get("template")).setdefault("spec", {})))
        causes.extend(job_spec_causes(spec))
        causes.extend(jobspec.immutable_causes(spec, _dict(old.get("spec"))))
    elif rt is r.PODS:
        if _pod_mutable_view(new) != _pod_mutable_view(old):
            causes.append(
                forbidden(
                    "spec",
                    POD_UPDATE_FORBIDDEN,
                )
            )
    elif rt is r.PVCS:
        if _dict(new.get("spec")).get("accessModes") != _dict(old.get("spec")).get("accessModes"):
            causes.append(
                forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and "
                    "volumeAttributesClassName for bound claims",
                )
            )
    elif rt is r.SECRETS:
        for key, value in (new.pop("stringData", None) or {}).items():
            new.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
        if old.get("immutable") and (new.get("data") != old.get("data")):
            causes.append(forbidden("data", "field is immutable when `immutable` is set"))
    if causes:
        raise invalid(rt, meta["name"], causes)


def _pod_mutable_view(pod: dict[str, Any]) -> Any:
    spec = dict(_dict(pod.get("spec")))
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        spec.pop(key, None)
    for key in ("containers", "initContainers"):
        spec[key] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get(key) or []]
    return spec
