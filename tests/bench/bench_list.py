"""Benchmark of a list page: its cost must not grow with the collection (a cursor, not an
offset).

    .venv/bin/python -m tests.bench.bench_list [--rounds 30] [--large 100000] [--small 1000]

Two collections are seeded straight into Firestore in batches of 500: one whose jobs in
status `succeeded` number `--large`, one whose number `--small`. The same request is timed
on each, interleaved: `GET /batch/?status=succeeded&page_size=100&page_token=T`, T being the
token of the page that starts halfway through the status. Beside it, the raw query the
product sends (the same cursor, limit 101), timed the same way.

- list_page_ratio: median page from the large collection / median page from the small one.
- list_page_raw_ratio: the same for the raw query: what the database itself does.

The Firestore emulator answers a query by reading the whole collection (it has no
indexes), so on it both ratios grow with the collection; on Firestore a cursor query reads
only its page from the index. BACKEND_TIMEOUT_SECONDS is raised to 600 here: one query on
the emulator's 100,000 documents can take longer than the default 15 s.

The functions are served by functions-framework's own app (its test client: no socket).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.bench.bench_api import Api, median_ms, timed
from tests.bench.cloud import PROJECT, local_cloud
from tests.bench.results import record, table

PAGE = 100
BATCH = 500  # Firestore's most writes in one batch


def seed(db: Any, collection: str, count: int) -> list[Any]:
    """`count` succeeded jobs, created a millisecond apart, in batches of 500 written by a
    few threads at once; the jobs, oldest first."""
    from shared.model.job import Job, Status, now_ms

    created = now_ms() - count
    jobs: list[Any] = []

    def write(start: int) -> None:
        batch = db.batch()
        for number in range(start, min(start + BATCH, count)):
            job = Job(
                id=str(uuid.uuid4()),
                name=f"seeded-{number}",
                status=Status.SUCCEEDED,
                created=created + number,
                job_parameters={"docker_image": "alpine:3", "environment_variables": {"N": "1"}},
                account_id=f"acct-{number % 7}",
            )
            job.updated = job.created
            jobs.append(job)
            batch.set(db.collection(collection).document(job.id), job.to_document())
        batch.commit()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(0, count, BATCH)))
    return sorted(jobs, key=lambda job: (job.created, job.id))


def use(collection: str) -> None:
    """Point the functions at `collection` (they read their settings afresh)."""
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    os.environ["FIRESTORE_COLLECTION"] = collection
    get_settings.cache_clear()
    default_backends.cache_clear()


def page_path(token: str) -> str:
    return f"/batch/?status=succeeded&page_size={PAGE}" + (f"&page_token={token}" if token else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000)
    args = parser.parse_args()
    os.environ["BACKEND_TIMEOUT_SECONDS"] = "600"
    with local_cloud():
        from google.cloud import firestore

        from shared.cloud.store import JobStore
        from shared.http import paging
        from shared.logs import configure
        from shared.model.job import Status

        configure("WARNING")
        db = firestore.Client(project=PROJECT)
        started = time.perf_counter()
        counts = {"bench_large": args.large, "bench_small": args.small}
        seeded = {collection: seed(db, collection, count) for collection, count in counts.items()}
        print(f"seeded {sum(counts.values())} jobs in {time.perf_counter() - started:.0f} s")
        api = Api()
        tokens, raw = {}, {}
        for collection, jobs in seeded.items():
            last = jobs[len(jobs) // 2 - 1]  # the page starts halfway
            tokens[collection] = paging.token(Status.SUCCEEDED, None, last)
            query = JobStore(db, collection).find_query(Status.SUCCEEDED)
            raw[collection] = query.start_after({"created": last.created, "__name__": last.id})
            use(collection)
            page = api.call("GET", page_path(tokens[collection]))
            if [job["id"] for job in page["data"]] != [j.id for j in jobs[len(jobs) // 2 :][:PAGE]]:
                raise SystemExit(f"{collection}: the page is not the second half's first 100")
        samples: dict[str, list[float]] = {f"{c}/{w}": [] for c in counts for w in ("api", "raw")}
        for _ in range(args.rounds):  # interleaved: both see the same emulator, the same moment
            for collection in counts:
                use(collection)
                path, query = page_path(tokens[collection]), raw[collection].limit(PAGE + 1)
                samples[f"{collection}/api"].append(timed(lambda: api.call("GET", path)))  # noqa: B023
                samples[f"{collection}/raw"].append(timed(lambda: list(query.stream())))  # noqa: B023
    large, small = samples["bench_large/api"], samples["bench_small/api"]
    figures = {
        "list_page_large_median_ms": median_ms(large),
        "list_page_small_median_ms": median_ms(small),
        "list_page_ratio": statistics.median(large) / statistics.median(small),
        "list_page_raw_large_median_ms": median_ms(samples["bench_large/raw"]),
        "list_page_raw_small_median_ms": median_ms(samples["bench_small/raw"]),
        "list_page_raw_ratio": statistics.median(samples["bench_large/raw"])
        / statistics.median(samples["bench_small/raw"]),
    }
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
