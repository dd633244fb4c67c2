"""Security defaults, checked on the manifests the product generates for many kinds of job
and settings, and on what actually lands in the cluster through the API."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from shared.model import manifests
from shared.model.job import Job, Status, now_ms
from shared.settings import Settings
from tests.robustness.helpers import create, env

BASE = Settings.from_env(
    {
        "GC_BUCKET_NAME": "jobs-bucket",
        "KUBERNETES_NAMESPACE": "tenant-a",
        "STAGER_IMAGE": "s:1",
        "ACCESS_CONTROL": "off",
    }
)
SETTINGS = [
    BASE,
    dataclasses.replace(BASE, credentials_file="/secrets/key.json"),
    dataclasses.replace(BASE, storage_class="premium-rwo"),
    dataclasses.replace(
        BASE, credentials_file="/secrets/key.json", job_service_account="task-runner-job"
    ),
]
INPUT_URL = "https://storage.googleapis.com/jobs-bucket/in.zip?X-Goog-Signature=0f"
UPLOAD_URL = "https://storage.googleapis.com/upload/storage/v1/b/jobs-bucket/o?upload_id=x"
PARAMS: list[dict[str, Any]] = [
    {"docker_image": "alpine:3"},
    {
        "docker_image": "ghcr.io/acme/train:2",
        "environment_variables": {"A": "1"},
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}},
        "timeout_seconds": 60,
        "retries": 2,
    },
]


def jobs() -> Iterator[Job]:
    for number, (params, has_input) in enumerate(itertools.product(PARAMS, [False, True])):
        yield Job(
            id=f"00000000-0000-4000-8000-00000000000{number}",
            name=f"sec-{number}",
            status=Status.CREATED,
            created=now_ms(),
            job_parameters=params,
            has_input=has_input,
        )


def generated() -> Iterator[tuple[Settings, Job, dict[str, Any]]]:
    """Every object the product creates for a job (its one Job), for each settings and job."""
    for settings, job in itertools.product(SETTINGS, jobs()):
        input_url = INPUT_URL if job.has_input else None
        manifest = manifests.batch_job(job, settings, upload_url=UPLOAD_URL, input_url=input_url)
        yield settings, job, manifest


CASES = list(generated())
IDS = [f"{obj['kind']}-{obj['metadata']['name']}-{n}" for n, (_, _, obj) in enumerate(CASES)]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    return obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else None


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize(("settings", "job", "obj"), CASES, ids=IDS)
def test_every_object_is_labelled_and_in_the_configured_namespace(settings, job, obj):
    metadata = obj["metadata"]
    assert metadata["namespace"] == settings.namespace
    assert metadata["labels"][manifests.MANAGED_BY] == manifests.MANAGER
    assert metadata["labels"][manifests.JOB_ID] == job.id
    if obj["kind"] == "Job":
        template_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert template_labels[manifests.MANAGED_BY] == manifests.MANAGER
        assert template_labels[manifests.JOB_ID] == job.id


JOB_CASES = [(s, j, o) for s, j, o in CASES if o["kind"] == "Job"]
JOB_IDS = [f"{o['metadata']['name']}-{n}" for n, (_, _, o) in enumerate(JOB_CASES)]


@pytest.mark.parametrize(("settings", "job", "obj"), JOB_CASES, ids=JOB_IDS)
def test_pods_are_unprivileged_and_hold_no_token(settings, job, obj):
    spec = pod_spec(obj)
    assert spec is not None
    assert spec["automountServiceAccountToken"] is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(key), key
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} in ({"emptyDir"}, {"ephemeral"}), volume  # no hostPath
    for container in containers(spec):
        context = container["securityContext"]
        assert context["privileged"] is False
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert not container.get("ports")


@pytest.mark.parametrize(("settings", "job", "obj"), JOB_CASES, ids=JOB_IDS)
def test_the_stager_runs_as_non_root_on_a_read_only_root(settings, job, obj):
    spec = pod_spec(obj)
    assert spec is not None
    stagers = [c for c in containers(spec) if c["image"] == settings.stager_image]
    assert len(stagers) == 1 + job.has_input  # stage-out, and stage-in when there is input
    for stager in stagers:
        context = stager["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == manifests.STAGER_USER != 0
        assert context["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(("settings", "job", "obj"), JOB_CASES, ids=JOB_IDS)
def test_no_pod_holds_a_google_identity(settings, job, obj):
    """No key, no Workload Identity account, no bucket name: the pod reaches exactly its
    input (a signed URL) and its output (an upload session), so its code cannot reach
    other jobs' objects."""
    spec = pod_spec(obj)
    assert spec is not None
    assert spec.get("serviceAccountName") == settings.job_service_account
    assert not [v for v in spec["volumes"] if "secret" in v or "projected" in v]
    for container in containers(spec):
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        assert mounts and all(path in ("/input", "/output") for path in mounts)
        names = {e["name"] for e in container.get("env", [])}
        assert not names & {"GC_CREDENTIALS_FILE_PATH", "STAGER_BUCKET", "GC_BUCKET_NAME"}
        assert settings.bucket not in str(container.get("env", [])).replace(UPLOAD_URL, "").replace(
            INPUT_URL, ""
        )


@pytest.mark.usefixtures("app_env")
def test_what_lands_in_the_cluster_keeps_the_defaults(fn, batch_v1, core_v1, namespace):
    from tests.api.conftest import zip_b64

    job = create(fn, "landed", input_zip=zip_b64({"a.txt": b"x"}), **env(KUBESIM_RUN_SECONDS=600))
    (k8s_job,) = batch_v1.list_namespaced_job(namespace).items
    spec = k8s_job.spec.template.spec
    assert spec.automount_service_account_token is False
    for container in (spec.init_containers or []) + spec.containers:
        assert container.security_context.privileged is False
        assert container.security_context.allow_privilege_escalation is False
    stage_in, _ = spec.init_containers
    stage_in_env = {e.name: e.value for e in stage_in.env}
    assert stage_in_env["INPUT_URL"].endswith("/landed-input.zip?alt=media")
    assert "STAGER_BUCKET" not in stage_in_env
    (stage_out,) = spec.containers
    upload = {e.name: e.value for e in stage_out.env}["OUTPUT_UPLOAD_URL"]
    assert "uploadType=resumable" in upload and "landed-output.zip" in upload
    # everything of this job, wherever it is, is labelled and in the configured namespace
    mine = f"{manifests.JOB_ID}={job['id']}"
    everywhere = (
        batch_v1.list_job_for_all_namespaces(label_selector=mine).items
        + core_v1.list_persistent_volume_claim_for_all_namespaces(label_selector=mine).items
        + core_v1.list_pod_for_all_namespaces(label_selector=mine).items
    )
    assert not core_v1.list_persistent_volume_claim_for_all_namespaces(label_selector=mine).items
    assert len(batch_v1.list_job_for_all_namespaces(label_selector=mine).items) == 1
    for obj in everywhere:
        assert obj.metadata.namespace == namespace
        assert obj.metadata.labels[manifests.MANAGED_BY] == manifests.MANAGER
