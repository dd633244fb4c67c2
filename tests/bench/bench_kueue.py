"""Benchmarks of the accounts' queues on Kueue's real manager (the bench cloud: the control
plane with Kueue, the node agent at speed 20, the emulators).

    .venv/bin/python -m tests.bench.bench_kueue [--only overhead|fair|positions]

- admission_overhead_seconds: a Job's creation to its pod running, through Kueue (the
  product's manifest: suspended, naming its account's queue, which has room) less the same
  without Kueue (the same manifest, unsuspended and naming no queue), median of 20 each,
  created straight on the API server. Goal: <= 1 s.
- fair_share_error: three accounts with weights 1, 1 and 2 and no quota of their own, each
  submitting 60 jobs of ten (simulated) seconds at once (in turns, from 6 threads), into a
  cohort that runs 8 at a time (a fourth account, idle, lends its 8 pods). The share of
  running slots each holds from the last submission on, while all three have jobs waiting,
  against its weight's share (1/4, 1/4, 1/2): the largest relative difference.
  Goal: <= 0.10.
- queue_position_correct: 20 jobs of one account whose quota runs one at a time; the
  positions the API reports while they wait (after sync passes), against the order Kueue
  admits them: the fraction of jobs whose reported order is their admission order.
  Goal: 1.0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.cloud.backends import Backends
from shared.model import queues
from tests.bench import bench_api
from tests.bench.cloud import NAMESPACE, local_cloud
from tests.bench.results import record, table

RUNS = 20
POLL = 0.02
MAIN = bench_api.MAIN
SIMULATED = "alpine:3"  # the node agent's stand-in: KUBESIM_RUN_SECONDS says how long


class Api(bench_api.Api):
    """batch_api's app as the operator, and the sync's."""

    def __init__(self) -> None:
        import functions_framework

        from tests.bench.cloud import authorized

        super().__init__()
        self.sync_client = authorized(
            functions_framework.create_app("synchronize_batch_jobs", MAIN).test_client()
        )

    def account(self, account_id: str, quota: dict[str, Any], weight: float = 1) -> None:
        body = {"account_id": account_id, "quota": quota, "fair_share_weight": weight}
        self.call("POST", "/accounts/", body)

    def share(self, account_id: str, quota: dict[str, Any]) -> None:
        self.call("PATCH", f"/accounts/{account_id}", {"quota": quota})

    def submit(self, account_id: str, seconds: float) -> dict[str, Any]:
        params = {
            "docker_image": SIMULATED,
            "environment_variables": {"KUBESIM_RUN_SECONDS": str(seconds)},
        }
        body = {"account_id": account_id, "job_parameters": params}
        job: dict[str, Any] = self.call("POST", "/batch/", body)["data"]
        return job

    def sync(self) -> None:
        self.sync_client.post("/")


def quota(pods: int, cpu: str = "64", memory: str = "256Gi") -> dict[str, Any]:
    """On-demand capacity only: `pods` at a time, CPU and memory to spare."""
    return {"on-demand": {"cpu": cpu, "memory": memory, "pods": pods},
            "spot": {"cpu": "0", "memory": "0", "pods": 0}}  # fmt: skip


def admin_clients(cloud: Any) -> tuple[Any, Any]:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cloud.plane.admin_kubeconfig))
    return client.BatchV1Api(api), client.CustomObjectsApi(api)


# -- admission_overhead_seconds ----------------------------------------------------------


def _started(core: Any, name: str) -> bool:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={name}").items
    return any(pod.status.phase in ("Running", "Succeeded", "Failed") for pod in pods)


def bench_overhead(cloud: Any, api: Api, runs: int) -> dict[str, float]:
    """The same Job, created straight on the API server with and without Kueue, in turns:
    its creation to its pod running."""
    from kubernetes import client, config

    admin = config.new_client_from_config(config_file=str(cloud.plane.admin_kubeconfig))
    batch: Any = client.BatchV1Api(admin)
    core = client.CoreV1Api(admin)
    api.account("bench-overhead", quota(100))
    backends = Backends()
    queue = backends.queues.ensure("bench-overhead", lambda: _share("bench-overhead"))
    samples: dict[bool, list[float]] = {True: [], False: []}
    for run in range(runs):
        for kueue in (True, False):
            name = f"overhead-{run}-{'kueue' if kueue else 'plain'}"
            manifest = _manifest(name, queue if kueue else None)
            started = time.perf_counter()
            batch.create_namespaced_job(NAMESPACE, manifest)
            while not _started(core, name):
                time.sleep(POLL)
            samples[kueue].append(time.perf_counter() - started)
            batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
    with_kueue, plain = statistics.median(samples[True]), statistics.median(samples[False])
    return {
        "admission_overhead_seconds": with_kueue - plain,
        "admission_with_kueue_seconds": with_kueue,
        "admission_without_kueue_seconds": plain,
    }


def _share(account_id: str) -> queues.Share:
    from shared.jobs.start.placement import share_of

    return share_of(account_id, Backends())


def _manifest(name: str, queue: str | None) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": SIMULATED,
        "env": [{"name": "KUBESIM_RUN_SECONDS", "value": "5"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
    }
    metadata: dict[str, Any] = {"name": name, "labels": {}}
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
    }
    if queue is not None:
        metadata["labels"][queues.QUEUE_LABEL] = queue
        spec["suspend"] = True
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


# -- queue_position_correct --------------------------------------------------------------


def bench_positions(cloud: Any, api: Api, count: int) -> dict[str, float]:
    """Jobs of one account that runs one at a time: the order their reported positions
    give, against the order Kueue resumes their Jobs."""
    batch, _ = admin_clients(cloud)
    api.account("bench-line", quota(1))
    jobs = [api.submit("bench-line", 20) for _ in range(count)]
    names = {job["name"]: job["id"] for job in jobs}
    resumed: dict[str, float] = {}
    snapshots: list[dict[str, int]] = []
    backends = Backends()
    while len(resumed) < count:
        for k8s in batch.list_namespaced_job(NAMESPACE).items:
            if k8s.metadata.name in names and not k8s.spec.suspend:
                resumed.setdefault(names[k8s.metadata.name], time.monotonic())
        api.sync()
        snapshot = {}
        for job_id in names.values():
            record = backends.store.get(job_id)
            if record and record.queued and record.queued.get("position") and job_id not in resumed:
                snapshot[job_id] = int(record.queued["position"])
        if len(snapshot) > 1:
            snapshots.append(snapshot)
        time.sleep(0.2)
    correct = set(names.values())
    for snapshot in snapshots:
        ordered = sorted(snapshot, key=snapshot.__getitem__)
        for ahead, behind in zip(ordered, ordered[1:], strict=False):
            if resumed[ahead] > resumed[behind]:
                correct.discard(behind)
    return {
        "queue_position_correct": len(correct) / count,
        "queue_position_snapshots": float(len(snapshots)),
    }


# -- fair_share_error --------------------------------------------------------------------


WEIGHTS = {"fair-a": 1.0, "fair-b": 1.0, "fair-c": 2.0}


def bench_fair_share(cloud: Any, api: Api, per_account: int, slots: int) -> dict[str, float]:
    """Three accounts of no quota of their own borrow what a fourth lends (`slots` pods):
    while all three have jobs waiting, the share of the running slots each holds."""
    _, custom = admin_clients(cloud)
    api.account("fair-lender", quota(slots))
    for account_id, weight in WEIGHTS.items():
        api.account(account_id, quota(0), weight)
    # In turns, so that no account's jobs all come first; measured once all are in.
    with ThreadPoolExecutor(max_workers=6) as pool:
        orders = [a for _ in range(per_account) for a in WEIGHTS]
        list(pool.map(lambda account_id: api.submit(account_id, 10), orders))
    held = {account_id: 0.0 for account_id in WEIGHTS}
    last = time.monotonic()
    while True:
        listed = custom.list_namespaced_custom_object(
            queues.KUEUE, queues.VERSION, NAMESPACE, "workloads"
        )["items"]
        running = {account_id: 0 for account_id in WEIGHTS}
        waiting = {account_id: 0 for account_id in WEIGHTS}
        for workload in listed:
            queue = workload["spec"].get("queueName")
            if queue not in WEIGHTS or _is(workload, "Finished"):
                continue
            (running if _is(workload, "Admitted") else waiting)[queue] += 1
        now = time.monotonic()
        if not all(waiting.values()):
            break
        for account_id, count in running.items():
            held[account_id] += count * (now - last)
        last = now
        time.sleep(0.1)
    total, weight_sum = sum(held.values()), sum(WEIGHTS.values())
    errors = {
        account_id: abs(held[account_id] / total - WEIGHTS[account_id] / weight_sum)
        / (WEIGHTS[account_id] / weight_sum)
        for account_id in WEIGHTS
    }
    figures = {"fair_share_error": max(errors.values())}
    for account_id in WEIGHTS:
        figures[f"fair_share_{account_id.replace('-', '_')}"] = held[account_id] / total
    return figures


def _is(workload: dict[str, Any], kind: str) -> bool:
    conditions = (workload.get("status") or {}).get("conditions") or []
    return any(c["type"] == kind and c["status"] == "True" for c in conditions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["overhead", "fair", "positions"])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    figures: dict[str, float] = {}
    with local_cloud() as cloud:
        from shared.logs import configure

        configure("WARNING")
        api = Api()
        # Each in turn, in the one cohort: a phase's accounts lend to the next phase's.
        if args.only in (None, "positions"):
            figures |= bench_positions(cloud, api, 20)
            api.share("bench-line", quota(0))
        if args.only in (None, "overhead"):
            figures |= bench_overhead(cloud, api, args.runs)
            api.share("bench-overhead", quota(0))
        if args.only in (None, "fair"):
            figures |= bench_fair_share(cloud, api, per_account=60, slots=8)
    print(table(figures))
    print("  goals: admission_overhead_seconds <= 1, fair_share_error <= 0.10, "
          "queue_position_correct == 1")  # fmt: skip
    record(figures)


if __name__ == "__main__":
    main()
