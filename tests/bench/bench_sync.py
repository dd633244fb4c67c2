"""Benchmark of `synchronize_batch_jobs` over many unfinished jobs, beside its floor: the
Firestore query and the cluster listings it cannot avoid, made raw in the same run.

    .venv/bin/python -m tests.bench.bench_sync [--small 1000] [--large 10000]

Jobs are seeded straight into Firestore (status running) and the API server (each job's
one Job, as the create makes it). The seeded Jobs are suspended, so the Job controller
makes no pod for them: 10,000 pods on one machine's node agent would measure the agent
instead. The sync lists pods in pages all the same, so its request count holds for pods
too: one page per 500. Its requests are counted by the proxy it reaches the API server
through. Figures:

- sync_seconds_1k, sync_seconds_10k, sync_scaling (10k / 1k), sync_k8s_requests_10k;
- sync_firestore_writes_10k_unchanged: documents whose update time moved in a sync that
  had nothing to change (compared before and after, read from Firestore);
- sync_floor_seconds_1k/10k: the longer of the raw Firestore query and the raw cluster
  listings (the sync makes them at the same time), each also printed apart; the floor's
  own scaling; sync_ratio_10k, the sync over its floor.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.bench.cloud import NAMESPACE, PROJECT, Cloud, local_cloud
from tests.bench.results import record, table

MAIN = "functions/main.py"
PAGE = 500


class Seeder:
    def __init__(self, db: Any, collection: str) -> None:
        from kubernetes import client, config

        from shared.settings import get_settings

        self.db, self.collection = db, collection
        self.settings = get_settings()
        self.api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
        self.api.configuration.connection_pool_maxsize = 16
        # Any: manifests are plain dicts and answers are read raw (_preload_content=False).
        self.core: Any = client.CoreV1Api(self.api)
        self.batch: Any = client.BatchV1Api(self.api)

    def seed(self, first: int, count: int) -> None:
        from shared.model import manifests
        from shared.model.job import Job, Status, now_ms

        jobs = []
        for number in range(first, first + count):
            job = Job(
                id=str(uuid.uuid4()),
                name=f"seeded-{number}",
                status=Status.RUNNING,
                created=now_ms(),
                job_parameters={"docker_image": "alpine:3"},
                transitions=[{"at": now_ms(), "from": "created", "to": "running", "reason": "x"}],
            )
            job.updated = job.created
            jobs.append(job)
        for start in range(0, count, 500):
            batch = self.db.batch()
            for job in jobs[start : start + 500]:
                batch.set(self.db.collection(self.collection).document(job.id), job.to_document())
            batch.commit()

        def deploy(job: Job) -> None:
            upload = "http://127.0.0.1:1/upload/unused"  # suspended: stage-out never runs
            manifest = manifests.batch_job(job, self.settings, upload_url=upload)
            manifest["spec"]["suspend"] = True
            self.batch.create_namespaced_job(NAMESPACE, manifest, _preload_content=False).read()

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(deploy, jobs))

    def versions(self) -> dict[str, Any]:
        """Every job document's update time."""
        query = self.db.collection(self.collection).select(["status"])
        return {snapshot.id: snapshot.update_time for snapshot in query.stream()}

    def floor(self) -> tuple[float, float]:
        """The query and the listings a sync cannot avoid, made raw: seconds of each."""
        from google.cloud.firestore_v1 import FieldFilter

        from shared.cloud.store import UNFINISHED
        from shared.model.manifests import OWNED_SELECTOR

        started = time.perf_counter()
        query = self.db.collection(self.collection).where(
            filter=FieldFilter("status", "in", UNFINISHED)
        )
        list(query.stream())
        queried = time.perf_counter()
        for lister in (
            self.batch.list_namespaced_job,
            self.core.list_namespaced_pod,
            self.core.list_namespaced_persistent_volume_claim,
        ):
            token = None
            while True:
                kwargs: dict[str, Any] = {"label_selector": OWNED_SELECTOR, "limit": PAGE}
                if token:
                    kwargs["_continue"] = token
                page = json.loads(lister(NAMESPACE, _preload_content=False, **kwargs).read())
                token = page["metadata"].get("continue")
                if not token:
                    break
        return queried - started, time.perf_counter() - queried


def sync(client: Any) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/")
    spent = time.perf_counter() - started
    body = json.loads(response.data)
    if response.status_code != 200:
        raise SystemExit(f"the sync answered {response.status_code}: {body}")
    return spent, body["data"]


def measure(cloud: Cloud, seeder: Seeder, client: Any, jobs: int) -> dict[str, float]:
    sync(client)  # warm: clients built, first listing paid
    before = seeder.versions()
    cloud.reset_k8s_stats()
    seconds, report = sync(client)
    requests = cloud.k8s_stats()["total"]
    after = seeder.versions()
    if report["checked"] != jobs or report["transitions"] or report["errors"]:
        raise SystemExit(f"the sync did not find {jobs} unchanged jobs: {report}")
    writes = sum(1 for job_id, version in after.items() if before.get(job_id) != version)
    query, listings = seeder.floor()
    return {
        "seconds": seconds,
        "requests": requests,
        "writes": writes,
        "floor": max(query, listings),  # the sync makes them at the same time
        "floor_query": query,
        "floor_listings": listings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    args = parser.parse_args()
    os.environ.update({"SYNC_PASSES_PER_CALL": "1", "CREATE_GRACE_SECONDS": "3600"})
    with local_cloud() as cloud:
        import functions_framework
        from google.cloud import firestore

        from shared.logs import configure

        configure("WARNING")
        db = firestore.Client(project=PROJECT)
        seeder = Seeder(db, os.environ["FIRESTORE_COLLECTION"])
        client = functions_framework.create_app("synchronize_batch_jobs", MAIN).test_client()
        started = time.perf_counter()
        seeder.seed(0, args.small)
        print(f"seeded {args.small} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        small = measure(cloud, seeder, client, args.small)
        started = time.perf_counter()
        seeder.seed(args.small, args.large - args.small)
        print(f"seeded {args.large} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        large = measure(cloud, seeder, client, args.large)
    figures = {
        "sync_seconds_1k": small["seconds"],
        "sync_seconds_10k": large["seconds"],
        "sync_scaling": large["seconds"] / small["seconds"],
        "sync_k8s_requests_1k": small["requests"],
        "sync_k8s_requests_10k": large["requests"],
        "sync_firestore_writes_10k_unchanged": large["writes"],
        "sync_floor_seconds_1k": small["floor"],
        "sync_floor_seconds_10k": large["floor"],
        "sync_floor_firestore_seconds_10k": large["floor_query"],
        "sync_floor_k8s_seconds_10k": large["floor_listings"],
        "sync_floor_scaling": large["floor"] / small["floor"],
        "sync_ratio_10k": large["seconds"] / large["floor"],
    }
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
