"""The stager's part of an array job's task: its variables (task-env) and its own output
through the tasks' shared upload plan: a session it opens on fake-gcs-server, or a signed
POST policy form, checked here by a loopback server as Cloud Storage checks one."""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
import subprocess
import threading
import uuid
import zipfile
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.cloud.bucket import Bucket
from shared.contract.exits import ExitCode
from tests.fixtures.keys import key_credentials, new_key
from tests.stager.test_cli import stager

JOB_ID = str(uuid.uuid4())


def put(storage_client, bucket: str, name: str, data: bytes) -> str:
    storage_client.bucket(bucket).blob(name).upload_from_string(data)
    host = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")
    return f"{host}/download/storage/v1/b/{bucket}/o/{name}?alt=media"


def test_task_env_writes_the_tasks_variables_for_sh(storage_client, bucket, tmp_path):
    tricky = 'it\'s "quoted" $HOME `date` \\ and\nnewline'
    tasks = [{"X": "zero"}, {"X": "one", "TRICKY": tricky, "EMPTY": ""}]
    url = put(storage_client, bucket, "sweep-tasks.json", json.dumps(tasks).encode())
    result = stager("task-env", "--dir", str(tmp_path), env={"TASKS_URL": url, "TASK_INDEX": "1"})
    assert result.returncode == 0, result.stderr
    script = f'set -a; . {tmp_path}/task.env; set +a; exec "$@"'
    seen = subprocess.run(
        [
            "/bin/sh",
            "-c",
            script,
            "task",
            "python3",
            "-c",
            "import os, json; print(json.dumps(dict(os.environ)))",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        check=True,
    )
    env = json.loads(seen.stdout)
    assert (env["X"], env["TRICKY"], env["EMPTY"]) == ("one", tricky, "")


@pytest.mark.parametrize(
    ("tasks", "index", "said"),
    [
        ([{"X": "1"}], "1", "hold no task 1"),
        ({"X": "1"}, "0", "hold no task 0"),
        ([["X"]], "0", "is not an object"),
        ([{"a-b": "1"}], "0", "is not a shell name"),
    ],
)
def test_task_env_refuses_what_it_cannot_write(
    storage_client, bucket, tmp_path, tasks, index, said
):
    url = put(storage_client, bucket, "t.json", json.dumps(tasks).encode())
    result = stager("task-env", "--dir", str(tmp_path), env={"TASKS_URL": url, "TASK_INDEX": index})
    assert result.returncode == ExitCode.INPUT_REJECTED
    assert said in result.stderr


def test_task_env_needs_its_index(tmp_path):
    result = stager("task-env", "--dir", str(tmp_path), env={"TASKS_URL": "http://127.0.0.1:1/t"})
    assert result.returncode == ExitCode.USAGE
    assert "TASK_INDEX" in result.stderr


def test_a_task_opens_its_own_session_from_the_plan(storage_client, bucket, tmp_path):
    plan = Bucket(storage_client, bucket).task_upload("sweep-output-", JOB_ID, 3600, 10**9)
    (tmp_path / "result.txt").write_text("task three")
    env = {"OUTPUT_UPLOAD_PLAN": plan, "TASK_INDEX": "3"}
    result = stager("stage-out", "--dir", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    blob = storage_client.bucket(bucket).get_blob("sweep-output-3.zip")
    assert blob is not None and blob.metadata == {"job-id": JOB_ID}
    with zipfile.ZipFile(io.BytesIO(blob.download_as_bytes())) as archive:
        assert archive.read("result.txt") == b"task three"
    again = stager("stage-out", "--dir", str(tmp_path), env=env)
    assert again.returncode == ExitCode.OUTPUT_CONFLICT or again.returncode == 0


# -- a signed POST policy form ------------------------------------------------------------


class FormServer:
    """Checks a V4 POST policy upload as Cloud Storage documents it: the signature over
    the base64 policy, its expiration and every condition against the form's fields."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.public = key.public_key()
        self.stored: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.answers: list[int] = []
        self.fail_first = 0

    def check(self, fields: dict[str, str], content: bytes) -> int:
        signature = binascii.unhexlify(fields["x-goog-signature"])
        try:
            self.public.verify(
                signature, fields["policy"].encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:  # noqa: BLE001 - any mismatch is a refusal
            return 403
        policy = json.loads(base64.b64decode(fields["policy"]))
        for condition in policy["conditions"]:
            if isinstance(condition, dict):
                ((name, value),) = condition.items()
                if name != "bucket" and fields.get(name) != value:
                    return 403
            elif condition[0] == "starts-with":
                if not fields.get(condition[1].lstrip("$"), "").startswith(condition[2]):
                    return 403
            elif condition[0] == "content-length-range":
                if not condition[1] <= len(content) <= condition[2]:
                    return 400
        if fields["key"] in self.stored:
            return 412
        meta = {
            k.removeprefix("x-goog-meta-"): v
            for k, v in fields.items()
            if k.startswith("x-goog-meta-")
        }
        self.stored[fields["key"]] = (content, meta)
        return 204


@pytest.fixture
def form_server() -> Iterator[tuple[FormServer, str, Any]]:
    key = new_key()
    credentials = key_credentials("api@example.iam.gserviceaccount.com", key)
    state = FormServer(key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers["Content-Length"])
            raw = self.rfile.read(length)
            if state.fail_first > 0:
                state.fail_first -= 1
                status = 503
            else:
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + raw)
                fields: dict[str, str] = {}
                content = b""
                for part in message.iter_parts():
                    name = str(part.get_param("name", header="content-disposition"))
                    if name == "file":
                        content = bytes(part.get_payload(decode=True))
                    else:
                        fields[name] = part.get_content().strip("\r\n")
                status = state.check(fields, content)
            state.answers.append(status)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/bkt/", credentials
    finally:
        server.shutdown()
        server.server_close()


def form_plan(url: str, credentials: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from google.cloud import storage

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    client = storage.Client(project="p", credentials=credentials)
    plan = json.loads(Bucket(client, "bkt").task_upload("sweep-output-", JOB_ID, 3600, 10**6))
    assert plan["kind"] == "form" and plan["url"] == "https://storage.googleapis.com/bkt/"
    plan["url"] = url  # the loopback stand-in for storage.googleapis.com
    return json.dumps(plan)


def test_a_task_uploads_through_the_signed_policy(form_server, tmp_path, monkeypatch):
    state, url, credentials = form_server
    plan = form_plan(url, credentials, monkeypatch)
    (tmp_path / "out.txt").write_text("seven")
    state.fail_first = 1  # a 503 first: the whole form is sent again
    result = stager(
        "stage-out",
        "--dir",
        str(tmp_path),
        env={"OUTPUT_UPLOAD_PLAN": plan, "TASK_INDEX": "7", "STAGER_RETRY_SECONDS": "10"},
    )
    assert result.returncode == 0, result.stderr
    assert state.answers == [503, 204]
    content, meta = state.stored["sweep-output-7.zip"]
    assert meta == {"job-id": JOB_ID}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.read("out.txt") == b"seven"
    again = stager(
        "stage-out", "--dir", str(tmp_path), env={"OUTPUT_UPLOAD_PLAN": plan, "TASK_INDEX": "7"}
    )
    assert again.returncode == ExitCode.OUTPUT_CONFLICT
    assert "exists" in again.stderr


def test_a_tampered_policy_is_refused(form_server, tmp_path, monkeypatch):
    state, url, credentials = form_server
    plan = json.loads(form_plan(url, credentials, monkeypatch))
    plan["object"] = "another-job-{index}.zip"  # outside the signed prefix
    (tmp_path / "out.txt").write_text("x")
    result = stager(
        "stage-out",
        "--dir",
        str(tmp_path),
        env={"OUTPUT_UPLOAD_PLAN": json.dumps(plan), "TASK_INDEX": "0"},
    )
    assert result.returncode == ExitCode.OUTPUT_CONFLICT
    assert state.answers == [403] and not state.stored
