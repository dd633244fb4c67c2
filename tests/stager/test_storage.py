"""How storage failures become exit codes, and an upload that fails stays failed."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as api
from google.auth import exceptions as auth

from infra.local.procs import free_port
from shared.stager import storage
from shared.stager.config import Credentials
from shared.stager.errors import ExitCode, StorageRefusedError, TransientStorageError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (api.TooManyRequests("slow down"), ExitCode.TRANSIENT),
        (api.ServiceUnavailable("503"), ExitCode.TRANSIENT),
        (api.GatewayTimeout("504"), ExitCode.TRANSIENT),
        (api.RetryError("gave up", cause=None), ExitCode.TRANSIENT),
        (requests.ConnectionError("refused"), ExitCode.TRANSIENT),
        (requests.Timeout("timed out"), ExitCode.TRANSIENT),
        (auth.RefreshError("metadata server not ready"), ExitCode.TRANSIENT),
        (api.Forbidden("denied"), ExitCode.FAILURE),
        (api.NotFound("no such bucket"), ExitCode.FAILURE),
    ],
)
def test_translate(error: Exception, code: ExitCode) -> None:
    assert storage.translate(error, "do it").exit_code == code


def test_precondition_failure_is_its_own_error() -> None:
    error = storage.translate(api.PreconditionFailed("412"), "x")
    assert isinstance(error, storage.PreconditionFailed)
    assert isinstance(storage.translate(api.Unauthorized("401"), "x"), StorageRefusedError)


def test_a_failed_upload_refuses_every_later_write(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", closed)
    client = storage.make_client(Credentials(closed, None, "p"))
    sink = storage.UploadSink(
        client.bucket("b").blob("o.zip"),
        chunk_size=256 * 1024,
        retry=storage.retry_policy(0.5),
        metadata={"job-id": "j"},
    )
    with pytest.raises(TransientStorageError):
        sink.write(bytes(storage.SINGLE_REQUEST_MAX + 1))
    with pytest.raises(TransientStorageError):
        sink.write(b"central directory")
    with pytest.raises(TransientStorageError):
        sink.finish()
    sink.abort()
