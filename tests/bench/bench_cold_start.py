"""Benchmark of a cold start: from starting `functions-framework` to the first 200 answer,
for `batch_api` (GET /batch/<id>) and `get_job` (GET /<id>), beside the floor of a function
that imports nothing and answers at once; and the import time of the entry-point module.

    .venv/bin/python -m tests.bench.bench_cold_start [--runs 5]

Each start is a new process with the environment a deployed function has, against the
local cloud; the figure is the median of the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.local.procs import free_port
from tests.bench.cloud import PROJECT, REPO_ROOT, local_cloud, operator_headers
from tests.bench.results import record, table

MAIN = REPO_ROOT / "functions" / "main.py"
EMPTY = """
import functions_framework


@functions_framework.http
def empty(request):
    return "ok"
"""


def first_200(source: Path, target: str, path: str, env: dict[str, str]) -> float:
    """Seconds from spawning functions-framework to its first 200 on `path`."""
    port = free_port()
    argv = [sys.executable, "-m", "functions_framework", "--source", str(source)]
    argv += ["--target", target, "--host", "127.0.0.1", "--port", str(port)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{path}", headers=operator_headers()
                )
                with urllib.request.urlopen(request, timeout=5) as r:
                    if r.status == 200:
                        return time.perf_counter() - started
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None:
                raise SystemExit(f"functions-framework --target {target} exited")
            if time.perf_counter() - started > 60:
                raise SystemExit(f"{target} gave no 200 in 60 s")
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def import_seconds(env: dict[str, str]) -> float:
    code = "import time; s = time.perf_counter(); import main; print(time.perf_counter() - s)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=MAIN.parent,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def seeded_job() -> str:
    from google.cloud import firestore

    from shared.model.job import Job, Status, now_ms

    job = Job(
        id="5b0f3c1e-8a2d-4e6f-9b7c-1d2e3f4a5b6c",
        name="cold-start",
        status=Status.RUNNING,
        created=now_ms(),
        job_parameters={"docker_image": "alpine:3"},
    )
    db = firestore.Client(project=PROJECT)
    db.collection(os.environ["FIRESTORE_COLLECTION"]).document(job.id).set(job.to_document())
    return job.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with local_cloud(), tempfile.TemporaryDirectory() as temp:
        job_id = seeded_job()
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "LOG_LEVEL": "INFO"}
        empty = Path(temp) / "main.py"
        empty.write_text(EMPTY)
        runs: dict[str, list[float]] = {"batch_api": [], "get_job": [], "empty": [], "import": []}
        for _ in range(args.runs):  # interleaved, so that all see the same machine
            runs["batch_api"].append(first_200(MAIN, "batch_api", f"/batch/{job_id}", env))
            runs["get_job"].append(first_200(MAIN, "get_job", f"/{job_id}", env))
            runs["empty"].append(first_200(empty, "empty", "/", env))
            runs["import"].append(import_seconds(env))
    median = {name: statistics.median(values) for name, values in runs.items()}
    figures = {
        "cold_start_seconds": max(median["batch_api"], median["get_job"]),
        "cold_start_batch_api_seconds": median["batch_api"],
        "cold_start_get_job_seconds": median["get_job"],
        "cold_start_floor_seconds": median["empty"],
        "cold_start_ratio": max(median["batch_api"], median["get_job"]) / median["empty"],
        "import_seconds": median["import"],
    }
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
