"""Benchmark of the largest array job one request may ask for, on `make run`'s whole stack:
10,000 tasks at MAX_PARALLELISM, each a sandboxed `sleep`. The local cloud must keep
answering while it runs.

    .venv/bin/python -m tests.bench.bench_ceiling [--parallelism N]

- ceiling_parallelism: MAX_PARALLELISM, the tasks running at once (the local cloud's own
  setting unless --parallelism says otherwise);
- ceiling_start_seconds: create to every one of them running;
- ceiling_healthcheck_seconds: GET /healthcheck while they run (it must answer 200);
- ceiling_kill_seconds: DELETE of the job, to its answer. Floor: 5 s.
- ceiling_cleared_seconds: the kill's answer to no pod of the job left.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from infra.local.stack import LOCAL_MAX_PARALLELISM, read_env_file
from shared.model.manifests import job_selector
from tests.bench.bench_e2e import _http
from tests.bench.bench_local_cloud import start_stack, stop_stack
from tests.bench.results import record, table

KILL_FLOOR_SECONDS = 5.0


def _until(check: Any, what: str, timeout: float = 600) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def measure(parallelism: int) -> dict[str, float]:
    from kubernetes import client, config

    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as temp:
        state = Path(temp) / "state"
        stack, _ = start_stack(
            state, JOB_SYNCHRONIZATION_INTERVAL="2", MAX_PARALLELISM=str(parallelism)
        )
        try:
            cloud = read_env_file(state / "env")
            api = cloud["API_URL"]
            pods = client.CoreV1Api(config.new_client_from_config(cloud["KUBECONFIG"]))
            params = {
                "docker_image": "alpine:3",
                "command": ["sleep", "600"],
                "task_count": 10_000,
                "parallelism": parallelism,
            }
            job = _http("POST", f"{api}/batch/", {"job_parameters": params})["data"]

            def running() -> bool:
                found = _http("GET", f"{api}/batch/{job['id']}")["data"]
                return int(found.get("tasks", {}).get("running", 0)) >= parallelism

            start = _until(running, f"{parallelism} tasks running")
            started = time.monotonic()
            health = _http("GET", f"{api}/healthcheck")
            health_seconds = time.monotonic() - started
            if health.get("result") is not True:
                raise SystemExit(f"the health check failed while the job ran: {health}")
            started = time.monotonic()
            killed = _http("DELETE", f"{api}/batch/{job['id']}")
            kill_seconds = time.monotonic() - started
            if killed["data"]["status"] != "killed":
                raise SystemExit(f"the kill did not kill: {killed}")
            namespace = cloud["KUBERNETES_NAMESPACE"]
            selector = job_selector(job["id"])

            def cleared() -> bool:
                return not pods.list_namespaced_pod(namespace, label_selector=selector).items

            cleared_seconds = _until(cleared, "the job's pods gone")
        finally:
            stop_stack(stack)
    return {
        "ceiling_parallelism": parallelism,
        "ceiling_start_seconds": start,
        "ceiling_healthcheck_seconds": health_seconds,
        "ceiling_kill_seconds": kill_seconds,
        "ceiling_cleared_seconds": cleared_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallelism", type=int, default=LOCAL_MAX_PARALLELISM)
    args = parser.parse_args()
    figures = measure(args.parallelism)
    print(table(figures))
    print(f"  floor: ceiling_kill_seconds under {KILL_FLOOR_SECONDS:g}")
    record(figures)


if __name__ == "__main__":
    main()
