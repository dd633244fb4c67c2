"""The one Job a job is: its pod's layout, its failure policy, labelled, namespaced, least
privilege, and no Google identity anywhere."""

from __future__ import annotations

import uuid

import pytest

from shared.model import manifests, queues
from shared.model.job import Job, Status, now_ms
from shared.settings import Settings

UPLOAD = "https://storage.googleapis.com/upload/storage/v1/b/bkt/o?uploadType=resumable&upload_id=U"
INPUT = "https://storage.googleapis.com/bkt/alpine-123-input.zip?X-Goog-Signature=abc"


def settings(**env: str) -> Settings:
    return Settings.from_env(
        {
            "GC_BUCKET_NAME": "bkt",
            "KUBERNETES_NAMESPACE": "jobs",
            "STAGER_IMAGE": "st:1",
            "ACCESS_CONTROL": "off",
            **env,
        }
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


def manifest(j: Job, s: Settings) -> dict:
    return manifests.batch_job(j, s, upload_url=UPLOAD, input_url=INPUT if j.has_input else None)


def pod_spec(m: dict) -> dict:
    return m["spec"]["template"]["spec"]


def containers(m: dict) -> list[dict]:
    pod = pod_spec(m)
    return pod.get("initContainers", []) + pod["containers"]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("has_input", [True, False])
@pytest.mark.parametrize("credentials", ["", "/keys/sa.json"])
@pytest.mark.parametrize("storage_class", ["", "premium-rwo"])
def test_security_defaults(has_input, credentials, storage_class):
    j = job(has_input)
    s = settings(GC_CREDENTIALS_FILE_PATH=credentials, JOB_STORAGE_CLASS=storage_class)
    m = manifest(j, s)
    assert m["metadata"]["namespace"] == "jobs"
    assert m["metadata"]["labels"][manifests.MANAGED_BY] == manifests.MANAGER
    assert m["metadata"]["labels"][manifests.JOB_ID] == j.id
    pod = m["spec"]["template"]
    assert pod["metadata"]["labels"][manifests.JOB_ID] == j.id
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "persistentVolumeClaim" not in str(pod)  # no claim of the product's own
    for container in containers(m):
        context = container["securityContext"]
        assert context["privileged"] is False
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        if container["image"] == "st:1":
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["runAsUser"] != 0
    # No Google identity: no key, no credentials variable, no Workload Identity account.
    assert "GC_CREDENTIALS_FILE_PATH" not in str(m)
    assert "secret" not in str(pod).lower()
    assert "serviceAccountName" not in pod["spec"]


def test_one_pod_stages_in_then_runs_the_job_then_stages_out():
    j = job(retries=2, timeout_seconds=60, environment_variables={"B": "2", "A": "1"})
    m = manifest(j, settings(MAX_INPUT_BYTES="1000", STAGER_RETRY_SECONDS="30"))
    spec = m["spec"]
    assert m["metadata"]["name"] == "alpine-123"
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 60 + 60  # the pod's deadline, then a minute
    assert spec["template"]["spec"]["activeDeadlineSeconds"] == 60
    assert spec["podReplacementPolicy"] == "Failed"
    stage_in, user = pod_spec(m)["initContainers"]
    (stage_out,) = pod_spec(m)["containers"]
    assert [stage_in["name"], user["name"], stage_out["name"]] == ["stage-in", "job", "stage-out"]
    assert stage_in["command"] == ["python", "-m", "shared.stager", "stage-in"]
    assert env_of(stage_in)["INPUT_URL"] == INPUT
    assert env_of(stage_in)["STAGER_DIR"] == "/input"
    assert env_of(stage_in)["MAX_INPUT_BYTES"] == "1000"
    assert user["image"] == "alpine:3"
    assert user["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in user["volumeMounts"]}
    assert mounts == {"/input": True, "/output": False}
    assert stage_out["command"] == ["python", "-m", "shared.stager", "stage-out"]
    out_env = env_of(stage_out)
    assert out_env["OUTPUT_UPLOAD_URL"] == UPLOAD
    assert out_env["STAGER_DIR"] == "/output"
    assert out_env["STAGER_JOB_ID"] == j.id
    assert out_env["STAGER_RETRY_SECONDS"] == "30"
    assert not {"STAGER_BUCKET", "STAGER_OBJECT", "INPUT_URL"} & set(out_env)
    assert stage_out["volumeMounts"] == [
        {"name": "output", "mountPath": "/output", "readOnly": True}
    ]
    for stager in (stage_in, stage_out):
        assert stager["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_failure_policy_ignores_disruptions_and_never_reruns_the_user_after_stage_out():
    rules = manifest(job(), settings())["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    stage_in = rules[1]["onExitCodes"]
    assert (rules[1]["action"], stage_in["containerName"], stage_in["operator"]) == (
        "FailJob",
        "stage-in",
        "In",
    )
    assert stage_in["values"] == sorted(stage_in["values"])  # the API server requires it
    assert {65, 66} <= set(stage_in["values"])  # rejected, or missing (an expired URL)
    assert rules[2] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "stage-out", "operator": "NotIn", "values": [0]},
    }
    assert not any("job" == r.get("onExitCodes", {}).get("containerName") for r in rules)


def test_a_job_without_input_has_no_stage_in_and_default_limits():
    m = manifest(job(has_input=False), settings())
    spec = m["spec"]
    assert [c["name"] for c in pod_spec(m)["initContainers"]] == ["job"]
    assert [
        r.get("onExitCodes", {}).get("containerName") for r in spec["podFailurePolicy"]["rules"]
    ] == [
        None,
        "stage-out",
    ]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 86400 + 60
    assert spec["template"]["spec"]["activeDeadlineSeconds"] == 86400
    assert pod_spec(m)["volumes"] == [{"name": "output", "emptyDir": {"sizeLimit": "10Gi"}}]
    with pytest.raises(ValueError, match="no input URL"):
        manifests.batch_job(job(), settings(), upload_url=UPLOAD)


def test_volumes_are_empty_dirs_counted_in_the_pods_ephemeral_storage():
    m = manifest(job(), settings(JOB_VOLUME_SIZE="2Gi"))
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    assert volumes["input"] == {"name": "input", "emptyDir": {"sizeLimit": "2Gi"}}
    assert volumes["output"] == {"name": "output", "emptyDir": {"sizeLimit": "2Gi"}}
    (stage_out,) = pod_spec(m)["containers"]
    resources = stage_out["resources"]
    assert resources["limits"]["ephemeral-storage"] == str(2 * 2**31 + 2**30)  # two volumes + 1Gi
    assert resources["requests"]["ephemeral-storage"] == "256Mi"


def test_a_storage_class_gives_each_pod_its_own_disks():
    m = manifest(job(), settings(JOB_STORAGE_CLASS="premium-rwo", JOB_VOLUME_SIZE="50Gi"))
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    claim = volumes["output"]["ephemeral"]["volumeClaimTemplate"]
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "premium-rwo",
        "resources": {"requests": {"storage": "50Gi"}},
    }
    assert "ephemeral" in volumes["input"]
    (stage_out,) = pod_spec(m)["containers"]
    assert "ephemeral-storage" not in stage_out["resources"]["limits"]


def test_job_pods_run_as_the_job_account_when_one_is_set():
    m = manifest(
        job(), settings(JOB_SERVICE_ACCOUNT="jobs-ksa", GC_CREDENTIALS_FILE_PATH="/k.json")
    )
    assert pod_spec(m)["serviceAccountName"] == "jobs-ksa"
    assert "/k.json" not in str(m)


@pytest.mark.parametrize("size", ["ten", "-1Gi", "0"])
def test_a_volume_size_that_is_no_quantity_is_refused_at_start(size):
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="JOB_VOLUME_SIZE"):
        settings(JOB_VOLUME_SIZE=size)


def test_command_and_args_keep_their_kubernetes_meaning():
    user = manifest(job(False, command=["python", "-c"], args=["print(1)"]), settings())
    (container,) = pod_spec(user)["initContainers"]
    assert container["command"] == ["python", "-c"] and container["args"] == ["print(1)"]
    alone = pod_spec(manifest(job(False, args=["--fast"]), settings()))["initContainers"][0]
    assert alone["args"] == ["--fast"] and "command" not in alone  # the image's ENTRYPOINT
    neither = pod_spec(manifest(job(False), settings()))["initContainers"][0]
    assert "command" not in neither and "args" not in neither


def test_spot_selects_spot_nodes_and_tolerates_their_taint():
    pod = pod_spec(manifest(job(False, spot=True), settings()))
    assert pod["nodeSelector"] == {"cloud.google.com/gke-provisioning": "spot"}
    assert pod["tolerations"] == [
        {
            "key": "cloud.google.com/gke-spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        }
    ]
    plain = pod_spec(manifest(job(False), settings()))
    assert "nodeSelector" not in plain and "tolerations" not in plain


def test_every_job_is_made_suspended_in_its_queue_for_kueue_to_admit():
    j = job(False)
    held = manifests.batch_job(j, settings(), upload_url=UPLOAD, queue=queues.SCHEDULED)
    assert held["metadata"]["labels"][queues.QUEUE_LABEL] == "scheduled"
    plain = manifest(j, settings())
    assert plain["spec"]["suspend"] is True
    assert manifests.queue_of(plain) == queues.NO_ACCOUNT
    team = manifests.batch_job(j, settings(), upload_url=UPLOAD, queue="team-a")
    assert manifests.queue_of(team) == "team-a"


def test_stage_in_limits_and_address_checks_by_input_source():
    s = settings(MAX_INPUT_URL_BYTES=str(5 * 2**30), JOB_VOLUME_SIZE="20Gi")
    inline = env_of(pod_spec(manifest(job(True), s))["initContainers"][0])
    assert inline["MAX_INPUT_BYTES"] == str(s.max_input_bytes)
    assert inline["MAX_INPUT_UNCOMPRESSED_BYTES"] == str(s.max_input_uncompressed)
    assert "INPUT_URL_PUBLIC_ONLY" not in inline
    by_url = job(True, input_url="https://example.com/in.zip")
    m = manifests.batch_job(
        by_url, s, upload_url=UPLOAD, input_url="https://example.com/in.zip", public_input=True
    )
    stage_in = env_of(pod_spec(m)["initContainers"][0])
    assert stage_in["INPUT_URL"] == "https://example.com/in.zip"
    assert stage_in["INPUT_URL_PUBLIC_ONLY"] == "1"
    assert stage_in["MAX_INPUT_BYTES"] == str(5 * 2**30)
    assert stage_in["MAX_INPUT_UNCOMPRESSED_BYTES"] == str(20 * 2**30)  # what /input holds
    uploaded = env_of(pod_spec(manifest(job(True, input_upload=True), s))["initContainers"][0])
    assert uploaded["MAX_INPUT_BYTES"] == str(5 * 2**30) and "INPUT_URL_PUBLIC_ONLY" not in uploaded
    assert "STAGER_SKIP" not in uploaded


def test_a_submissions_stage_in_leaves_its_job_json_out():
    s = settings(MAX_INPUT_URL_BYTES=str(5 * 2**30))
    submitted = job(True)
    submitted.submission, submitted.submission_generation = "submissions/alpine-123.zip", 7
    assert submitted.input_object == "submissions/alpine-123.zip"
    stage_in = env_of(pod_spec(manifest(submitted, s))["initContainers"][0])
    assert stage_in["STAGER_SKIP"] == "job.json"
    assert stage_in["MAX_INPUT_BYTES"] == str(5 * 2**30)
    bare = job(False)
    bare.submission = "submissions/alpine-123.zip"
    assert [c["name"] for c in containers(manifest(bare, s))] == ["job", "stage-out"]
