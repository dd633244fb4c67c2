"""Kubernetes objects for a job, as plain dicts: pure functions of the job and settings.

A job is one `batch/v1` Job whose one pod runs, in order: the init container `stage-in`
(only when the job has input), the user's container as the next init container `job`, and
`stage-out` as the only regular container. Init containers run one after the other and
stop the pod at the first failure, which is the order a job needs; stage-out starts only
once the user's container has exited 0.

No pod holds a Google identity: stage-in reads the input through a signed URL, stage-out
writes the output through an upload session opened by the functions for that one object.
Everything carries `app.kubernetes.io/managed-by` and the job id label, which is how the
sync finds (and cleans up) what belongs to a job. No service-account token is mounted, no
container is privileged or may escalate, and the stager containers run as a non-root user
on a read-only root filesystem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.contract.exits import PERMANENT_CODES
from shared.model import queues
from shared.model.job import Job
from shared.settings import MAX_JOB_SECONDS, MIB, Settings

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubernetes-task-runner"
JOB_ID = "kubernetes-task-runner/job-id"
ROLE = "kubernetes-task-runner/role"
OWNED_SELECTOR = f"{MANAGED_BY}={MANAGER}"

USER_CONTAINER = "job"
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"
STAGER_USER = 10001
# Room in the pod's ephemeral storage beyond its volumes: logs and writable layers.
EPHEMERAL_MARGIN = 1024 * MIB
EPHEMERAL_REQUEST = "256Mi"  # what the scheduler reserves: small, so pods fit small nodes
JOB_DEADLINE_MARGIN = 60  # s: the Job's deadline past the pod's (the job's timeout)
SUBMISSION_BODY = "job.json"  # at a submission zip's root: its create body, not input

# Array jobs. Kubernetes sets JOB_COMPLETION_INDEX from this annotation in an Indexed Job's
# pods (https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode).
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
TASK_ENV = "task-env"  # the init container that writes the task's variables
SPOOL_DIR = "/spool"  # a task's stage-out spools its zip here for a form upload (TMPDIR)
TASK_ENV_DIR = "/var/run/task-runner"
TASK_ENV_FILE = f"{TASK_ENV_DIR}/task.env"
# The user's command runs under a shell that first exports the task's variables (one
# `NAME='value'` line each, quoted by the task-env container): Kubernetes has no way to give
# each index of one Job its own environment.
TASK_ENV_SCRIPT = f'set -a; . {TASK_ENV_FILE}; set +a; exec "$@"'

Manifest = dict[str, Any]


def labels(job: Job, role: str) -> dict[str, str]:
    return {MANAGED_BY: MANAGER, JOB_ID: job.id, ROLE: role}


def queue_of(k8s_job: Mapping[str, Any]) -> str | None:
    """The Kueue queue a Job names (its label)."""
    return ((k8s_job.get("metadata") or {}).get("labels") or {}).get(queues.QUEUE_LABEL)


def job_selector(job_id: str) -> str:
    """The label selector of one job's objects."""
    return f"{OWNED_SELECTOR},{JOB_ID}={job_id}"


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
            *([] if command == TASK_ENV else _task_vars(job)),
            {"name": "STAGER_DIR", "value": mount["mountPath"]},
            {"name": "STAGER_JOB_ID", "value": job.id},
            {"name": "LOG_LEVEL", "value": "INFO"},
        ],
        "volumeMounts": [mount],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        # The stager's last line on failure ("stager: input rejected: ...") becomes the
        # container's termination message, which the sync reports as the job's reason.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": _restricted(non_root=True),
    }


def _task_vars(job: Job) -> list[dict[str, Any]]:
    """TASK_INDEX and TASK_COUNT, which every container of an array job's pod sees."""
    if job.task_count is None:
        return []
    return [
        {"name": "TASK_INDEX", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}},
        {"name": "TASK_COUNT", "value": str(job.task_count)},
    ]


def _task_env(job: Job, settings: Settings, tasks_url: str) -> dict[str, Any]:
    """Reads the task's own variables from <name>-tasks.json (a signed URL) into the file
    the user's command sources."""
    env = [*_task_vars(job), {"name": "TASKS_URL", "value": tasks_url}]
    mount = {"name": "task", "mountPath": TASK_ENV_DIR}
    return _stager(job, settings, command=TASK_ENV, env=env, mount=mount)


def _stage_in(job: Job, settings: Settings, input_url: str, *, public: bool) -> dict[str, Any]:
    """Downloads the input (a signed URL, or the user's own URL when `public`, which it
    checks again before each request) and unpacks it into /input.

    An input by reference or upload may be up to MAX_INPUT_URL_BYTES, and unpack to as much
    as its volume holds; an input_zip was checked whole by the create.
    """
    max_bytes, unpacked = settings.max_input_bytes, settings.max_input_uncompressed
    if by_reference(job):
        max_bytes = settings.max_input_url_bytes
        unpacked = max(unpacked, _bytes(settings.volume_size))
    env = [
        {"name": "INPUT_URL", "value": input_url},
        {"name": "MAX_INPUT_BYTES", "value": str(max_bytes)},
        {"name": "MAX_INPUT_FILES", "value": str(settings.max_input_files)},
        {"name": "MAX_INPUT_UNCOMPRESSED_BYTES", "value": str(unpacked)},
    ]
    if public:
        env.append({"name": "INPUT_URL_PUBLIC_ONLY", "value": "1"})
    if job.submission:
        env.append({"name": "STAGER_SKIP", "value": SUBMISSION_BODY})
    mount = {"name": "input", "mountPath": "/input"}
    return _stager(job, settings, command=STAGE_IN, env=env, mount=mount)


def by_reference(job: Job) -> bool:
    """The input comes from input_url, input_upload or a submission, not an input_zip."""
    params = job.job_parameters
    return bool(params.get("input_url") or params.get("input_upload") or job.submission)


def volume_bytes(settings: Settings) -> int:
    """What one job volume holds: also the most an output zip can be."""
    return _bytes(settings.volume_size)


def _bytes(quantity: str) -> int:
    from shared.quantity import parse_quantity

    number = parse_quantity(quantity)
    assert number is not None  # Settings checked it
    return int(number)


def _stage_out(job: Job, settings: Settings, upload_url: str) -> dict[str, Any]:
    """Zips /output through the job's upload session: `<name>-output.zip`, nothing else.
    An array job's tasks share one upload plan (Bucket.task_upload), from which each opens
    `<name>-output-<index>.zip` itself; a form upload needs room to spool the zip."""
    upload = "OUTPUT_UPLOAD_PLAN" if job.task_count is not None else "OUTPUT_UPLOAD_URL"
    env = [
        {"name": upload, "value": upload_url},
        {"name": "STAGER_RETRY_SECONDS", "value": str(settings.stager_retry)},
    ]
    mount = {"name": "output", "mountPath": "/output", "readOnly": True}
    container = _stager(job, settings, command=STAGE_OUT, env=env, mount=mount)
    if job.task_count is not None:
        container["volumeMounts"].append({"name": "spool", "mountPath": SPOOL_DIR})
        container["env"].append({"name": "TMPDIR", "value": SPOOL_DIR})
    if not settings.storage_class:
        # The emptyDir volumes live in the node's ephemeral storage: the pod's limit covers
        # them (kubelet evicts past it), its request stays small.
        container["resources"]["requests"]["ephemeral-storage"] = EPHEMERAL_REQUEST
        container["resources"]["limits"]["ephemeral-storage"] = str(_ephemeral_limit(job, settings))
    return container


def _ephemeral_limit(job: Job, settings: Settings) -> int:
    volumes = 2 if job.has_input else 1
    volumes += 1 if job.task_count is not None else 0  # the spool of a form upload
    return _bytes(settings.volume_size) * volumes + EPHEMERAL_MARGIN


def _user_container(job: Job) -> dict[str, Any]:
    params = job.job_parameters
    container: dict[str, Any] = {
        "name": USER_CONTAINER,
        "image": params["docker_image"],
        "env": [
            *_task_vars(job),
            *(
                {"name": key, "value": value}
                for key, value in sorted(params.get("environment_variables", {}).items())
            ),
        ],
        "volumeMounts": [{"name": "output", "mountPath": "/output"}],
        "securityContext": _restricted(non_root=False),
    }
    # Kubernetes' meaning: command replaces the image's ENTRYPOINT, args its CMD.
    for key in ("command", "args"):
        if params.get(key):
            container[key] = list(params[key])
    if params.get("resources"):
        container["resources"] = params["resources"]
    if job.has_input:
        container["volumeMounts"].append({"name": "input", "mountPath": "/input", "readOnly": True})
    if job.task_environments:
        # command + args become the shell's "$@" (validation made sure there is a command).
        container["args"] = [*container.pop("command"), *container.get("args", [])]
        container["command"] = ["/bin/sh", "-c", TASK_ENV_SCRIPT, "task"]
        container["volumeMounts"].append(
            {"name": "task", "mountPath": TASK_ENV_DIR, "readOnly": True}
        )
    return container


def _volume(job: Job, settings: Settings, name: str) -> dict[str, Any]:
    """An emptyDir with a sizeLimit, or, with JOB_STORAGE_CLASS, a generic ephemeral volume:
    a disk of that class made for the pod and deleted with it."""
    if not settings.storage_class:
        return {"name": name, "emptyDir": {"sizeLimit": settings.volume_size}}
    claim = {
        "metadata": {"labels": {JOB_ID: job.id, ROLE: name}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": settings.storage_class,
            "resources": {"requests": {"storage": settings.volume_size}},
        },
    }
    return {"name": name, "ephemeral": {"volumeClaimTemplate": claim}}


def _failure_policy(job: Job) -> dict[str, Any]:
    """Which failed pods count against `retries` (of each task, in an array job).

    - A pod lost to a disruption (eviction, drain, Spot preemption: the DisruptionTarget
      condition) is ignored: the Job makes a new pod and no retry is used.
    - stage-in's permanent codes fail the Job: retrying cannot fix a rejected input.
    - Any stage-out failure fails the Job (the task, in an array job: FailIndex): it
      retries its upload itself, and another pod would re-run the user's code.
    - The user's own failures count, up to `retries`.
    Rules are checked in order; exit-code lists are ascending, as the API server requires.
    """
    rules: list[dict[str, Any]] = [
        {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
    ]
    if job.has_input:
        codes = sorted(PERMANENT_CODES)
        rules.append(
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": STAGE_IN, "operator": "In", "values": codes},
            }
        )
    rules.append(
        {
            "action": "FailJob" if job.task_count is None else "FailIndex",
            "onExitCodes": {"containerName": STAGE_OUT, "operator": "NotIn", "values": [0]},
        }
    )
    return {"rules": rules}


def batch_job(
    job: Job,
    settings: Settings,
    *,
    upload_url: str,
    input_url: str | None = None,
    public_input: bool = False,
    queue: str = queues.NO_ACCOUNT,
    tasks_url: str | None = None,
) -> Manifest:
    """The job's one Job. `upload_url` is the output's upload session (Bucket.open_upload),
    `input_url` where stage-in reads the input, which a job with input needs (a signed
    URL, or the user's own, checked again by stage-in when `public_input`).

    It names its Kueue `queue` (its account's LocalQueue, or `scheduled` while its start
    time is ahead) and is created suspended: Kueue resumes it once its workload is
    admitted, within its account's quota (shared/model/queues.py).

    An array job is one Indexed Job: one pod per task, `retries` per task
    (backoffLimitPerIndex), failing once more than `max_failed_tasks` tasks have failed
    (maxFailedIndexes). `upload_url` is then the tasks' upload plan, and `tasks_url` the
    signed URL of their task_environments, if any."""
    pod = _pod(job, settings, upload_url, input_url, public_input, tasks_url)
    spec: dict[str, Any] = {
        "backoffLimit": int(job.job_parameters.get("retries", 0)),
        "activeDeadlineSeconds": run_seconds(job, settings) + JOB_DEADLINE_MARGIN,
        "podFailurePolicy": _failure_policy(job),
        # With a podFailurePolicy, a new pod starts only once the old one has failed.
        "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": labels(job, "job")}, "spec": pod},
    }
    if job.task_count is not None:
        _indexed(spec, job, settings)
    spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job.name,
            "namespace": settings.namespace,
            "labels": {**labels(job, "job"), queues.QUEUE_LABEL: queue},
        },
        "spec": spec,
    }


def _pod(
    job: Job,
    settings: Settings,
    upload_url: str,
    input_url: str | None,
    public_input: bool,
    tasks_url: str | None,
) -> dict[str, Any]:
    """The pod of the Job: stage-in, the task's environment and the user's container as
    init containers, in that order, then stage-out."""
    init = [_user_container(job)]
    volumes = [_volume(job, settings, "output")]
    if job.task_environments:
        if not tasks_url:
            raise ValueError(f"job {job.name} has task environments but no URL for them")
        init.insert(0, _task_env(job, settings, tasks_url))
        volumes.append({"name": "task", "emptyDir": {"sizeLimit": "1Mi"}})
    if job.task_count is not None:
        volumes.append({"name": "spool", "emptyDir": {"sizeLimit": settings.volume_size}})
    if job.has_input:
        if not input_url:
            raise ValueError(f"job {job.name} has input but no input URL")
        init.insert(0, _stage_in(job, settings, input_url, public=public_input))
        volumes.append(_volume(job, settings, "input"))
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # The kubelet fails a pod past its deadline and keeps it, log and all; a Job past
        # its own deadline deletes its pods, and their logs with them. So the pod's deadline
        # is the job's timeout, and the Job's, a minute later, only bounds the retries.
        "activeDeadlineSeconds": timeout_seconds(job, settings),
        "automountServiceAccountToken": False,
        # The stager (uid 10001) may write the input volume and read the output volume.
        "securityContext": {"fsGroup": STAGER_USER, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": init,
        "containers": [_stage_out(job, settings, upload_url)],
        "volumes": volumes,
    }
    if settings.job_service_account:
        pod["serviceAccountName"] = settings.job_service_account
    if job.job_parameters.get("spot"):
        _on_spot(pod)
    return pod


def _indexed(spec: dict[str, Any], job: Job, settings: Settings) -> None:
    """An array job's Indexed Job (https://kubernetes.io/docs/concepts/workloads/controllers/
    job/#backoff-limit-per-index). Its deadline lets every wave of `parallelism` tasks use
    all its retries, within the week its URLs live."""
    params = job.job_parameters
    count, parallelism = int(params["task_count"]), int(params["parallelism"])
    retries = int(params.get("retries", 0))
    del spec["backoffLimit"]  # with backoffLimitPerIndex it defaults to the largest int32
    spec.update(
        completionMode="Indexed",
        completions=count,
        parallelism=parallelism,
        backoffLimitPerIndex=retries,
        maxFailedIndexes=int(params.get("max_failed_tasks", 0)),
        activeDeadlineSeconds=run_seconds(job, settings) + JOB_DEADLINE_MARGIN,
    )


def _on_spot(pod: dict[str, Any]) -> None:
    """Only on GKE Spot nodes: GKE's provisioning label as node selector (so that Kueue
    gives it the Spot flavor's quota only), and a toleration of the taint a Spot node pool
    may carry (https://cloud.google.com/kubernetes-engine/docs/how-to/spot-vms). A
    preempted pod gets the DisruptionTarget condition, which the failure policy ignores:
    the Job makes a new pod and no retry is used."""
    pod["nodeSelector"] = {queues.PROVISIONING_LABEL: queues.PROVISIONING[queues.SPOT]}
    pod["tolerations"] = [queues.spot_toleration()]


def timeout_seconds(job: Job, settings: Settings) -> int:
    """The pod's activeDeadlineSeconds: the job's own timeout, else JOB_TIMEOUT_SECONDS. It
    bounds the whole pod (stage-in, the user's container, stage-out) of each attempt; the
    Job, retries included, ends JOB_DEADLINE_MARGIN later."""
    return int(job.job_parameters.get("timeout_seconds", settings.default_timeout))


def run_seconds(job: Job, settings: Settings) -> int:
    """How long the job's pods may take together, which its URLs must outlive: its timeout,
    or for an array job enough for every wave of `parallelism` tasks to use all its
    retries, within the week its URLs can live."""
    timeout = timeout_seconds(job, settings)
    if job.task_count is None:
        return timeout
    params = job.job_parameters
    waves = -(-job.task_count // int(params["parallelism"])) * (int(params.get("retries", 0)) + 1)
    return min(timeout * waves, MAX_JOB_SECONDS)
