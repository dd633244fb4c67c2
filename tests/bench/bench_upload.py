"""Benchmark of input by upload (`job_parameters.input_upload`): the create that answers an
upload URL, beside its raw calls; and, on the local cloud that `make run` starts (relay
included, the node agent at speed 1), how soon a job runs once its input has landed, beside the
moment its finalize notification could first be seen.

    .venv/bin/python -m tests.bench.bench_upload [--creates 40] [--jobs 3] [--size-mib 100]

- create_upload_url_ratio: median create with `input_upload: true` through `batch_api`
  (functions-framework's test client, as bench_api measures creates: 3 warm-up rounds,
  then 40) / median of its raw calls made in sequence, as the create makes them, with the
  product's own clients in the same process: the upload URL (Bucket.upload_url; on the
  emulator it opens a resumable upload session) and the record (JobStore.create of an
  equivalent job: one batch of two documents). Goal: at most 1.5.
- upload_start_seconds: median seconds from the end of the PUT of a 100 MiB zip (stored,
  random bytes) to the upload URL (its answer received) to the first GET /batch/<id> that
  answers `running`, polled every 20 ms from the PUT's start, for a job that copies /input
  to /output. One job more runs first and is not counted (the first event after the stack
  is up waits for the relay's start and a cold function: 6-11 s); each job runs to
  `succeeded` before the next, so that its stage-in and stage-out do not overlap the next
  one's measurement. Goal: at most 2 s.
- upload_start_floor_seconds: the same PUT's end to the arrival of the input's
  OBJECT_FINALIZE notification on a second subscription (a streaming pull) to the topic
  fake-gcs-server publishes to, beside the relay's own: the first moment the relay could
  see the event. fake-gcs-server publishes it before its answer to the PUT reaches the
  client (by up to 2 s with 100 MiB on a busy machine), so this floor, and the job's start
  with it, can be negative here; Cloud Storage's notifications are asynchronous and
  usually follow the answer.
- upload_start_gap_seconds: median of (running - notification) per job: what the product
  adds over its floor: the relay's pull and POST, the finalize
  function's calls (the record, the output's upload session, the Job, the status write)
  and up to one poll.
- upload_put_seconds: the PUT itself, for information.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import signal
import statistics
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from infra.local.pubsub import ensure_topic_and_subscription
from infra.local.stack import GCS_TOPIC, read_env_file
from tests.bench.bench_api import Api, median_ms, timed
from tests.bench.bench_local_cloud import auth_headers, start_stack
from tests.bench.cloud import local_cloud
from tests.bench.results import record, table

POLL = 0.02  # s between two GETs of the job's status
WARM_UP = 3  # creates not counted, as in bench_api
COPY = "import shutil; shutil.copytree('/input', '/output', dirs_exist_ok=True)"
JOB_TIMEOUT = 600.0  # s a job may take to run and finish before the benchmark gives up


@contextmanager
def environment() -> Iterator[None]:
    """Restore os.environ afterwards: each part points it at its own cloud."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _upload_body(name: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "docker_image": "alpine:3",
        "environment_variables": {"KUBESIM_RUN_SECONDS": "0"},
        "input_upload": True,
    }
    return {"name": name, "account_id": "bench", "job_parameters": params}


def raw_create_upload(name: str) -> float:
    """Seconds of the create's raw calls, in its order: the upload URL, then the record."""
    from shared.cloud.backends import default_backends
    from shared.model.job import Job, Status, now_ms

    backends = default_backends()  # the clients the function itself uses
    body = _upload_body(name)
    job = Job(
        id=str(uuid.uuid4()),
        name=name,
        status=Status.CREATED,
        created=now_ms(),
        job_parameters=body["job_parameters"],
        account_id=body["account_id"],
        has_input=True,
    )
    lifetime = backends.settings.input_upload_lifetime

    def upload_url() -> None:
        job.input_upload_url = backends.bucket.upload_url(job.input_object, lifetime, job.id)
        job.input_upload_expires = now_ms() + lifetime * 1000

    return timed(upload_url) + timed(lambda: backends.store.create(job))


def bench_create(count: int) -> dict[str, float]:
    with environment(), local_cloud():
        from shared.logs import configure

        configure("WARNING")
        api = Api()
        product, floor = [], []
        for number in range(count + WARM_UP):
            body = _upload_body(f"upload-{number}")
            answer: list[dict[str, Any]] = []
            spent = timed(lambda: answer.append(api.call("POST", "/batch/", body)))  # noqa: B023
            if not answer[0]["data"].get("input_upload_url"):
                raise SystemExit(f"the create answered no upload URL: {answer[0]}")
            spent_raw = raw_create_upload(f"upload-raw-{number}")
            if number >= WARM_UP:
                product.append(spent)
                floor.append(spent_raw)
    return {
        "create_upload_url_median_ms": median_ms(product),
        "create_upload_url_floor_median_ms": median_ms(floor),
        "create_upload_url_ratio": statistics.median(product) / statistics.median(floor),
    }


def input_zip(size: int) -> bytes:
    """A zip holding `size` random (incompressible) bytes, stored."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data/random.bin", random.Random(11).randbytes(size))
    return buffer.getvalue()


class Notifications:
    """When each object's OBJECT_FINALIZE notification arrived on a subscription of our own
    to the relay's topic (a streaming pull, which the emulator answers as it publishes)."""

    def __init__(self, project: str) -> None:
        from google.cloud import pubsub_v1

        name = f"bench-upload-{uuid.uuid4().hex[:8]}"
        path = ensure_topic_and_subscription(project, GCS_TOPIC, name)
        self.arrived: dict[str, float] = {}
        self._lock = threading.Lock()
        self._subscriber = pubsub_v1.SubscriberClient()
        self._future = self._subscriber.subscribe(path, callback=self._received)

    def _received(self, message: Any) -> None:
        at = time.monotonic()
        if message.attributes.get("eventType") == "OBJECT_FINALIZE":
            with self._lock:
                self.arrived.setdefault(message.attributes.get("objectId", ""), at)
        message.ack()

    def wait_for(self, object_name: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if object_name in self.arrived:
                    return self.arrived[object_name]
            time.sleep(0.01)
        raise SystemExit(f"no finalize notification for {object_name} after {timeout} s")

    def stop(self) -> None:
        self._future.cancel()
        try:
            self._future.result(timeout=10)
        except Exception:  # noqa: BLE001 - a cancelled streaming pull ends with an error
            pass
        self._subscriber.close()


class Poller(threading.Thread):
    """GET /batch/<id> every 20 ms, from before the PUT starts until the job is done: the
    first answer past `created` may come before the PUT's own answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.running: float | None = None  # when the first answer past `created` came
        self.error: str | None = None

    def run(self) -> None:
        started = time.monotonic()
        with requests.Session() as http:
            http.headers.update(auth_headers())
            while True:
                answer = http.get(self.url, timeout=30)
                current = answer.json()["data"] if answer.ok else {"status": answer.text}
                status = current["status"]
                if self.running is None and status in ("running", "cleaning", "succeeded"):
                    self.running = time.monotonic()  # a small input may be past running
                if status == "succeeded":
                    return
                if status in ("failed", "killed") or not answer.ok:
                    self.error = f"the job ended {status}: {current}"
                    return
                if time.monotonic() - started > JOB_TIMEOUT:
                    self.error = f"the job was not done after {JOB_TIMEOUT} s: {current}"
                    return
                time.sleep(POLL)


def run_job(
    http: requests.Session, api: str, notes: Notifications, data: bytes, name: str
) -> dict[str, float]:
    body = {
        "name": name,
        "job_parameters": {
            "docker_image": "python:3.11",
            "args": ["python3", "-c", COPY],
            "input_upload": True,
        },
    }
    created = http.post(f"{api}/batch/", json=body, timeout=30)
    created.raise_for_status()
    job = created.json()["data"]
    if job["status"] != "created" or not job.get("input_upload_url"):
        raise SystemExit(f"the create did not answer an upload URL: {job}")
    poller = Poller(f"{api}/batch/{job['id']}")
    poller.start()
    started = time.monotonic()
    put = http.put(
        job["input_upload_url"],
        data=data,
        headers={"Content-Type": "application/zip"},
        timeout=300,
    )
    put_done = time.monotonic()
    if put.status_code not in (200, 201):
        raise SystemExit(f"the input's PUT answered {put.status_code}: {put.text[:300]}")
    poller.join(JOB_TIMEOUT + 60)
    if poller.error or poller.running is None:
        raise SystemExit(poller.error or f"{name} never ran")
    notified = notes.wait_for(f"{name}-input.zip")
    return {
        "start": poller.running - put_done,
        "floor": notified - put_done,
        "gap": poller.running - notified,
        "put": put_done - started,
    }


def check_output(name: str, size: int) -> None:
    """The job really copied its input: its output zip holds the same bytes, and more."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = storage.Client(
        project=os.environ["GOOGLE_CLOUD_PROJECT"], credentials=AnonymousCredentials()
    )
    blob = gcs.bucket(os.environ["GC_BUCKET_NAME"]).get_blob(f"{name}-output.zip")
    if blob is None or int(blob.size or 0) < size:
        found = None if blob is None else blob.size
        raise SystemExit(f"{name}'s output zip is missing or short: {found} bytes")


def bench_start(jobs: int, size: int) -> dict[str, float]:
    data = input_zip(size)
    with environment(), tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        stack, _ = start_stack(state)
        notes = None
        try:
            cloud = read_env_file(state / "env")
            os.environ.update(cloud)
            notes = Notifications(cloud["GOOGLE_CLOUD_PROJECT"])
            runs = []
            with requests.Session() as http:
                http.headers.update(auth_headers())
                for number in range(jobs + 1):  # the first warms the functions
                    name = f"upload-{number}"
                    runs.append(run_job(http, cloud["API_URL"], notes, data, name))
                    check_output(name, size)
                    print(
                        f"  {name}: put {runs[-1]['put']:.2f} s, running after"
                        f" {runs[-1]['start']:.3f} s, notification after {runs[-1]['floor']:.3f} s"
                        f" (running {runs[-1]['gap']:.3f} s after it)",
                        flush=True,
                    )
        finally:
            if notes is not None:
                notes.stop()
            stack.send_signal(signal.SIGTERM)
            stack.wait(timeout=60)
    counted = runs[1:]
    return {
        "upload_start_seconds": statistics.median(r["start"] for r in counted),
        "upload_start_floor_seconds": statistics.median(r["floor"] for r in counted),
        "upload_start_gap_seconds": statistics.median(r["gap"] for r in counted),
        "upload_put_seconds": statistics.median(r["put"] for r in counted),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--creates", type=int, default=40, help="creates measured (3 more warm)")
    parser.add_argument("--jobs", type=int, default=3, help="uploads measured (one more warms)")
    parser.add_argument("--size-mib", type=int, default=100, help="the input's random bytes")
    args = parser.parse_args()
    figures = bench_create(args.creates)
    print(table(figures), flush=True)
    started = bench_start(args.jobs, args.size_mib * 1024 * 1024)
    print(table(started), flush=True)
    figures |= started
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
