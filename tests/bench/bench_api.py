"""Benchmark of the request path: each figure beside its floor, the backend calls it cannot
avoid, timed raw with the same client libraries in the same process and the same run.

    .venv/bin/python -m tests.bench.bench_api [--gets 500] [--creates 40]

Access control is on, as deployed: every request carries an identity token (the bench
cloud's issuer signs it) that the function verifies.

- get_ratio: median GET /batch/<id> / median raw Firestore document get (get_p99_ms too),
  as an operator; get_member_ratio: the same by a viewer of the job's account, whose roles
  are read first (one Firestore query).
- token_check_cached_us: a verified token checked again (the per-token cache);
  token_check_first_ms: a token's first check (its RS256 signature, the certificates held).
- list_ratio: GET /batch/?status=running over 1,000 matching jobs / the raw query.
- create_ratio: median create without input / the sum of the calls that cannot overlap:
  the batch that stores the record and its name (beside it, the output's upload session,
  which the product opens at the same time), the Job, the status write.
  create_1mib_ratio: the same with a 1 MiB input, whose upload comes before the Job.

The functions are served by functions-framework's own app (its test client: no socket), so
the ratios are what the product adds: validation, envelopes, checked transitions, logs.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import statistics
import time
import uuid
import zipfile
from collections.abc import Callable
from typing import Any

from tests.bench.cloud import (
    NAMESPACE,
    OPERATOR,
    PROJECT,
    authorized,
    local_cloud,
    operator_headers,
)
from tests.bench.results import record, table

MAIN = "functions/main.py"


def timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


class Api:
    def __init__(self, email: str = OPERATOR) -> None:
        import functions_framework

        app = functions_framework.create_app("batch_api", MAIN)
        self.client = authorized(app.test_client(), email)

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.client.open(path, method=method, json=body)
        data: dict[str, Any] = json.loads(response.data)
        if response.status_code != 200:
            raise SystemExit(f"{method} {path} answered {response.status_code}: {data}")
        return data


def bench_get(api: Api, db: Any, collection: str, count: int) -> dict[str, float]:
    job = api.call("POST", "/batch/", _create_body("get-target"))["data"]
    doc = db.collection(collection).document(job["id"])
    product, raw = [], []
    for _ in range(20):  # warm both paths
        api.call("GET", f"/batch/{job['id']}")
        doc.get()
    for _ in range(count):  # interleaved: both see the same emulator, the same moment
        product.append(timed(lambda: api.call("GET", f"/batch/{job['id']}")))
        raw.append(timed(doc.get))
    api.call("DELETE", f"/batch/{job['id']}")
    return {
        "get_median_ms": median_ms(product),
        "get_raw_median_ms": median_ms(raw),
        "get_ratio": statistics.median(product) / statistics.median(raw),
        "get_p99_ms": p99_ms(product),
    }


def bench_get_member(db: Any, collection: str, count: int) -> dict[str, float]:
    """GET /batch/<id> by a viewer of the job's account, not an operator: the caller's
    roles are read (one Firestore query) before the job, against the same floor."""
    operator, viewer = Api(), Api("viewer@bench.test")
    operator.call("POST", "/accounts/", {"account_id": "bench-team",
                                         "members": {"viewer@bench.test": "viewer"}})  # fmt: skip
    body = {**_create_body("get-member-target"), "account_id": "bench-team"}
    job = operator.call("POST", "/batch/", body)["data"]
    doc = db.collection(collection).document(job["id"])
    product, raw = [], []
    for _ in range(20):
        viewer.call("GET", f"/batch/{job['id']}")
        doc.get()
    for _ in range(count):
        product.append(timed(lambda: viewer.call("GET", f"/batch/{job['id']}")))
        raw.append(timed(doc.get))
    operator.call("DELETE", f"/batch/{job['id']}")
    return {
        "get_member_median_ms": median_ms(product),
        "get_member_ratio": statistics.median(product) / statistics.median(raw),
    }


def bench_token_check(count: int = 10_000) -> dict[str, float]:
    """One verified token's check again (the cache), and a first check (a signature)."""
    from shared.cloud.identity import TokenVerifier
    from shared.settings import get_settings

    verifier = TokenVerifier(get_settings().access)
    header = operator_headers("someone@bench.test")["Authorization"]
    first = timed(lambda: verifier.email(header, None))
    again = [timed(lambda: verifier.email(header, None)) for _ in range(count)]
    headers = [operator_headers(f"u{n}@bench.test")["Authorization"] for n in range(200)]
    fresh = [timed(lambda h=h: verifier.email(h, None)) for h in headers]  # type: ignore[misc]
    return {
        "token_check_cached_us": statistics.median(again) * 1e6,
        "token_check_first_ms": statistics.median(fresh) * 1000,
        "token_check_first_with_certs_ms": first * 1000,
    }


def seed_running(db: Any, collection: str, count: int) -> None:
    """`count` running jobs written straight into Firestore, as a create leaves them."""
    from shared.model.job import Job, Status, now_ms

    created = now_ms()
    for start in range(0, count, 500):
        batch = db.batch()
        for number in range(start, min(start + 500, count)):
            job = Job(
                id=str(uuid.uuid4()),
                name=f"seeded-{number}",
                status=Status.RUNNING,
                created=created + number,
                job_parameters={"docker_image": "alpine:3", "environment_variables": {"N": "1"}},
                account_id=f"acct-{number % 7}",
            )
            job.updated = created
            batch.set(db.collection(collection).document(job.id), job.to_document())
        batch.commit()


def bench_list(api: Api, db: Any, collection: str, rounds: int) -> dict[str, float]:
    from google.cloud.firestore_v1 import FieldFilter

    seed_running(db, collection, 1000)
    query = db.collection(collection).where(filter=FieldFilter("status", "==", "running"))
    query = query.order_by("created")
    found = api.call("GET", "/batch/?status=running")["data"]
    if len(found) != 1000 or len(list(query.stream())) != 1000:
        raise SystemExit(f"expected 1000 running jobs, the API listed {len(found)}")
    product, raw = [], []
    for _ in range(rounds):
        product.append(timed(lambda: api.call("GET", "/batch/?status=running")))
        raw.append(timed(lambda: list(query.stream())))
    return {
        "list_median_ms": median_ms(product),
        "list_raw_median_ms": median_ms(raw),
        "list_ratio": statistics.median(product) / statistics.median(raw),
    }


def _create_body(name: str, input_zip: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "docker_image": "alpine:3",
        "environment_variables": {"KUBESIM_RUN_SECONDS": "0"},
    }
    if input_zip:
        params["input_zip"] = input_zip
    return {"name": name, "account_id": "bench", "job_parameters": params}


def _input_zip(size: int) -> str:
    """A zip of `size` random (incompressible) bytes, base64."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.bin", random.Random(7).randbytes(size))
    return base64.b64encode(buffer.getvalue()).decode()


def drain(response: Any) -> None:
    """Read the body (as the product does) before the connection goes back to the pool."""
    response.read()
    response.release_conn()


class RawCreate:
    """The calls a create cannot avoid, made raw: each timed on its own."""

    def __init__(self, db: Any, collection: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
        from kubernetes import client, config

        from shared.settings import get_settings

        self.db, self.collection = db, collection
        self.settings = get_settings()
        api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
        # Any: manifests are plain dicts and answers are read raw (_preload_content=False).
        self.core: Any = client.CoreV1Api(api)
        self.batch: Any = client.BatchV1Api(api)
        gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        self.bucket = gcs.bucket(self.settings.bucket)

    def once(self, data: bytes | None) -> float:
        """Seconds of the calls in sequence, overlapping ones counted once (the longest)."""
        from shared.model import manifests
        from shared.model.job import Job, Status, now_ms

        job = Job(
            id=str(uuid.uuid4()),
            name=f"raw-{uuid.uuid4().hex[:12]}",
            status=Status.CREATED,
            created=now_ms(),
            job_parameters=_create_body("x")["job_parameters"],
            has_input=data is not None,
        )
        doc = self.db.collection(self.collection).document(job.id)

        def store() -> None:
            batch = self.db.batch()
            batch.create(self.db.collection(f"{self.collection}_names").document(job.name), {})
            batch.create(doc, job.to_document())
            batch.commit()

        session: list[str] = []

        def open_upload() -> None:
            blob = self.bucket.blob(job.output_object)
            blob.metadata = {"job-id": job.id}
            session.append(
                blob.create_resumable_upload_session(
                    content_type="application/zip", if_generation_match=0, checksum=None
                )
            )

        def upload() -> None:
            self.bucket.blob(job.input_object).upload_from_string(data, if_generation_match=0)

        def k8s_job() -> None:
            manifest = manifests.batch_job(
                job, self.settings, upload_url=session[0], input_url="http://x/y"
            )
            drain(self.batch.create_namespaced_job(NAMESPACE, manifest, _preload_content=False))

        # The record and the upload session overlap; then the input (a job with one), then
        # the Job, then the status write.
        floor = max(timed(store), timed(open_upload))
        if data is not None:
            floor += timed(upload)
        return floor + timed(k8s_job) + timed(lambda: doc.update({"status": "running"}))


def bench_create(api: Api, db: Any, collection: str, count: int) -> dict[str, float]:
    raw = RawCreate(db, collection)
    figures: dict[str, float] = {}
    for label, size in (("create", 0), ("create_1mib", 1024 * 1024)):
        encoded = _input_zip(size) if size else None
        data = base64.b64decode(encoded) if encoded else None
        product, floor = [], []
        for number in range(count + 3):
            name = f"{label.replace('_', '-')}-{number}"
            spent = timed(lambda: api.call("POST", "/batch/", _create_body(name, encoded)))  # noqa: B023
            spent_raw = raw.once(data)
            if number >= 3:  # the first few warm the clients and connections
                product.append(spent)
                floor.append(spent_raw)
        figures[f"{label}_median_ms"] = median_ms(product)
        figures[f"{label}_floor_median_ms"] = median_ms(floor)
        figures[f"{label}_ratio"] = statistics.median(product) / statistics.median(floor)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gets", type=int, default=500)
    parser.add_argument("--creates", type=int, default=40)
    parser.add_argument("--list-rounds", type=int, default=20)
    args = parser.parse_args()
    with local_cloud():
        from google.cloud import firestore

        from shared.logs import configure

        configure("WARNING")
        db = firestore.Client(project=PROJECT)
        collection = os.environ["FIRESTORE_COLLECTION"]
        api = Api()
        figures = bench_get(api, db, collection, args.gets)
        figures |= bench_get_member(db, collection, args.gets)
        figures |= bench_token_check()
        figures |= bench_list(api, db, collection, args.list_rounds)  # before creates add more
        figures |= bench_create(api, db, collection, args.creates)
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
