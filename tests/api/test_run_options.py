"""What a job runs and where its input comes from: command and args, input_url (gs:// and
https://), input_upload started by its finalize event, start_after, and Spot.

Jobs of the `python` and `alpine` images run their real command in the node agent's sandbox, so
data really flows from /input to /output.
"""

from __future__ import annotations

import datetime
import http.server
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from shared.model.job import Status
from tests.api.conftest import status_is, zip_b64
from tests.fixtures.api import zip_bytes
from tests.fixtures.network import HIDDEN_PRIVATE_HOSTS
from tests.fixtures.waiting import wait_for
from tests.robustness.helpers import reconfigure

FINAL = status_is(Status.SUCCEEDED, Status.FAILED, Status.KILLED)
COPY = "import shutil; shutil.copytree('/input', '/output', dirs_exist_ok=True)"


def post(fn, **params: Any) -> tuple[int, dict[str, Any]]:
    body = {"job_parameters": {"docker_image": "python:3.11", **params}}
    return fn.api("POST", "/batch/", json=body)


def create(fn, **params: Any) -> dict[str, Any]:
    status, body = post(fn, **params)
    assert status == 200, body
    return body["data"]


def field_error(fn, **params: Any) -> dict[str, Any]:
    status, body = post(fn, **params)
    assert status == 400, body
    assert body["error"] == "InvalidParameters" and body["result"] is False
    return body["data"]["job_parameters"]


def output_files(job: dict[str, Any]) -> dict[str, bytes]:
    assert job["status"] == "succeeded", job
    response = requests.get(job["output_file_url"], timeout=30)
    response.raise_for_status()
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def run(fn, **params: Any) -> dict[str, Any]:
    job = create(fn, **params)
    return fn.sync_until(job["id"], FINAL, timeout=60)


# -- command and args -------------------------------------------------------------------------


def test_command_alone_replaces_the_entrypoint(fn):
    job = run(
        fn,
        docker_image="alpine:3",
        input_zip=zip_b64({"a.txt": b"alpha"}),
        command=["sh", "-c", "cp /input/a.txt /output/b.txt && echo copied"],
    )
    assert output_files(job) == {"b.txt": b"alpha"}
    assert job["job_parameters"]["command"] == [
        "sh",
        "-c",
        "cp /input/a.txt /output/b.txt && echo copied",
    ]
    status, logs = fn.api("GET", f"/batch/{job['id']}/logs")
    assert status == 200 and logs["data"]["log"] == "copied\n"


def test_args_alone_replace_the_image_cmd(fn):
    job = run(fn, input_zip=zip_b64({"d/x.txt": b"x"}), args=["python3", "-c", COPY])
    assert output_files(job) == {"d/x.txt": b"x"}
    assert "command" not in job["job_parameters"]


def test_command_and_args_together(fn):
    script = (
        "import sys, pathlib; pathlib.Path('/output/args.txt').write_text(' '.join(sys.argv[1:]))"
    )
    job = run(fn, command=["python", "-c", script], args=["one", "two words"])
    assert output_files(job) == {"args.txt": b"one two words"}
    (listed,) = [
        j for j in fn.api("GET", "/batch/?status=succeeded")[1]["data"] if j["id"] == job["id"]
    ]
    assert listed["job_parameters"]["args"] == ["one", "two words"]


def test_a_failing_command_fails_the_job_with_its_exit_code(fn):
    job = run(fn, command=["python3", "-c", "import sys; print('bad'); sys.exit(3)"])
    assert job["status"] == "failed"
    assert job["exit_code"] == 3


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"command": "python -c 1"}, "command", "Must be a list of strings"),
        ({"args": ["a", 1]}, "args", "Must be a list of strings"),
        ({"command": ["x"] * 1001}, "command", "At most 1000 items"),
        ({"args": ["a\x00b"]}, "args", "Items must not contain NUL characters"),
        ({"args": ["x" * 200_000, "y" * 70_000]}, "args", "command and args must total"),
        ({"input_upload": "yes"}, "input_upload", "Must be true or false"),
        ({"spot": 1}, "spot", "Must be true or false"),
        ({"start_after": "tomorrow"}, "start_after", "Must be an RFC 3339 time"),
        ({"start_after": "2026-12-01T08:00:00"}, "start_after", "with a time zone"),
        ({"start_after": -5}, "start_after", "Must be an RFC 3339 time"),
        ({"input_url": "ftp://example.com/a.zip"}, "input_url", "Must be a gs:// or https://"),
        ({"input_url": "gs://bucket-only"}, "input_url", "Must be gs://BUCKET/OBJECT"),
        ({"input_url": "https://exa mple.com/a.zip"}, "input_url", "without spaces"),
    ],
)
def test_each_new_field_is_validated(fn_store, params, field, message):
    errors = field_error(fn_store, **params)
    assert message in errors[field], errors


def test_start_after_at_most_30_days_ahead(fn_store):
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=31)
    errors = field_error(fn_store, start_after=later.isoformat())
    assert errors == {"start_after": "Must be at most 30 days ahead"}


def test_one_input_source_only(fn_store):
    errors = field_error(fn_store, input_zip=zip_b64({"a": b"a"}), input_url="gs://b/x.zip")
    assert set(errors) == {"input_zip", "input_url"}
    errors = field_error(fn_store, input_upload=True, input_url="https://example.com/a.zip")
    assert set(errors) == {"input_upload", "input_url"}


# -- input_url --------------------------------------------------------------------------------


@pytest.fixture
def other_bucket(storage_client, bucket) -> str:
    name = f"{bucket}-refs"
    storage_client.create_bucket(name)
    return name


def test_gs_input(fn, storage_client, other_bucket):
    storage_client.bucket(other_bucket).blob("in/data.zip").upload_from_string(
        zip_bytes({"ref.txt": b"by reference"})
    )
    job = run(fn, input_url=f"gs://{other_bucket}/in/data.zip", args=["python3", "-c", COPY])
    assert output_files(job) == {"ref.txt": b"by reference"}
    assert job["job_parameters"]["input_url"] == f"gs://{other_bucket}/in/data.zip"


def test_gs_input_missing_or_too_large(fn, monkeypatch, storage_client, other_bucket):
    missing = field_error(fn, input_url=f"gs://{other_bucket}/nothing.zip")
    assert missing == {"input_url": f"No such object: gs://{other_bucket}/nothing.zip"}
    no_bucket = field_error(fn, input_url="gs://no-such-bucket-here/a.zip")
    assert "No such object" in no_bucket["input_url"]
    storage_client.bucket(other_bucket).blob("big.zip").upload_from_string(b"x" * 2048)
    reconfigure(monkeypatch, MAX_INPUT_URL_BYTES="1024")
    big = field_error(fn, input_url=f"gs://{other_bucket}/big.zip")
    assert big == {"input_url": f"gs://{other_bucket}/big.zip is 2048 bytes, more than 1024"}


@pytest.fixture
def zip_server() -> Iterator[str]:
    """An http server on loopback serving one zip at /input.zip."""
    data = zip_bytes({"web.txt": b"from the web"})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/input.zip":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_url_input_with_private_addresses_allowed(fn, monkeypatch, zip_server):
    reconfigure(monkeypatch, ALLOW_PRIVATE_INPUT_URLS="1")
    job = run(fn, input_url=f"{zip_server}/input.zip", args=["python3", "-c", COPY])
    assert output_files(job) == {"web.txt": b"from the web"}


def test_url_input_that_is_not_there_fails_the_job(fn, monkeypatch, zip_server):
    reconfigure(monkeypatch, ALLOW_PRIVATE_INPUT_URLS="1")
    job = run(fn, input_url=f"{zip_server}/missing.zip")
    assert job["status"] == "failed" and job["reason"] == "InputMissing", job


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/input.zip",
        "https://localhost:8443/input.zip",
        "https://169.254.169.254/computeMetadata/v1/instance",
        "https://metadata.google.internal.invalid/x.zip",
        "https://10.0.0.7/input.zip",
        "https://192.168.1.1/input.zip",
        "https://[::1]/input.zip",
        "https://[::ffff:169.254.169.254]/input.zip",
        *(f"https://{host}/input.zip" for host in HIDDEN_PRIVATE_HOSTS),
        "http://93.184.216.34/input.zip",
    ],
)
def test_url_input_refused_addresses(fn, monkeypatch, url):
    reconfigure(monkeypatch, ALLOW_PRIVATE_INPUT_URLS="0")
    errors = field_error(fn, input_url=url)
    assert errors["input_url"].startswith("Refused: "), errors


# -- input_upload -----------------------------------------------------------------------------


def test_upload_starts_the_job_through_its_finalize_event(fn, backends, storage_client, bucket):
    big = bytes(range(256)) * (21 * 4096 + 7)  # 21 MiB and a bit: more than input_zip takes
    data = zip_bytes({"big.bin": big, "small.txt": b"s"})
    assert len(data) > 20 * 1024 * 1024
    status, body = post(
        fn,
        input_upload=True,
        args=[
            "python3",
            "-c",
            "import os; open('/output/size.txt','w').write(str(os.path.getsize('/input/big.bin')))",
        ],
    )
    assert status == 200, body
    job = body["data"]
    assert job["status"] == "created" and "Content-Type: application/zip" in body["msg"]
    assert job["input_upload_expires"] > job["created"]
    assert fn.sync()["checked"] >= 1 and fn.job(job["id"])["status"] == "created"

    put = requests.put(
        job["input_upload_url"], data=data, headers={"Content-Type": "application/zip"}, timeout=60
    )
    assert put.status_code in (200, 201), put.text
    blob = storage_client.bucket(bucket).get_blob(f"{job['name']}-input.zip")
    event = {"bucket": bucket, "name": blob.name, "generation": str(blob.generation)}
    assert fn.finalize(event) == 200
    started = fn.job(job["id"])
    assert started["status"] == "running" and "input_upload_url" not in started
    assert fn.finalize(event, event_id="2") == 200  # a redelivery changes nothing
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"size.txt": str(len(big)).encode()}
    reasons = [t["reason"] for t in backends.store.get(job["id"]).transitions]
    assert reasons[0] == "input uploaded; deployed to the cluster"


def _upload_url_expires(backends, job_id: str) -> None:
    """As if its upload URL's lifetime had passed (a test does not wait an hour)."""
    expired = {"input_upload_expires": int(time.time() * 1000) - 1}
    assert backends.store.update(job_id, expired, status=Status.CREATED)


def test_upload_that_never_comes(fn, monkeypatch, backends, batch_v1, namespace):
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    job = create(fn, input_upload=True)
    assert 0 <= job["input_upload_expires"] - job["created"] - 3600 * 1000 < 60_000
    fn.sync()
    assert fn.job(job["id"])["status"] == "created"
    _upload_url_expires(backends, job["id"])
    fn.sync()
    failed = fn.job(job["id"])
    assert failed["status"] == "failed" and failed["reason"] == "InputNotUploaded", failed
    assert not batch_v1.list_namespaced_job(namespace).items


def test_an_upload_found_by_the_sync_when_its_event_was_lost(fn, backends):
    job = create(fn, input_upload=True, args=["python3", "-c", COPY])
    requests.put(
        job["input_upload_url"],
        data=zip_bytes({"late.txt": b"l"}),
        headers={"Content-Type": "application/zip"},
        timeout=30,
    ).raise_for_status()
    fn.sync()  # no event delivered: the sync looks only once the URL has expired
    assert fn.job(job["id"])["status"] == "created"
    _upload_url_expires(backends, job["id"])
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"late.txt": b"l"}


def test_a_job_waiting_for_its_upload_can_be_killed(fn, bucket):
    job = create(fn, input_upload=True)
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200 and body["data"]["status"] == "killed", body
    assert fn.finalize({"bucket": bucket, "name": f"{job['name']}-input.zip"}) == 200
    assert fn.job(job["id"])["status"] == "killed"


# -- start_after ------------------------------------------------------------------------------


def _k8s_job(batch_v1, namespace: str, name: str):
    return batch_v1.read_namespaced_job(name, namespace)


def _time_comes(backends, job_id: str) -> None:
    """As if the job's start time had come: a test does not wait an hour."""
    assert backends.store.update(
        job_id, {"scheduled_for": int(time.time() * 1000)}, status=Status.CREATED
    )


def test_a_scheduled_job_waits_then_runs(fn, monkeypatch, backends, batch_v1, core_v1, namespace):
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    start = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    status, body = post(
        fn,
        start_after=start.isoformat().replace("+00:00", "Z"),
        input_zip=zip_b64({"a.txt": b"a"}),
        args=["python3", "-c", COPY],
    )
    assert status == 200, body
    job = body["data"]
    assert job["status"] == "created" and "scheduled to start at" in body["msg"]
    assert abs(job["scheduled_for"] - start.timestamp() * 1000) < 1
    assert _k8s_job(batch_v1, namespace, job["name"]).spec.suspend is True
    fn.sync()  # the create grace period is 0, and still it waits
    assert fn.job(job["id"])["status"] == "created"
    assert not core_v1.list_namespaced_pod(namespace).items
    _time_comes(backends, job["id"])
    fn.sync()
    running = fn.job(job["id"])
    assert running["status"] in ("running", "cleaning", "succeeded"), running
    assert _k8s_job(batch_v1, namespace, job["name"]).spec.suspend is False
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"a.txt": b"a"}
    reasons = [t["reason"] for t in backends.store.get(job["id"]).transitions]
    assert reasons[0] == "its start time came; resumed", reasons


def test_start_after_in_epoch_ms_and_in_the_past(fn):
    past = create(fn, start_after=int(time.time() * 1000) - 60_000)
    assert past["status"] == "running" and "scheduled_for" not in past
    ahead = create(fn, start_after=int(time.time() * 1000) + 3_600_000)
    assert ahead["status"] == "created" and ahead["scheduled_for"] > ahead["created"]


def test_a_scheduled_job_can_be_killed_while_it_waits(fn, batch_v1, namespace):
    job = create(fn, start_after=int(time.time() * 1000) + 3_600_000)
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200 and body["data"]["status"] == "killed", body
    assert body["msg"] == f"Instance {job['id']} was successfully deleted from the cluster."
    assert not batch_v1.list_namespaced_job(namespace).items
    fn.sync()
    assert fn.job(job["id"])["status"] == "killed"


def test_a_job_being_created_is_not_killable(fn_store, backends):
    from shared.model.job import Job

    job = Job(
        id="00000000-0000-4000-8000-000000000001",
        name="mid-create",
        status=Status.CREATED,
        created=1,
        job_parameters={"docker_image": "alpine"},
    )
    backends.store.create(job)
    status, body = fn_store.api("DELETE", f"/batch/{job.id}")
    assert status == 400 and body["msg"] == f"Can't stop batch job {job.id}. Status is: created."


# -- spot -------------------------------------------------------------------------------------


def test_spot_pods_go_to_spot_nodes(fn, core_v1, namespace):
    job = create(fn, docker_image="alpine:3", spot=True, command=["sh", "-c", "sleep 30"])
    assert job["job_parameters"]["spot"] is True

    def bound() -> Any:
        pods = core_v1.list_namespaced_pod(namespace).items
        return pods[0].spec if pods and pods[0].spec.node_name else None

    spec = wait_for(bound, what="the job's pod on a node")
    assert spec.node_selector == {"cloud.google.com/gke-provisioning": "spot"}
    tolerations = [(t.key, t.operator, t.value, t.effect) for t in spec.tolerations]
    assert ("cloud.google.com/gke-spot", "Equal", "true", "NoSchedule") in tolerations
    assert spec.node_name == "local-spot-node"  # the real scheduler's choice
    fn.api("DELETE", f"/batch/{job['id']}")


def test_a_scheduled_job_whose_urls_would_expire_gets_a_fresh_job(
    fn, backends, batch_v1, namespace
):
    job = create(
        fn,
        start_after=int(time.time() * 1000) + 3_600_000,
        input_zip=zip_b64({"a.txt": b"fresh"}),
        args=["python3", "-c", COPY],
    )
    first = _k8s_job(batch_v1, namespace, job["name"]).metadata.uid
    # As if it had been scheduled days ahead: its URLs expire before its run would end.
    assert backends.store.update(job["id"], {"urls_expire": 1}, status=Status.CREATED)
    _time_comes(backends, job["id"])
    fn.sync()
    replaced = _k8s_job(batch_v1, namespace, job["name"])
    assert replaced.metadata.uid != first
    assert replaced.metadata.labels["kueue.x-k8s.io/queue-name"] == "default"  # not held
    resumed = wait_for(  # by Kueue, once it admits it
        lambda: not _k8s_job(batch_v1, namespace, job["name"]).spec.suspend, what="resumed"
    )
    assert resumed
    assert backends.store.get(job["id"]).urls_expire > time.time() * 1000
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"a.txt": b"fresh"}


def test_an_uploaded_input_of_a_scheduled_job_waits_for_its_time(
    fn, backends, batch_v1, namespace, storage_client, bucket
):
    job = create(
        fn,
        input_upload=True,
        start_after=int(time.time() * 1000) + 3_600_000,
        args=["python3", "-c", COPY],
    )
    assert job["status"] == "created" and job["scheduled_for"] and job["input_upload_url"]
    requests.put(
        job["input_upload_url"],
        data=zip_bytes({"s.txt": b"scheduled"}),
        headers={"Content-Type": "application/zip"},
        timeout=30,
    ).raise_for_status()
    assert fn.finalize({"bucket": bucket, "name": f"{job['name']}-input.zip"}) == 200
    waiting = fn.job(job["id"])
    assert waiting["status"] == "created" and "input_upload_url" not in waiting
    assert backends.store.get(job["id"]).suspended
    assert _k8s_job(batch_v1, namespace, job["name"]).spec.suspend is True
    _time_comes(backends, job["id"])
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"s.txt": b"scheduled"}
