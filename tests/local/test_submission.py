"""Submission by upload on `make run`'s stack, end to end: the zip is uploaded to
fake-gcs-server as a user would, its notification goes through Pub/Sub and the Eventarc
relay to `on_output_finalized`, and the scheduler's syncs carry the job to its output."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import pytest
import requests

from infra.local.config import isolated_env
from infra.local.stack import read_env_file
from tests.fixtures.api import zip_bytes
from tests.fixtures.tokens import operator_session
from tests.local.test_stack import descendants, start_stack, stop_stack

pytestmark = pytest.mark.slow
COPY = "import shutil; shutil.copytree('/input', '/output', dirs_exist_ok=True)"


def _wait_for(what: str, probe: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.5)
    return found


def test_a_zip_uploaded_under_submissions_runs_through_the_relay(tmp_path):
    state = tmp_path / "state"
    env = isolated_env(state, GC_BUCKET_NAME="submit-bucket", JOB_SYNCHRONIZATION_INTERVAL="2")
    stack = start_stack(state, env)
    spawned: set[int] = set()
    try:
        cloud = read_env_file(state / "env")
        http = operator_session(cloud)
        spawned = descendants(stack.pid)
        storage, bucket = cloud["STORAGE_EMULATOR_HOST"], cloud["GC_BUCKET_NAME"]
        objects = f"{storage}/storage/v1/b/{bucket}/o"
        made = http.post(f"{cloud['API_URL']}/accounts/", json={"account_id": "team"}, timeout=30)
        assert made.status_code == 200, made.text

        def upload(name: str, data: bytes) -> None:
            requests.post(
                f"{storage}/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "media", "name": f"submissions/team/{name}.zip"},
                data=data,
                headers={"Content-Type": "application/zip"},
                timeout=30,
            ).raise_for_status()

        def read(name: str) -> Any:
            answer = requests.get(f"{objects}/{name.replace('/', '%2F')}?alt=media", timeout=30)
            return answer.json() if answer.ok else None

        body = {"job_parameters": {"docker_image": "python:3.11", "args": ["python3", "-c", COPY]}}
        upload("relayed", zip_bytes({"job.json": json.dumps(body).encode(), "in.txt": b"in"}))
        accepted = _wait_for("job object", lambda: read("submissions/team/relayed.job.json"))
        assert accepted["data"]["name"] == "relayed"
        api = f"http://127.0.0.1:{env['API_PORT']}/batch/{accepted['job_id']}"

        def final() -> dict[str, Any] | None:
            job: dict[str, Any] = http.get(api, timeout=30).json()["data"]
            return job if job["status"] in ("succeeded", "failed") else None

        done = _wait_for("final status", final)
        assert done["status"] == "succeeded", done
        output = requests.get(done["output_file_url"], timeout=30).content
        assert zipfile.ZipFile(io.BytesIO(output)).namelist() == ["in.txt"]

        upload("refused", zip_bytes({"in.txt": b"in"}))
        refused = _wait_for("error object", lambda: read("submissions/team/refused.error.json"))
        assert (refused["status"], refused["error"]) == (400, "InvalidParameters")
    finally:
        stop_stack(stack, spawned)
