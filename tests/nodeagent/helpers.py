"""Small helpers for the node agent's tests: bounded polling, manifests, raw JSON calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client import ApiException

from infra.local.nodeagent import volumes
from tests.fixtures.controlplane import HOST_IMAGE as HOST_IMAGE
from tests.fixtures.controlplane import STAGER_IMAGE
from tests.fixtures.waiting import wait_for as wait_for  # the node tests' one way to wait


def env(**values: Any) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in values.items()]


def container(name: str = "main", image: str = "busybox:1.36", **env_values: Any) -> dict:
    return {"name": name, "image": image, "env": env(**env_values)}


def pod(name: str, *containers: dict, **spec: Any) -> dict:
    body = {"restartPolicy": "Never", "containers": list(containers) or [container()], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": body}


def job(name: str, *containers: dict, pod_spec: dict | None = None, **spec: Any) -> dict:
    template = {"restartPolicy": "Never", "containers": list(containers) or [container()]}
    template.update(pod_spec or {})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": template}, **spec},
    }


def empty_dir(node_folder: Path, pod: dict, volume: str) -> Path:
    """The node agent's directory behind the emptyDir `volume` of `pod` (a pod's JSON)."""
    node = node_folder / "data" / (pod["spec"].get("nodeName") or "unscheduled")
    return volumes.pod_dir(node, pod["metadata"]["uid"]) / "volumes" / volume


def raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The JSON body of a client call, as the product reads it (_preload_content=False)."""
    response = call(*args, _preload_content=False, **kwargs)
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def api_error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict]:
    """Call, expecting an ApiException; its status and parsed Status body."""
    try:
        call(*args, **kwargs)
    except ApiException as error:
        return int(error.status), json.loads(error.body or "{}")
    raise AssertionError("the call succeeded; an ApiException was expected")


def condition(job_obj: dict, kind: str) -> dict | None:
    for cond in (job_obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            return cond
    return None


def job_finished(batch_v1: Any, namespace: str, name: str) -> Callable[[], dict | None]:
    def check() -> dict | None:
        obj = raw(batch_v1.read_namespaced_job, name, namespace)
        if condition(obj, "Complete") or condition(obj, "Failed"):
            return obj
        return None

    return check


def pod_phase(core_v1: Any, namespace: str, name: str, *phases: str) -> Callable[[], dict | None]:
    def check() -> dict | None:
        obj = raw(core_v1.read_namespaced_pod, name, namespace)
        return obj if obj["status"].get("phase") in phases else None

    return check


def job_pods(core_v1: Any, namespace: str, job_name: str) -> list[dict]:
    return raw(core_v1.list_namespaced_pod, namespace, label_selector=f"job-name={job_name}")[
        "items"
    ]


def is_gone(call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """True once a read answers 404 NotFound."""
    try:
        call(*args, **kwargs)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def must_condition(job_obj: dict, kind: str) -> dict:
    """The True condition of that type, failing the test if there is none."""
    found = condition(job_obj, kind)
    assert found is not None, f"no {kind} condition in {job_obj.get('status')}"
    return found


STAGER = STAGER_IMAGE  # the image the node agent runs for real
STAGE_IN_CODES = [64, 65, 66, 73]


def stager(name: str, script: str, mount: str, **env_values: Any) -> dict:
    """A container of the stager image: `python -c script` runs for real on the host."""
    return {
        "name": name,
        "image": STAGER,
        "command": ["python", "-c", script],
        "env": env(**env_values),
        "volumeMounts": [{"name": mount, "mountPath": f"/{mount}"}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def failure_policy() -> dict:
    """The product's podFailurePolicy (shared/model/manifests.py)."""
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": "stage-in",
                    "operator": "In",
                    "values": STAGE_IN_CODES,
                },
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "stage-out", "operator": "NotIn", "values": [0]},
            },
        ]
    }


def volume(name: str, *, size: str = "10Gi", ephemeral: bool = False) -> dict:
    if not ephemeral:
        return {"name": name, "emptyDir": {"sizeLimit": size}}
    template = {
        "metadata": {"labels": {"role": name}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "standard-rwo",
            "resources": {"requests": {"storage": size}},
        },
    }
    return {"name": name, "ephemeral": {"volumeClaimTemplate": template}}


STAGE_IN_SCRIPT = "open('/input/in.txt', 'w').write('input data\\n'); print('staged in')"
STAGE_OUT_SCRIPT = "print(open('/output/out.txt').read().strip())"


def layout_job(
    name: str,
    user: dict,
    *,
    stage_in: str = STAGE_IN_SCRIPT,
    stage_out: str = STAGE_OUT_SCRIPT,
    size: str = "10Gi",
    ephemeral: bool = False,
    backoff_limit: int = 0,
    **spec: Any,
) -> dict:
    """The product's one-pod-per-job layout: init containers stage-in and `job` (the user's
    container, `user`), then stage-out as the only regular container; /input and /output
    are emptyDirs with a sizeLimit, or generic ephemeral volumes."""
    user = {
        **user,
        "name": "job",
        "volumeMounts": [
            {"name": "input", "mountPath": "/input", "readOnly": True},
            {"name": "output", "mountPath": "/output"},
        ],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "initContainers": [stager("stage-in", stage_in, "input"), user],
        "containers": [stager("stage-out", stage_out, "output")],
        "volumes": [
            volume("input", size=size, ephemeral=ephemeral),
            volume("output", size=size, ephemeral=ephemeral),
        ],
    }
    spec.setdefault("podFailurePolicy", failure_policy())
    return job(name, pod_spec=pod_spec, backoffLimit=backoff_limit, **spec)


def conditions(obj: dict) -> dict[str, dict]:
    """A pod's or Job's conditions by type."""
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def statuses(obj: dict, key: str = "containerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in (obj.get("status") or {}).get(key) or []}
