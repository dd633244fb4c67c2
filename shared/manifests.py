"""Kubernetes objects for a job, as plain dicts: pure functions of the job and settings.

Everything the product creates carries `app.kubernetes.io/managed-by` and the job id
label, which is how the sync finds (and cleans up) what belongs to a job. Job pods never
mount a service-account token, no container is privileged or may escalate privileges,
and the stager containers run as a non-root user on a read-only root filesystem. Only the
cleanup pod, which runs no user code, holds the bucket identity; stage-in reads the input
through a signed URL.
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
    job: Job, settings: Settings, *, command: str, env: list[dict[str, str]], mount: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": command,
        "image": settings.stager_image,
        "command": ["python", "-m", "shared.stager", command],
        "env": [
            *env,
            {"name": "STAGER_DIR", "value": mount["mountPath"]},
            {"name": "STAGER_JOB_ID", "value": job.id},
            {"name": "LOG_LEVEL", "value": "INFO"},
        ],
        "volumeMounts": [mount],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": _restricted(non_root=True),
    }


def _stage_in(job: Job, settings: Settings, input_url: str | None) -> dict[str, Any]:
    """The init container: downloads the input through a signed URL, so it needs no
    identity of its own and shares none with the user's container."""
    env = [
        {"name": "MAX_INPUT_BYTES", "value": str(settings.max_input_bytes)},
        {"name": "MAX_INPUT_FILES", "value": str(settings.max_input_files)},
        {"name": "MAX_INPUT_UNCOMPRESSED_BYTES", "value": str(settings.max_input_uncompressed)},
    ]
    if input_url:
        env.insert(0, {"name": "INPUT_URL", "value": input_url})
    mount = {"name": "input", "mountPath": "/input"}
    return _stager(job, settings, command="stage-in", env=env, mount=mount)


def _stage_out(job: Job, settings: Settings) -> dict[str, Any]:
    """The cleanup container: uploads with the stager's identity (Workload Identity, or the
    key file mounted from the credentials Secret)."""
    env = [
        {"name": "STAGER_BUCKET", "value": settings.bucket},
        {"name": "STAGER_OBJECT", "value": job.output_object},
    ]
    if settings.credentials_file:
        key_path = f"{CREDENTIALS_DIR}/{CREDENTIALS_KEY}"
        env.append({"name": "GC_CREDENTIALS_FILE_PATH", "value": key_path})
    container = _stager(
        job,
        settings,
        command="stage-out",
        env=env,
        mount={"name": "output", "mountPath": "/output"},
    )
    if settings.credentials_file:
        container["volumeMounts"].append(
            {"name": "gcs-credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}
        )
    return container


def _pod_spec(
    containers: list[dict[str, Any]], volumes: list[Any], *, service_account: str | None
) -> Any:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        # The stager (uid 10001) may write the input volume and read the output volume.
        "securityContext": {"fsGroup": STAGER_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": volumes,
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


def _fail_fast_on_stager_errors(container: str) -> dict[str, Any]:
    """A rejected or missing input, a conflict or a usage error fails the Job: retrying
    cannot help."""
    codes = {"containerName": container, "operator": "In", "values": list(PERMANENT_CODES)}
    return {"rules": [{"action": "FailJob", "onExitCodes": codes}]}


def batch_job(job: Job, settings: Settings, *, input_url: str | None = None) -> Manifest:
    """The user's Job: an init container stages the input, then the user's container runs.

    `input_url` is the signed URL of the job's input (see `Bucket.input_url`); a job with
    input cannot start without it (stage-in exits 64). The pod runs as JOB_SERVICE_ACCOUNT
    and carries no stager identity: the user's code must not reach other jobs' objects.
    """
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
    if job.has_input:
        container["volumeMounts"].append({"name": "input", "mountPath": "/input"})
        volumes.append({"name": "input", "persistentVolumeClaim": {"claimName": job.input_claim}})
    pod = _pod_spec([container], volumes, service_account=settings.job_service_account)
    spec: dict[str, Any] = {
        "backoffLimit": int(params.get("retries", 0)),
        "activeDeadlineSeconds": timeout_seconds(job, settings),
        "template": {"metadata": {"labels": labels(job, "job")}, "spec": pod},
    }
    if job.has_input:
        pod["initContainers"] = [_stage_in(job, settings, input_url)]
        spec["podFailurePolicy"] = _fail_fast_on_stager_errors("stage-in")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job.name, job, "job", settings.namespace),
        "spec": spec,
    }


def timeout_seconds(job: Job, settings: Settings) -> int:
    """The Job's activeDeadlineSeconds: the job's own timeout, else JOB_TIMEOUT_SECONDS."""
    return int(job.job_parameters.get("timeout_seconds", settings.default_timeout))


def cleanup_job(job: Job, settings: Settings) -> Manifest:
    """The cleanup Job: zips the output volume into `<name>-output.zip`. It runs no user
    code, so it alone carries the stager's identity."""
    volumes: list[Any] = [
        {"name": "output", "persistentVolumeClaim": {"claimName": job.output_claim}}
    ]
    if settings.credentials_file:
        volumes.append({"name": "gcs-credentials", "secret": {"secretName": CREDENTIALS_SECRET}})
    pod = _pod_spec(
        [_stage_out(job, settings)], volumes, service_account=settings.stager_service_account
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job.cleanup_name, job, "cleanup", settings.namespace),
        "spec": {
            "backoffLimit": CLEANUP_RETRIES,
            "podFailurePolicy": _fail_fast_on_stager_errors("stage-out"),
            "activeDeadlineSeconds": settings.default_timeout,
            "template": {"metadata": {"labels": labels(job, "cleanup")}, "spec": pod},
        },
    }
