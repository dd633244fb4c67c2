"""Faults in every external call of create, kill, the sync and the finalize trigger: the
Kubernetes simulator fails or stalls a request, or a process dies between two calls. After
recovery and the syncs that follow, nothing is stuck, leaked or lost (invariants.py)."""

from __future__ import annotations

import pytest

from shared.model import manifests
from shared.model.job import Job, Status, now_ms
from tests.fixtures.waiting import wait_for
from tests.robustness.helpers import create, env, reconfigure, sync_until_final
from tests.robustness.invariants import assert_settled

pytestmark = pytest.mark.usefixtures("app_env")


@pytest.fixture
def settled(backends, batch_v1, core_v1, namespace, storage_client, bucket):
    """Call to check the invariants of this test's namespace, bucket and collection."""
    return lambda: assert_settled(backends, batch_v1, core_v1, namespace, storage_client, bucket)


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def claims_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"


# -- create ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 403, 503])
def test_create_when_the_cluster_refuses(fn, cluster_faults, namespace, settled, status):
    cluster_faults.inject_fault(verb="create", path=jobs_path(namespace), status=status, count=1)
    code, body = fn.api(
        "POST",
        "/batch/",
        json={"name": "refused", "job_parameters": {"docker_image": "alpine:3"}},
    )
    assert code == 500, body
    assert body["error"] == "ClusterError"
    fn.sync()
    (job,) = settled()
    assert job.status is Status.FAILED and job.reason == "ClusterError"


def test_create_survives_a_slow_cluster(fn, cluster_faults, namespace, settled):
    cluster_faults.inject_fault(verb="create", path=jobs_path(namespace), status=0, delay_seconds=2)
    job = create(fn, "slow", **env(KUBESIM_RUN_SECONDS=0))
    assert job["status"] == "running"
    sync_until_final(fn, [job["id"]])
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


# -- a process that dies between two calls ---------------------------------------------


def test_create_that_died_before_the_job_was_made(
    fn, backends, core_v1, namespace, monkeypatch, settled
):
    """The record exists, the Job does not: failed. A volume claim labelled as the job's
    (what an earlier layout made) is swept with it."""
    job = Job(
        id="6f1e8a1c-0c39-4a8f-9a3c-2f7c1b0e9d01",
        name="crashed-early",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters={"docker_image": "alpine:3"},
    )
    backends.store.create(job)
    claim = {
        "metadata": {"name": f"job-{job.name}-output", "labels": manifests.labels(job, "output")},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim)
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    fn.sync()
    fn.sync()
    (failed,) = settled()
    assert failed.reason == "CreateInterrupted"


def test_create_that_died_after_the_job_was_made(fn, backends, monkeypatch, settled):
    """Everything was deployed but the record still says `created`: the job runs on."""
    job = Job(
        id="0a4b7f3e-5d21-4c9a-8e6f-1b2c3d4e5f60",
        name="crashed-late",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters={"docker_image": "alpine:3", **env(KUBESIM_RUN_SECONDS=0)},
    )
    backends.store.create(job)
    upload = backends.bucket.open_upload(job.output_object, job.id)
    backends.cluster.create_job(manifests.batch_job(job, backends.settings, upload_url=upload))
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    fn.sync()
    fn.sync()
    assert fn.job(job.id)["status"] in ("running", "cleaning", "succeeded")
    sync_until_final(fn, [job.id])
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


def test_kill_that_died_before_deleting(fn, backends, storage_client, bucket, settled):
    """`killed` recorded, the Job still there: the sync saves its log, then removes it."""
    job = create(fn, "half-killed", **env(KUBESIM_SH="echo started; sleep 600"))
    wait_for_log(fn, job["id"], "started")
    backends.store.transition(job["id"], Status.KILLED, reason="killed by its user")
    fn.sync()
    (killed,) = settled()
    assert killed.status is Status.KILLED
    log = storage_client.bucket(bucket).get_blob("half-killed-logs.txt")
    assert log.download_as_bytes() == b"started\n"


def wait_for_log(fn, job_id: str, text: str) -> None:
    def logged() -> bool:
        return text in fn.api("GET", f"/batch/{job_id}/logs")[1]["data"]["log"]

    wait_for(logged, what=f"the job to log {text!r}")


def test_a_log_that_cannot_be_saved_keeps_the_pod_until_it_is(
    fn, monkeypatch, batch_v1, namespace, storage_client, bucket, settled
):
    """Killed while Cloud Storage is out of reach: the kill answers, the pod stays (its log
    is all the user has), and the sync saves the log and deletes it once storage is back."""
    import os

    job = create(fn, "kept", **env(KUBESIM_SH="echo precious; sleep 600"))
    wait_for_log(fn, job["id"], "precious")
    reachable = os.environ["STORAGE_EMULATOR_HOST"]
    reconfigure(
        monkeypatch, STORAGE_EMULATOR_HOST=f"http://{dead_address()}", BACKEND_TIMEOUT_SECONDS="2"
    )
    code, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert (code, body["data"]["status"]) == (200, "killed"), body
    assert "next synchronization" in body["msg"]
    assert [j.metadata.name for j in batch_v1.list_namespaced_job(namespace).items] == ["kept"]
    reconfigure(monkeypatch, STORAGE_EMULATOR_HOST=reachable)
    fn.sync()
    (killed,) = settled()
    assert killed.status is Status.KILLED
    log = storage_client.bucket(bucket).get_blob("kept-logs.txt")
    assert log.download_as_bytes() == b"precious\n"


# -- kill --------------------------------------------------------------------------------


def test_kill_when_the_cluster_refuses_the_deletes(fn, cluster_faults, namespace, settled):
    job = create(fn, "sticky", **env(KUBESIM_RUN_SECONDS=600))
    cluster_faults.inject_fault(verb="delete", path=".*", status=500, count=10)
    code, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert code == 200, body
    assert body["data"]["status"] == "killed"
    assert "next synchronization" in body["msg"]
    cluster_faults.clear_faults()
    fn.sync()
    (killed,) = settled()
    assert killed.status is Status.KILLED


# -- the sync ------------------------------------------------------------------------------


@pytest.mark.parametrize("listing", ["jobs", "claims", "pods"])
def test_a_failed_listing_fails_no_job(fn, cluster_faults, namespace, settled, listing):
    job = create(fn, f"listed-{listing}", **env(KUBESIM_EXIT_CODE=3))
    path = {
        "jobs": jobs_path(namespace),
        "claims": claims_path(namespace),
        "pods": f"/api/v1/namespaces/{namespace}/pods",
    }[listing]
    cluster_faults.inject_fault(verb="list", path=path, status=500, count=3)
    for _ in range(3):
        fn.clients["synchronize_batch_jobs"].post("/")  # may answer 500: nothing is decided
        status = fn.job(job["id"])["status"]
        assert status in ("running", "cleaning", "failed")
        if status == "failed":
            assert fn.job(job["id"])["reason"] == "Error"  # never JobMissing
    cluster_faults.clear_faults()
    sync_until_final(fn, [job["id"]])
    (failed,) = settled()
    assert failed.reason == "Error"


def test_a_slow_cluster_during_the_sync(fn, cluster_faults, settled):
    job = create(fn, "slow-sync", **env(KUBESIM_RUN_SECONDS=0))
    cluster_faults.inject_fault(verb="list", status=0, delay_seconds=1.5, count=2)
    sync_until_final(fn, [job["id"]])
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


def test_deletes_refused_after_success_are_swept_later(
    fn, cluster_faults, settled, batch_v1, namespace
):
    job = create(fn, "swept", **env(KUBESIM_RUN_SECONDS=0))
    cluster_faults.inject_fault(verb="delete", path=".*", status=500, count=4)
    sync_until_final(fn, [job["id"]])
    cluster_faults.clear_faults()
    fn.sync()
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


# -- the finalize trigger -------------------------------------------------------------------


def test_finalize_when_the_cluster_refuses_the_deletes(
    fn, cluster_faults, storage_client, bucket, batch_v1, namespace, settled
):
    from tests.api.test_lifecycle import wait_for_output

    job = create(fn, "finalized", **env(KUBESIM_SH="echo hi > /output/x"))
    blob = wait_for_output(storage_client, bucket, job["name"])
    cluster_faults.inject_fault(verb="delete", path=".*", status=500, count=10)
    data = {"bucket": bucket, "name": blob.name, "metadata": blob.metadata}
    assert fn.finalize(data, "f1") == 200
    assert fn.job(job["id"])["status"] == "succeeded"
    cluster_faults.clear_faults()
    fn.sync()
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


# -- a backend out of reach ---------------------------------------------------------------


def dead_address() -> str:
    from infra.local.procs import free_port

    return f"127.0.0.1:{free_port()}"  # nothing listens there


def test_firestore_out_of_reach(fn, monkeypatch, batch_v1, namespace, bucket, settled):
    """Every entry point answers at once in the envelope and changes nothing; once Firestore
    is back, the job carries on."""
    import os
    import time

    job = create(fn, "before-outage", **env(KUBESIM_RUN_SECONDS=0))
    reachable = os.environ["FIRESTORE_EMULATOR_HOST"]
    reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=dead_address(), BACKEND_TIMEOUT_SECONDS="2")
    started = time.monotonic()
    assert fn.api("GET", f"/batch/{job['id']}")[0] == 503
    code, body = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": "alpine"}})
    assert (code, body["error"]) == (503, "DatabaseError"), body
    assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 503
    assert fn.api("GET", "/batch/?status=running")[0] == 503
    assert fn.clients["synchronize_batch_jobs"].post("/").status_code == 503
    event = {"bucket": bucket, "name": "before-outage-output.zip", "metadata": {}}
    assert fn.finalize(event) == 500  # Eventarc delivers it again later
    assert time.monotonic() - started < 120  # six calls, each bounded (unbounded: minutes)
    assert [j.metadata.name for j in batch_v1.list_namespaced_job(namespace).items] == [
        "before-outage"
    ]
    reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=reachable)
    sync_until_final(fn, [job["id"]])
    (done,) = settled()
    assert done.status is Status.SUCCEEDED


def test_a_stalled_cluster_call_gives_up(
    fn, cluster_faults, monkeypatch, batch_v1, namespace, settled
):
    """The API server accepts the request and never answers in time: create fails cleanly
    after BACKEND_TIMEOUT_SECONDS instead of hanging the function."""
    import time

    reconfigure(monkeypatch, BACKEND_TIMEOUT_SECONDS="1")
    # The new clients' connections are opened first: only the cluster call may be slow.
    assert fn.api("GET", "/batch/?status=running")[0] == 200
    assert fn.api("POST", "/batch/", json={"name": "warm", "job_parameters": {}})[0] == 400
    # No status: after the delay the request goes through, too late for the create.
    cluster_faults.inject_fault(
        verb="create", path=jobs_path(namespace), status=0, delay_seconds=10
    )
    started = time.monotonic()
    code, body = fn.api(
        "POST", "/batch/", json={"name": "stalled", "job_parameters": {"docker_image": "alpine"}}
    )
    assert time.monotonic() - started < 10  # it gave up before the cluster answered
    assert (code, body["error"]) == (500, "ClusterError"), body
    # The stalled request completes on the server: a Job nobody tracks. Wait for it.
    wait_for(lambda: batch_v1.list_namespaced_job(namespace).items, what="the stalled create")
    fn.sync()
    (failed,) = settled()
    assert failed.reason == "ClusterError"


def test_storage_out_of_reach(fn, monkeypatch, settled):
    """A create answers 503 in the envelope within the timeout and leaves nothing behind; a
    job whose output lands during the outage (its pod needs no credentials: its upload
    session reaches the bucket) is confirmed by a later sync, never failed meanwhile."""
    import os
    import time

    from tests.fixtures.api import zip_b64

    job = create(fn, "before-storage-outage", **env(KUBESIM_RUN_SECONDS=0))
    reachable = os.environ["STORAGE_EMULATOR_HOST"]
    reconfigure(
        monkeypatch, STORAGE_EMULATOR_HOST=f"http://{dead_address()}", BACKEND_TIMEOUT_SECONDS="2"
    )
    started = time.monotonic()
    params = {"docker_image": "alpine:3", "input_zip": zip_b64({"a.txt": b"a"})}
    code, body = fn.api("POST", "/batch/", json={"name": "during", "job_parameters": params})
    assert (code, body["error"]) == (503, "StorageError"), body
    assert time.monotonic() - started < 30  # the upload, then the undo's delete: not minutes
    plain = {"name": "plain", "job_parameters": {"docker_image": "alpine:3"}}
    code, body = fn.api("POST", "/batch/", json=plain)
    assert (code, body["error"]) == (503, "StorageError"), body  # no upload session either
    for _ in range(6):
        fn.sync()  # the output cannot be confirmed while Cloud Storage is away
        assert fn.job(job["id"])["status"] in ("running", "cleaning")
        time.sleep(0.3)
    reconfigure(monkeypatch, STORAGE_EMULATOR_HOST=reachable)
    sync_until_final(fn, [job["id"]])
    done, failed, plain = sorted(settled(), key=lambda j: j.name)
    assert done.status is Status.SUCCEEDED
    assert (failed.name, failed.reason) == ("during", "StorageError")
    assert (plain.name, plain.reason) == ("plain", "StorageError")


def test_credentials_that_cannot_sign_the_input_url(fn, monkeypatch, settled):
    """Off the emulator with credentials that cannot sign, a create with input is refused
    as a deployment problem (500 ConfigurationError) and undone; one without input runs."""
    from tests.fixtures.api import zip_b64

    backends = reconfigure(monkeypatch)
    assert backends.bucket  # the client still talks to the emulator...
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")  # ...but the bucket must now sign URLs
    params = {"docker_image": "alpine:3", "input_zip": zip_b64({"a.txt": b"a"})}
    code, body = fn.api("POST", "/batch/", json={"name": "unsigned", "job_parameters": params})
    assert (code, body["error"]) == (500, "ConfigurationError"), body
    assert "Could not sign the input URL of job unsigned" in body["msg"]
    plain = create(fn, "no-input", **env(KUBESIM_RUN_SECONDS=0))
    sync_until_final(fn, [plain["id"]])
    done, failed = sorted(settled(), key=lambda j: j.name)
    assert done.status is Status.SUCCEEDED
    assert (failed.name, failed.reason) == ("unsigned", "ConfigurationError")


def test_the_signing_service_out_of_reach(fn, monkeypatch, settled, google_identity):
    """Deployed, the functions hold no key and sign input URLs through IAM signBlob. While
    it does not answer, a create with input answers 503 within the timeout and is undone;
    once it answers, a job with input stages in through its signed URL and succeeds."""
    import time

    from tests.fixtures.api import zip_b64

    google_identity.answer = "stall"
    reconfigure(monkeypatch, BACKEND_TIMEOUT_SECONDS="2")
    params = {"docker_image": "alpine:3", "input_zip": zip_b64({"a.txt": b"a"})}
    started = time.monotonic()
    code, body = fn.api("POST", "/batch/", json={"name": "iam-stalls", "job_parameters": params})
    assert (code, body["error"]) == (503, "StorageError"), body
    assert "Could not sign the input URL of job iam-stalls" in body["msg"]
    assert time.monotonic() - started < 30  # the signature, then the undo: not minutes
    google_identity.answer = "ok"
    job = create(
        fn,
        "iam-signs",
        input_zip=zip_b64({"a.txt": b"a"}),
        **env(KUBESIM_SH="cp -r /input/. /output/", KUBESIM_RUN_SECONDS=0),
    )
    sync_until_final(fn, [job["id"]])
    assert google_identity.signed  # the job's URL was signed by IAM, not by a key
    done, failed = sorted(settled(), key=lambda j: j.name)
    assert (done.name, done.status) == ("iam-signs", Status.SUCCEEDED)
    assert (failed.name, failed.reason) == ("iam-stalls", "StorageError")
