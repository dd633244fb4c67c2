"""Benchmark of what the Kubernetes control plane (infra/local/controlplane/) costs and is
asked for: its start, and the writes of one job's life through the deployed entry points.

    .venv/bin/python -m tests.bench.bench_controlplane [--jobs 5]

- k8s_writes_per_job: the writes the functions' API user made in one job's life (a job
  with a small input that it copies to /output; the output's landing is noticed by polling
  the bucket every 20 ms and delivered to on_output_finalized as Eventarc would), counted
  in the API server's audit log. Target: 2 (the Job's create and delete).
- controlplane_start_seconds: etcd, the API server, the controller manager and the
  scheduler started and answering, with the binaries already built.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.local.controlplane import cluster
from infra.local.controlplane.cluster import FUNCTION_USERS, WRITE_VERBS
from tests.bench.bench_e2e import _input_zip
from tests.bench.cloud import authorized, local_cloud
from tests.bench.results import record, table
from tests.fixtures.api import finalize_event

MAIN = "functions/main.py"
POLL = 0.02


def _writes(audit_log: Path, user: str, since: int) -> int:
    lines = audit_log.read_text().splitlines()[since:]
    return sum(
        1
        for line in lines
        if (entry := json.loads(line))["user"]["username"] == user and entry["verb"] in WRITE_VERBS
    )


def _one_job(functions: dict[str, Any], bucket: Any, number: int) -> None:
    body = {
        "name": f"cp-{number}",
        "job_parameters": {
            "docker_image": "alpine:3",
            "input_zip": _input_zip(),
            "command": ["sh", "-c", "cp -r /input/. /output/"],
        },
    }
    sent = time.monotonic()
    answer = functions["batch_api"].post("/batch/", json=body)
    job = json.loads(answer.data)["data"]
    name = f"{job['name']}-output.zip"
    while (blob := bucket.get_blob(name)) is None:
        if time.monotonic() - sent > 600:
            raise SystemExit(f"no output after 600 s for {job['name']}")
        time.sleep(POLL)
    event = {"bucket": bucket.name, "name": blob.name, "metadata": blob.metadata}
    finalize_event(functions["on_output_finalized"], event, f"bench-{number}")
    status = json.loads(functions["batch_api"].get(f"/batch/{job['id']}").data)["data"]["status"]
    if status != "succeeded":
        raise SystemExit(f"the job ended {status}")
    time.sleep(1.0)  # the Job's deletion, after the success, is part of its life


def start_seconds() -> float:
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as temp:
        started = time.monotonic()
        with cluster.start(Path(temp) / "state", Path(temp) / "logs"):
            return time.monotonic() - started


def writes_per_job(jobs: int) -> int:
    with local_cloud(audit=True) as cloud:
        import functions_framework
        from google.cloud import storage

        from shared.logs import configure

        configure("WARNING")
        functions = {
            name: authorized(functions_framework.create_app(name, MAIN).test_client())
            for name in ("batch_api", "on_output_finalized")
        }
        bucket = storage.Client().bucket(os.environ["GC_BUCKET_NAME"])
        audit_log = cloud.plane.audit_log
        assert audit_log is not None
        writes = []
        for number in range(jobs + 1):
            before = len(audit_log.read_text().splitlines())
            _one_job(functions, bucket, number)
            if number:  # the first warms the clients up
                writes.append(_writes(audit_log, FUNCTION_USERS[0], before))
    return max(writes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    jobs = parser.parse_args().jobs
    figures = {
        "controlplane_start_seconds": start_seconds(),
        "k8s_writes_per_job": float(writes_per_job(jobs)),
    }
    print(table(figures))
    print("  target: k8s_writes_per_job <= 2")
    record(figures)


if __name__ == "__main__":
    main()
