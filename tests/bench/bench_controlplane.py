"""Benchmark of a job's life on the real Kubernetes control plane (infra/local/controlplane/)
with the node agent at speed 1, through the deployed entry points: what the local cloud
will measure once `make run` is on it.

    .venv/bin/python -m tests.bench.bench_controlplane [--jobs 5]

- cp_e2e_seconds: median seconds from the create (batch_api) to the job's `succeeded`, for a
  job with a small input that it copies to /output. The output's landing is noticed by
  polling the bucket every 20 ms and delivered to on_output_finalized as Eventarc would.
- cp_e2e_floor_seconds: the pod's own run, its floor: from the Job's creation to
  stage-out's exit, as a watch on the API server sees them. Target for the gap: 2 s.
- cp_k8s_writes_per_job: the writes the functions' user made in one job's life, from the
  API server's audit log. Target: 2 (the Job's create and delete).
- controlplane_start_seconds: etcd, the API server, the controller manager and the
  scheduler started and answering, with the binaries already built.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.deploy.cluster import render
from infra.local.controlplane import cluster
from infra.local.controlplane.cluster import FUNCTION_USERS, WRITE_VERBS
from infra.local.nodeagent.launch import start_agent
from tests.bench.bench_e2e import Watcher, _input_zip, _stage_out_exited
from tests.bench.cloud import local_cloud
from tests.bench.results import record, table
from tests.fixtures.api import finalize_event

MAIN = "functions/main.py"
NAMESPACE = "bench-jobs"
JOB_KSA = "task-runner-job"
STAGER_IMAGE = "stager:bench"
POLL = 0.02


def _writes(audit_log: Path, user: str, since: int) -> int:
    lines = audit_log.read_text().splitlines()[since:]
    return sum(
        1
        for line in lines
        if (entry := json.loads(line))["user"]["username"] == user and entry["verb"] in WRITE_VERBS
    )


def _one_job(
    functions: dict[str, Any], bucket: Any, watcher: Watcher, number: int
) -> dict[str, float]:
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
    done = time.monotonic()
    if status != "succeeded":
        raise SystemExit(f"the job ended {status}")
    time.sleep(1.0)  # the Job's deletion, after the success, is part of its life
    events = watcher.of_job(job["id"])
    created = min(at for at, kind, _ in events if kind == "Job")
    exited = min(at for at, kind, obj in events if kind == "Pod" and _stage_out_exited(obj))
    return {"e2e": done - sent, "floor": exited - created}


def measure(jobs: int) -> dict[str, float]:
    with local_cloud(), tempfile.TemporaryDirectory(prefix="bench-cp-") as temp:
        import functions_framework
        from google.cloud import storage

        from shared.logs import configure

        configure("WARNING")
        base = Path(temp)
        started = time.monotonic()
        with cluster.start(base / "state", base / "logs", audit=True) as plane:
            start_seconds = time.monotonic() - started
            agent = start_agent(plane, base / "agent", speed=1.0, stager_image=STAGER_IMAGE)
            try:
                manifests = render(namespace=NAMESPACE, job_ksa=JOB_KSA, users=FUNCTION_USERS)
                subprocess.run(
                    ["kubectl", f"--kubeconfig={plane.admin_kubeconfig}", "apply", "-f", "-"],
                    input=manifests,
                    text=True,
                    check=True,
                    capture_output=True,
                )
                os.environ.update(
                    KUBERNETES_API_URL=plane.url,
                    KUBERNETES_API_KEY=plane.token(FUNCTION_USERS[0]),
                    KUBERNETES_CA_FILE=str(plane.authority.pair.cert),
                    KUBERNETES_NAMESPACE=NAMESPACE,
                    JOB_SERVICE_ACCOUNT=JOB_KSA,
                    STAGER_IMAGE=STAGER_IMAGE,
                )
                functions = {
                    name: functions_framework.create_app(name, MAIN).test_client()
                    for name in ("batch_api", "on_output_finalized")
                }
                bucket = storage.Client().bucket(os.environ["GC_BUCKET_NAME"])
                watcher = Watcher(str(plane.admin_kubeconfig), NAMESPACE)
                assert plane.audit_log is not None
                runs, writes = [], []
                for number in range(jobs + 1):
                    before = len(plane.audit_log.read_text().splitlines())
                    run = _one_job(functions, bucket, watcher, number)
                    if number:  # the first warms the clients up
                        runs.append(run)
                        writes.append(_writes(plane.audit_log, FUNCTION_USERS[0], before))
                watcher.stop()
            finally:
                agent.stop()
    return {
        "cp_e2e_seconds": statistics.median(r["e2e"] for r in runs),
        "cp_e2e_floor_seconds": statistics.median(r["floor"] for r in runs),
        "cp_e2e_gap_seconds": statistics.median(r["e2e"] - r["floor"] for r in runs),
        "cp_k8s_writes_per_job": max(writes),
        "controlplane_start_seconds": start_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5)
    figures = measure(parser.parse_args().jobs)
    print(table(figures))
    print("  targets: cp_e2e_seconds <= 3, cp_e2e_gap_seconds <= 2, cp_k8s_writes_per_job <= 2")
    record(figures)


if __name__ == "__main__":
    main()
