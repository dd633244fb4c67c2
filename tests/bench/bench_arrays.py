"""Benchmark of array jobs: what a sweep costs beside one plain job.

    .venv/bin/python -m tests.bench.bench_arrays [--creates 15] [--e2e-tasks 100]

- array_create_ratio: median create of an array job of 1,000 tasks over the median create
  of one plain job (no input either way), through the deployed entry point on the local
  cloud. Goal ≤ 2: one record and one Job, not a thousand.
  array_create_envs_ratio: the same with 1,000 task_environments, which go to the bucket.
- array_sync_writes_1k: Firestore writes of a sync pass over a running 1,000-task job
  whose tasks (ten at a time) are all still sleeping: nothing changed. Goal 0.
- array_e2e_seconds_100: create to `succeeded` of 100 tasks of a trivial command with
  parallelism 100, on `make run`'s whole stack (the relay delivers the output events);
  array_e2e_seconds_1 the same job with one task, and array_e2e_ratio_100 the two's ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_e2e import _http
from tests.bench.cloud import authorized, local_cloud
from tests.bench.results import record, table

MAIN = "functions/main.py"
SLEEPER = "example.com/sim/worker"  # kubesim runs its KUBESIM_SH as a host process


def _create(client: Any, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/", json={"job_parameters": params})
    spent = time.perf_counter() - started
    body = json.loads(response.data)
    if response.status_code != 200:
        raise SystemExit(f"the create answered {response.status_code}: {body}")
    return spent, body["data"]


def creates_and_sync(creates: int) -> dict[str, float]:
    with local_cloud():
        import functions_framework
        from google.cloud import firestore

        from shared.logs import configure

        configure("WARNING")
        create = authorized(functions_framework.create_app("create_job", MAIN).test_client())
        kill = authorized(functions_framework.create_app("kill_job", MAIN).test_client())
        sync = authorized(
            functions_framework.create_app("synchronize_batch_jobs", MAIN).test_client()
        )
        sleep = {"docker_image": SLEEPER, "environment_variables": {"KUBESIM_SH": "sleep 600"}}
        kinds: dict[str, dict[str, Any]] = {
            "plain": sleep,
            "array": {**sleep, "task_count": 1000, "parallelism": 1},
            "array_envs": {
                **sleep,
                "command": ["sleep", "600"],
                "parallelism": 1,
                "task_environments": [{"POINT": str(i), "SCALE": "0.5"} for i in range(1000)],
            },
        }
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_number in range(creates + 1):
            for kind, params in kinds.items():
                spent, job = _create(create, params)
                if round_number:  # the first round warms the clients up
                    times[kind].append(spent)
                kill.delete(f"/{job['id']}")
        medians = {kind: statistics.median(values) for kind, values in times.items()}

        # A running 1,000-task job, ten tasks at a time, all asleep: a sync has nothing to do.
        os.environ["SYNC_PASSES_PER_CALL"] = "1"
        _, job = _create(create, {**sleep, "task_count": 1000, "parallelism": 10})
        db = firestore.Client()
        document = db.collection(os.environ["FIRESTORE_COLLECTION"]).document(job["id"])
        deadline = time.monotonic() + 120
        while (document.get().to_dict() or {}).get("tasks", {}).get("running") != 10:
            sync.post("/")
            if time.monotonic() > deadline:
                raise SystemExit("the tasks did not start")
            time.sleep(0.5)
        sync.post("/")
        before = document.get().update_time
        sync.post("/")
        writes = int(document.get().update_time != before)
        kill.delete(f"/{job['id']}")
    return {
        "array_create_seconds_plain": medians["plain"],
        "array_create_seconds_1k": medians["array"],
        "array_create_ratio": medians["array"] / medians["plain"],
        "array_create_envs_seconds_1k": medians["array_envs"],
        "array_create_envs_ratio": medians["array_envs"] / medians["plain"],
        "array_sync_writes_1k": writes,
    }


def end_to_end(tasks: int) -> dict[str, float]:
    from infra.local.stack import read_env_file
    from tests.bench.bench_local_cloud import start_stack, stop_stack

    with tempfile.TemporaryDirectory(prefix="bench-arrays-") as temp:
        state = Path(temp) / "state"
        # All tasks at once, as before MAX_PARALLELISM: the local cloud's own cap is lower.
        stack, _ = start_stack(
            state, JOB_SYNCHRONIZATION_INTERVAL="5", MAX_PARALLELISM=str(max(tasks, 1))
        )
        try:
            api = read_env_file(state / "env")["API_URL"]

            def run(count: int) -> float:
                params = {
                    "docker_image": "alpine:3",
                    "command": ["/bin/sh", "-c", 'echo "$TASK_INDEX" > /output/index.txt'],
                    "task_count": count,
                    "parallelism": count,
                }
                started = time.monotonic()
                job = _http("POST", f"{api}/batch/", {"job_parameters": params})["data"]
                while True:
                    found = _http("GET", f"{api}/batch/{job['id']}")["data"]
                    if found["status"] in ("succeeded", "failed", "killed"):
                        break
                    time.sleep(0.1)
                if found["status"] != "succeeded":
                    raise SystemExit(f"the array job did not succeed: {found}")
                return time.monotonic() - started

            run(1)  # warm
            single = statistics.median(run(1) for _ in range(3))
            many = run(tasks)
        finally:
            stop_stack(stack)
    return {
        f"array_e2e_seconds_{tasks}": many,
        "array_e2e_seconds_1": single,
        f"array_e2e_ratio_{tasks}": many / single,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=15)
    parser.add_argument("--e2e-tasks", type=int, default=100)
    args = parser.parse_args()
    figures = creates_and_sync(args.creates)
    print(table(figures), flush=True)
    figures.update(end_to_end(args.e2e_tasks))
    print(table(figures))
    print("  goals: array_create_ratio <= 2, array_sync_writes_1k == 0")
    record(figures)


if __name__ == "__main__":
    main()
