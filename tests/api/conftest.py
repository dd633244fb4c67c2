"""The job API wired to the local cloud: per-test bucket, namespace and collection."""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from shared.backends import Backends, default_backends
from shared.model import Status
from shared.settings import get_settings

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
STAGER_IMAGE = "stager:test"


def _use(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Iterator[dict[str, str]]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    default_backends.cache_clear()
    yield env
    get_settings.cache_clear()
    default_backends.cache_clear()


@pytest.fixture
def store_env(monkeypatch, gcs, firestore_emulator, bucket, collection_prefix):
    """The API's settings for requests that never reach the cluster."""
    yield from _use(
        monkeypatch,
        {
            "GC_BUCKET_NAME": bucket,
            "FIRESTORE_COLLECTION": f"{collection_prefix}jobs",
            "KUBECONFIG": "/nonexistent/kubeconfig",
            "LOG_LEVEL": "INFO",
        },
    )


@pytest.fixture
def app_env(monkeypatch, store_env, kubesim, namespace):
    """The API's settings for the whole life cycle, on this test's namespace."""
    yield from _use(
        monkeypatch,
        {
            **store_env,
            "KUBECONFIG": str(kubesim.kubeconfig),
            "KUBERNETES_NAMESPACE": namespace,
            "STAGER_IMAGE": STAGER_IMAGE,
        },
    )


@pytest.fixture
def backends(app_env) -> Backends:
    return default_backends()


class Functions:
    """The deployed entry points, served by functions-framework's own app."""

    def __init__(self) -> None:
        self.clients = {
            name: functions_framework.create_app(name, MAIN).test_client()
            for name in (
                "batch_api",
                "create_job",
                "get_job",
                "list_jobs",
                "kill_job",
                "synchronize_batch_jobs",
                "on_output_finalized",
            )
        }

    def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        response = self.clients["batch_api"].open(path, method=method, **kwargs)
        return response.status_code, json.loads(response.data)

    def sync(self) -> dict[str, Any]:
        response = self.clients["synchronize_batch_jobs"].post("/")
        body = json.loads(response.data)
        assert response.status_code == 200, body
        return body["data"]

    def finalize(self, data: dict[str, Any], event_id: str = "1") -> int:
        event = CloudEvent(
            {
                "type": "google.cloud.storage.object.v1.finalized",
                "source": f"//storage.googleapis.com/projects/_/buckets/{data['bucket']}",
                "subject": f"objects/{data['name']}",
                "id": event_id,
            },
            data,
        )
        headers, body = to_binary(event)
        return self.clients["on_output_finalized"].post("/", headers=headers, data=body).status_code

    def job(self, job_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/batch/{job_id}")
        assert status == 200, body
        return body["data"]

    def sync_until(
        self, job_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.sync()
            job = self.job(job_id)
            if predicate(job):
                return job
            assert time.monotonic() < deadline, f"job stuck: {job}"
            time.sleep(0.05)


@pytest.fixture(scope="session")
def functions_app() -> Functions:
    return Functions()


@pytest.fixture
def fn(app_env, functions_app) -> Functions:
    return functions_app


@pytest.fixture
def fn_store(store_env, functions_app) -> Functions:
    """The functions, for requests that only need Firestore and Cloud Storage."""
    return functions_app


def zip_b64(files: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return base64.encodebytes(buffer.getvalue()).decode()


def status_is(*statuses: Status) -> Callable[[dict[str, Any]], bool]:
    values = {s.value for s in statuses}
    return lambda job: job["status"] in values
