"""Kubernetes objects for a job, as plain dicts: pure functions of the job and settings.

Everything the product creates carries `app.kubernetes.io/managed-by` and the job id
label, which is how the sync finds (and cleans up) what belongs to a job. Job pods never
mount a service-account token, no container is privileged or may escalate privileges,
and the stager containers run as a non-root user on a read-only root filesystem.
"""

from __future__ import annotations

from typing import Any

from shared.model import Job
from shared.settings import Settings
from shared.stager.errors import PERMANENT_CODES, ExitCode

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubernetes-task-runner"
JOB_ID = "kubernetes-task-runner/job-id"
ROLE = "kubernetes-task-runner/role"
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGER}"

CREDENTIALS_SECRET = "task-runner-gcs-credentials"
CREDENTIALS_DIR = "/var/secrets/google"
CREDENTIALS_KEY = "key.json"
STAGER_USER = 10001
STAGER_INPUT_REJECTED = int(ExitCode.INPUT_REJECTED)
CLEANUP_RETRIES = 3  # a cleanup whose upload fails transiently is retried this many times

Manifest = dict[str, Any]


def labels(job: Job, role: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, JOB_ID: job.id, ROLE: role}


def _metadata(name: str, job: Job, role: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": labels(job, role)}


def volume_claim(job: Job, settings: Settings, *, name: str, role: str) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": settings.volume_size}},
    }
    if settings.storage_class:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(name, job, role, settings.namespace),
        "spec": spec,
    }


def credentials_secret(key_json: bytes, settings: Settings) -> Manifest:
    """The service-account key for clusters without Workload Identity (shared by all jobs)."""
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": CREDENTIALS_SECRET,
            "namespace": settings.namespace,
            "labels": {MANAGED_BY: MANAGER, ROLE: "credentials"},
        },
        "type": "Opaque",
        "data": {CREDENTIALS_KEY: base64.b64encode(key_json).decode()},
    }


def _restricted(*, non_root: bool) -> dict[str, Any]:
    context: dict[str, Any] = {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    if non_root:
        context.update(
            runAsNonRoot=True,
            runAsUser=STAGER_USER,
            runAsGroup=STAGER_USER,
            readOnlyRootFilesystem=True,
        )
    return context


def _stager(
    job: Job, settings: Settings, *, command: str, obj: str, mount: str, claim_volume: str
) -> dict[str, Any]:
    env = [
        {"name": "STAGER_BUCKET", "value": settings.bucket},
        {"name": "STAGER_OBJECT", "value": obj},
        {"name": "STAGER_DIR", "value": mount},
        {"name": "STAGER_JOB_ID", "value": job.id},
        {"name": "MAX_INPUT_FILES", "value": str(settings.max_input_files)},
        {"name": "MAX_INPUT_UNCOMPRESSED_BYTES", "value": str(settings.max_input_uncompressed)},
        {"name": "LOG_LEVEL", "value": "INFO"},
    ]
    mounts: list[dict[str, Any]] = [{"name": claim_volume, "mountPath": mount}]
    if settings.credentials_file:
        env.append(
            {"name": "GC_CREDENTIALS_FILE_PATH", "value": f"{CREDENTIALS_DIR}/{CREDENTIALS_KEY}"}
        )
        mounts.append({"name": "gcs-credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
    return {
        "name": command,
        "image": settings.stager_image,
        "command": ["python", "-m", "shared.stager", command],
        "env": env,
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": _restricted(non_root=True),
    }


def _pod_spec(settings: Settings, containers: list[dict[str, Any]], volumes: list[Any]) -> Any:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        # The stager (uid 10001) may write the input volume and read the output volume.
        "securityContext": {"fsGroup": STAGER_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    }
    if settings.credentials_file:
        volumes.append({"name": "gcs-credentials", "secret": {"secretName": CREDENTIALS_SECRET}})
    if settings.stager_service_account:
        spec["serviceAccountName"] = settings.stager_service_account
    return spec


def _fail_fast_on_stager_errors(container: str) -> dict[str, Any]:
    """A rejected input, a missing object or a conflict fails the Job: retrying cannot help."""
    codes = {"containerName": container, "operator": "In", "values": list(PERMANENT_CODES)}
    return {"rules": [{"action": "FailJob", "onExitCodes": codes}]}


def batch_job(job: Job, settings: Settings) -> Manifest:
    """The user's Job: an init container stages the input, then the user's container runs."""
    params = job.job_parameters
    container: dict[str, Any] = {
        "name": "job",
        "image": params["docker_image"],
        "env": [
            {"name": key, "value": value}
            for key, value in sorted(params.get("environment_variables", {}).items())
        ],
        "volumeMounts": [{"name": "output", "mountPath": "/output"}],
        "securityContext": _restricted(non_root=False),
    }
    if params.get("resources"):
        container["resources"] = params["resources"]
    volumes: list[Any] = [
        {"name": "output", "persistentVolumeClaim": {"claimName": job.output_claim}}
    ]
    init: list[dict[str, Any]] = []
    if job.has_input:
        container["volumeMounts"].append({"name": "input", "mountPath": "/input"})
        volumes.append({"name": "input", "persistentVolumeClaim": {"claimName": job.input_claim}})
        init.append(
            _stager(
                job,
                settings,
                command="stage-in",
                obj=job.input_object,
                mount="/input",
                claim_volume="input",
            )
        )
    pod = _pod_spec(settings, [container], volumes)
    if init:
        pod["initContainers"] = init
    spec: dict[str, Any] = {
        "backoffLimit": int(params.get("retries", 0)),
        "activeDeadlineSeconds": int(params.get("timeout_seconds", settings.default_timeout)),
        "template": {"metadata": {"labels": labels(job, "job")}, "spec": pod},
    }
    if job.has_input:
        # A rejected input is the user's error: retrying cannot help.
        rejected = {
            "containerName": "stage-in",
            "operator": "In",
            "values": [STAGER_INPUT_REJECTED],
        }
        spec["podFailurePolicy"] = {"rules": [{"action": "FailJob", "onExitCodes": rejected}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job.name, job, "job", settings.namespace),
        "spec": spec,
    }


def cleanup_job(job: Job, settings: Settings) -> Manifest:
    """The cleanup Job: zips the output volume into `<name>-output.zip`."""
    volumes: list[Any] = [
        {"name": "output", "persistentVolumeClaim": {"claimName": job.output_claim}}
    ]
    stage_out = _stager(
        job,
        settings,
        command="stage-out",
        obj=job.output_object,
        mount="/output",
        claim_volume="output",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job.cleanup_name, job, "cleanup", settings.namespace),
        "spec": {
            "backoffLimit": CLEANUP_RETRIES,
            "podFailurePolicy": _fail_fast_on_stager_errors("stage-out"),
            "activeDeadlineSeconds": settings.default_timeout,
            "template": {
                "metadata": {"labels": labels(job, "cleanup")},
                "spec": _pod_spec(settings, [stage_out], volumes),
            },
        },
    }
