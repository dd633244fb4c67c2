"""Stage-in through a signed URL: what each answer of the server becomes, against a real
HTTP server on loopback, and the whole command against fake-gcs-server's download URL."""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from shared.contract.exits import ExitCode, InputRejected
from shared.stager import fetch
from shared.stager.errors import InputMissing, TransientStorageError
from tests.stager.conftest import make_zip
from tests.stager.test_cli import stager

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


class Server:
    """Answers each GET with the next of `answers` (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server.requests += 1
                answer = server.answers[min(server.requests, len(server.answers)) - 1]
                answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = (
            f"http://127.0.0.1:{self.httpd.server_address[1]}/b/in.zip?X-Goog-Signature=s3cr3t"
        )


def send(status: int, body: bytes = b"", *, length: bool = True) -> Answer:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        if length:
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return answer


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    thread = threading.Thread(target=served.httpd.serve_forever, daemon=True)
    thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def test_downloads_the_whole_object(server: Server) -> None:
    server.answers = [send(200, b"zip bytes")]
    sink = io.BytesIO()
    assert fetch.download(server.url, sink, max_bytes=100, deadline=0) == 9
    assert sink.getvalue() == b"zip bytes"


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_missing_object_or_a_bad_signature_is_not_retried(server: Server, status: int) -> None:
    server.answers = [send(status, b"<Error/>")]
    with pytest.raises(InputMissing, match=f"HTTP {status}") as raised:
        fetch.download(server.url, io.BytesIO(), max_bytes=100, deadline=10)
    assert server.requests == 1
    assert "s3cr3t" not in str(raised.value)  # the signature never reaches a log


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_answers_are_retried_from_the_start(server: Server, status: int) -> None:
    server.answers = [send(status), send(200, b"complete")]
    sink = io.BytesIO(b"stale bytes from an earlier attempt")
    assert fetch.download(server.url, sink, max_bytes=100, deadline=5) == 8
    assert sink.getvalue() == b"complete"
    assert server.requests == 2


def test_transient_answers_give_up_after_the_deadline(server: Server) -> None:
    server.answers = [send(503)]
    with pytest.raises(TransientStorageError, match="HTTP 503"):
        fetch.download(server.url, io.BytesIO(), max_bytes=100, deadline=0)


@pytest.mark.parametrize("declared", [True, False])
def test_more_than_the_limit_is_refused(server: Server, declared: bool) -> None:
    server.answers = [send(200, b"x" * 5000, length=declared)]
    sink = io.BytesIO()
    with pytest.raises(InputRejected, match="more than 4096"):
        fetch.download(server.url, sink, max_bytes=4096, deadline=0)
    assert len(sink.getvalue()) <= 4096


def test_stage_in_from_a_url_exit_codes(server: Server, tmp_path: Path) -> None:
    args = ["stage-in", "--url", server.url, "--dir", str(tmp_path), "--job-id", "j"]
    server.answers = [send(200, make_zip(("a/b.txt", b"hello")))]
    ok = stager(*args, env={"STORAGE_EMULATOR_HOST": "", "MAX_INPUT_BYTES": "4096"})
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"hello"
    assert "s3cr3t" not in ok.stdout + ok.stderr
    server.answers = [send(403)]
    assert stager(*args).returncode == ExitCode.INPUT_MISSING
    server.answers = [send(200, b"x" * 5000)]
    too_big = stager(*args, env={"MAX_INPUT_BYTES": "4096"})
    assert too_big.returncode == ExitCode.INPUT_REJECTED
    server.httpd.shutdown()
    server.httpd.server_close()
    closed = stager(*args)
    assert closed.returncode == ExitCode.TRANSIENT, closed.stderr


def test_stage_in_refuses_a_url_that_is_not_http(tmp_path: Path) -> None:
    result = stager("stage-in", "--url", "file:///etc/passwd", "--dir", str(tmp_path))
    assert result.returncode == ExitCode.USAGE
    assert "--url must be an http(s) URL" in result.stderr


def test_stage_in_through_the_emulator_download_url(
    gcs, storage_client, bucket: str, tmp_path: Path
) -> None:
    """What the API hands the init container locally: no identity, no bucket name."""
    storage_client.bucket(bucket).blob("job-input.zip").upload_from_string(
        make_zip(("data/x.bin", b"\x00\x01"))
    )
    url = f"{gcs.url}/download/storage/v1/b/{bucket}/o/{quote('job-input.zip')}?alt=media"
    result = stager("stage-in", "--dir", str(tmp_path), env={"INPUT_URL": url})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "x.bin").read_bytes() == b"\x00\x01"
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(line["message"] == "input downloaded" for line in lines)


def test_a_users_url_to_a_private_address_is_never_requested(
    server: Server, tmp_path: Path
) -> None:
    server.answers = [send(200, make_zip(("a.txt", b"secret")))]
    with pytest.raises(InputMissing, match="refused to download"):
        fetch.download(server.url, io.BytesIO(), max_bytes=100, deadline=0, public_only=True)
    https = server.url.replace("http://", "https://")
    with pytest.raises(InputMissing, match="127.0.0.1, which is not a public address"):
        fetch.download(https, io.BytesIO(), max_bytes=100, deadline=0, public_only=True)
    args = ["stage-in", "--url", server.url, "--dir", str(tmp_path)]
    refused = stager(*args, env={"INPUT_URL_PUBLIC_ONLY": "1"})
    assert refused.returncode == ExitCode.INPUT_MISSING, refused.stderr
    assert "s3cr3t" not in refused.stdout + refused.stderr
    assert server.requests == 0
    assert stager(*args).returncode == 0  # a signed URL of the product's own: not checked


@pytest.mark.parametrize(
    ("flags", "env"),
    [(["--skip", "job.json"], {}), ([], {"STAGER_SKIP": "job.json, ./other/skip.me"})],
)
def test_stage_in_leaves_out_the_files_it_is_told_to(
    server: Server, tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    """A submission's zip carries its create body as job.json: it is not the job's input."""
    server.answers = [
        send(200, make_zip(("job.json", b"{}"), ("sub/job.json", b"kept"), ("a.txt", b"a")))
    ]
    args = ["stage-in", "--url", server.url, "--dir", str(tmp_path), *flags]
    result = stager(*args, env={"STORAGE_EMULATOR_HOST": "", **env})
    assert result.returncode == 0, result.stderr
    found = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert found == ["a.txt", "sub", "sub/job.json"]


def test_stage_in_skips_only_relative_paths(tmp_path: Path) -> None:
    result = stager(
        "stage-in",
        "--url",
        "http://127.0.0.1:9/x.zip",
        "--dir",
        str(tmp_path),
        "--skip",
        "../job.json",
    )
    assert result.returncode == ExitCode.USAGE
    assert "takes relative paths" in result.stderr
