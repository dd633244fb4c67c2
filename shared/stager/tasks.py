"""What the stager does for one task of an array job (an Indexed Job's pod, TASK_INDEX):

- `task-env`: read the task's own variables from the job's task_environments
  (`<name>-tasks.json`, a JSON list, through a signed URL) and write them as `NAME='value'`
  lines, which the user's command sources through `sh` before it runs
  (shared/model/manifests.py, TASK_ENV_SCRIPT).
- stage-out's upload: the tasks share one upload plan (OUTPUT_UPLOAD_PLAN, made once by the
  functions, shared/cloud/bucket.py Bucket.task_upload), from which each task writes
  `<name>-output-<index>.zip`:
  - `session`: the emulator's JSON API; the task opens its own resumable upload session,
    with ifGenerationMatch=0 and the job-id metadata, and the upload goes as a plain job's;
  - `form`: a V4 signed POST policy for the object names under the job's prefix; the zip is
    spooled to TMPDIR (its own volume) and sent as one multipart/form-data POST, retried as a
    whole on connection errors, 408, 429 and 5xx.
"""

from __future__ import annotations

import json
import logging
import shlex
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from shared.contract.exits import InputRejected, StagerError, UsageError
from shared.stager import archive, fetch
from shared.stager.errors import OutputExistsError, TransientStorageError, UploadSessionError
from shared.stager.upload import (
    GONE_STATUS,
    REFUSED_STATUS,
    TRANSIENT_STATUS,
    ZIP_CONTENT_TYPE,
    Connection,
    Lost,
    Stored,
    Unreachable,
)

log = logging.getLogger(__name__)
TASK_ENV_NAME = "task.env"
MAX_TASKS_BYTES = 8 * 1024 * 1024  # the JSON of every task's variables (4 MiB allowed, as UTF-8)
SHELL_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def task_index(env: Mapping[str, str]) -> int:
    """TASK_INDEX, or Kubernetes' own JOB_COMPLETION_INDEX."""
    raw = (env.get("TASK_INDEX") or env.get("JOB_COMPLETION_INDEX") or "").strip()
    if not raw.isdigit():
        raise UsageError("TASK_INDEX (or JOB_COMPLETION_INDEX) must be a task's index")
    return int(raw)


def write_task_env(*, url: str, directory: Path, index: int, deadline: float) -> Path:
    """Download the tasks' variables and write task `index`'s as a file `sh` can source."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory) as temp:
        fetch.download(url, temp, max_bytes=MAX_TASKS_BYTES, deadline=deadline)
        temp.seek(0)
        try:
            tasks = json.load(temp)
        except ValueError as error:
            raise InputRejected(f"the task environments are not JSON: {error}") from None
    if not isinstance(tasks, list) or not 0 <= index < len(tasks):
        raise InputRejected(f"the task environments hold no task {index}")
    variables = tasks[index]
    if not isinstance(variables, dict):
        raise InputRejected(f"task {index}'s environment is not an object")
    lines = []
    for name, value in sorted(variables.items()):
        if not name or name[0].isdigit() or not set(name) <= SHELL_NAME_CHARS:
            raise InputRejected(f"task {index}'s variable {name!r} is not a shell name")
        lines.append(f"{name}={shlex.quote(str(value))}\n")
    path = directory / TASK_ENV_NAME
    path.write_text("".join(lines), encoding="utf-8")
    log.info("task environment written", extra={"task": index, "variables": len(lines)})
    return path


@dataclass(frozen=True)
class UploadPlan:
    kind: str  # "session" or "form"
    url: str
    object_name: str  # this task's
    job_id: str
    fields: dict[str, str]  # a form's fields (the signed policy)


def read_plan(raw: str, index: int) -> UploadPlan:
    try:
        plan = json.loads(raw)
        kind, url, template = plan["kind"], plan["url"], plan["object"]
    except (ValueError, KeyError, TypeError):
        raise UsageError("OUTPUT_UPLOAD_PLAN is not an upload plan") from None
    if kind not in ("session", "form") or not str(url).startswith(("https://", "http://")):
        raise UsageError("OUTPUT_UPLOAD_PLAN is not an upload plan")
    fields = {str(key): str(value) for key, value in (plan.get("fields") or {}).items()}
    job_id = str(plan.get("job_id") or fields.get("x-goog-meta-job-id") or "")
    return UploadPlan(kind, url, str(template).format(index=index), job_id, fields)


def open_session(plan: UploadPlan, *, retry_seconds: float) -> str:
    """Open this task's resumable upload session (the emulator's JSON API): its URI."""
    resource = {"name": plan.object_name, "contentType": ZIP_CONTENT_TYPE}
    body = json.dumps({**resource, "metadata": {"job-id": plan.job_id}}).encode()
    headers = {"Content-Type": "application/json", "X-Upload-Content-Type": ZIP_CONTENT_TYPE}
    answer = _send(plan.url, body, headers, retry_seconds=retry_seconds, what="open a session")
    location = answer.get("location")
    if not location:
        raise UploadSessionError(f"no session for {plan.object_name}: HTTP {answer['status']}")
    return location


def form_upload(
    plan: UploadPlan, directory: Path, *, compress_level: int, retry_seconds: float
) -> tuple[Stored, archive.ArchiveSummary]:
    """Zip `directory` to a spool file (in TMPDIR: the pod's root is read-only), then POST
    it with the policy's fields."""
    with tempfile.TemporaryFile(prefix="output-") as spool:
        summary = archive.write_zip(directory, _FileSink(spool), level=compress_level)
        size = spool.tell()
        boundary = uuid.uuid4().hex
        fields = {**plan.fields, "key": plan.object_name}
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="output.zip"'
            f"\r\nContent-Type: {ZIP_CONTENT_TYPE}\r\n\r\n"
        )
        tail = f"\r\n--{boundary}--\r\n".encode()
        spool.seek(0)
        body = head.encode() + spool.read() + tail
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    _send(plan.url, body, headers, retry_seconds=retry_seconds, what="upload the output")
    return Stored(plan.object_name, size, "", already_complete=False, requests=1), summary


class _FileSink:
    """archive.Sink over a plain file."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """The spool outlives the zip: form_upload sends it, then closes it."""

    def write(self, data: bytes, /) -> int:
        return self._file.write(data)


def _send(
    url: str, body: bytes, headers: dict[str, str], *, retry_seconds: float, what: str
) -> dict[str, Any]:
    """POST with retries of what may pass: connection errors, 408, 429, 5xx."""
    give_up, pause = time.monotonic() + retry_seconds, 1.0
    connection = Connection(url)
    try:
        while True:
            try:
                status, location = connection.post(body, headers)
            except (Unreachable, Lost) as error:
                problem = str(error)
            else:
                if status < 300:
                    return {"status": status, "location": location}
                if status == 412:
                    raise OutputExistsError(f"could not {what}: the object exists (HTTP 412)")
                if status in GONE_STATUS or status in REFUSED_STATUS:
                    raise UploadSessionError(f"could not {what}: HTTP {status}")
                if status not in TRANSIENT_STATUS:
                    raise StagerError(f"could not {what}: HTTP {status}")
                problem = f"HTTP {status}"
            if time.monotonic() + pause > give_up:
                raise TransientStorageError(f"could not {what}: {problem}")
            log.warning("could not %s; retrying", what, extra={"error": problem})
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
    finally:
        connection.close()
