"""The manifests the product generates: labelled, namespaced, least privilege."""

from __future__ import annotations

import uuid

import pytest

from shared import manifests
from shared.model import Job, Status, now_ms
from shared.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env(
        {"GC_BUCKET_NAME": "bkt", "KUBERNETES_NAMESPACE": "jobs", "STAGER_IMAGE": "st:1", **env}
    )


def job(has_input: bool = True, **params) -> Job:
    return Job(
        id=str(uuid.uuid4()),
        name="alpine-123",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters={"docker_image": "alpine:3", **params},
        has_input=has_input,
    )


def all_objects(j: Job, s: Settings) -> list[dict]:
    objects = [
        manifests.batch_job(j, s),
        manifests.cleanup_job(j, s),
        manifests.volume_claim(j, s, name=j.output_claim, role="output"),
    ]
    if j.has_input:
        objects.append(manifests.volume_claim(j, s, name=j.input_claim, role="input"))
    return objects


def containers(manifest: dict) -> list[dict]:
    pod = manifest["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


@pytest.mark.parametrize("has_input", [True, False])
@pytest.mark.parametrize("credentials", ["", "/keys/sa.json"])
def test_security_defaults(has_input, credentials):
    j, s = job(has_input), settings(GC_CREDENTIALS_FILE_PATH=credentials)
    for obj in all_objects(j, s):
        assert obj["metadata"]["namespace"] == "jobs"
        assert obj["metadata"]["labels"][manifests.MANAGED_BY] == manifests.MANAGER
        assert obj["metadata"]["labels"][manifests.JOB_ID] == j.id
    for kube_job in all_objects(j, s)[:2]:
        pod = kube_job["spec"]["template"]
        assert pod["metadata"]["labels"][manifests.JOB_ID] == j.id
        assert pod["spec"]["automountServiceAccountToken"] is False
        for container in containers(kube_job):
            context = container["securityContext"]
            assert context["privileged"] is False
            assert context["allowPrivilegeEscalation"] is False
            if container["image"] == "st:1":
                assert context["runAsNonRoot"] is True
                assert context["readOnlyRootFilesystem"] is True
                assert context["runAsUser"] != 0


def test_job_stages_input_first_and_fails_fast_on_a_rejected_input():
    j = job(retries=2, timeout_seconds=60, environment_variables={"B": "2", "A": "1"})
    url = "https://storage.googleapis.com/bkt/alpine-123-input.zip?X-Goog-Signature=abc"
    manifest = manifests.batch_job(j, settings(MAX_INPUT_BYTES="1000"), input_url=url)
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == "alpine-123"
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 60
    (init,) = spec["template"]["spec"]["initContainers"]
    assert init["command"] == ["python", "-m", "shared.stager", "stage-in"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["INPUT_URL"] == url
    assert env["STAGER_DIR"] == "/input"
    assert env["MAX_INPUT_BYTES"] == "1000"
    assert "STAGER_BUCKET" not in env  # the signed URL is all it can reach
    (user,) = spec["template"]["spec"]["containers"]
    assert user["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert {m["mountPath"] for m in user["volumeMounts"]} == {"/input", "/output"}
    (rule,) = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert manifests.STAGER_INPUT_REJECTED in rule["onExitCodes"]["values"]
    assert 66 in rule["onExitCodes"]["values"]  # missing input or an expired URL
    assert rule["onExitCodes"]["containerName"] == "stage-in"


def test_job_without_input_has_no_init_container_and_default_limits():
    spec = manifests.batch_job(job(has_input=False), settings())["spec"]
    assert "initContainers" not in spec["template"]["spec"]
    assert "podFailurePolicy" not in spec
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 86400
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"]["volumes"]]
    assert claims == ["job-alpine-123-output"]


def test_cleanup_uploads_the_output_volume():
    manifest = manifests.cleanup_job(job(), settings())
    assert manifest["metadata"]["name"] == "alpine-123-cleanup"
    (stage_out,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in stage_out["env"]}
    assert env["STAGER_OBJECT"] == "alpine-123-output.zip"
    assert stage_out["volumeMounts"] == [{"name": "output", "mountPath": "/output"}]


def test_key_file_is_mounted_from_a_secret_only_when_configured():
    plain = manifests.cleanup_job(job(), settings())
    assert "gcs-credentials" not in str(plain)
    keyed = manifests.cleanup_job(job(), settings(GC_CREDENTIALS_FILE_PATH="/k.json"))
    volumes = keyed["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "gcs-credentials",
        "secret": {"secretName": manifests.CREDENTIALS_SECRET},
    } in volumes
    workload_identity = manifests.cleanup_job(job(), settings(STAGER_SERVICE_ACCOUNT="stager"))
    assert workload_identity["spec"]["template"]["spec"]["serviceAccountName"] == "stager"


def test_only_the_cleanup_pod_holds_the_bucket_identity():
    s = settings(
        STAGER_SERVICE_ACCOUNT="stager",
        JOB_SERVICE_ACCOUNT="jobs-ksa",
        GC_CREDENTIALS_FILE_PATH="/k.json",
    )
    user_pod = manifests.batch_job(job(), s, input_url="https://x/y?sig")["spec"]["template"]
    assert user_pod["spec"]["serviceAccountName"] == "jobs-ksa"
    assert "gcs-credentials" not in str(user_pod)
    assert "GC_CREDENTIALS_FILE_PATH" not in str(user_pod)
    cleanup_pod = manifests.cleanup_job(job(), s)["spec"]["template"]
    assert cleanup_pod["spec"]["serviceAccountName"] == "stager"
    assert "gcs-credentials" in str(cleanup_pod)


def test_user_pods_use_the_namespace_default_account_when_none_is_set():
    pod = manifests.batch_job(job(has_input=False), settings())["spec"]["template"]["spec"]
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
