"""A submission's job.json is read in ranged reads: a large zip is never downloaded whole.
Counted by a loopback proxy in front of fake-gcs-server."""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from shared.cloud.bucket import Bucket, ObjectGoneError
from shared.contract.zips import Limits
from shared.jobs.start.submission_zip import read_body

MIB = 1024 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.lock = threading.Lock()


@pytest.fixture
def counted(gcs) -> Iterator[tuple[str, Counter]]:
    """A proxy to fake-gcs-server that counts the bytes of every answer it forwards."""
    upstream = urlsplit(gcs.url)
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            connection = http.client.HTTPConnection(upstream.netloc, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            with counter.lock:
                counter.bytes += len(data)
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            connection.close()

        do_GET = do_POST = do_PUT = _forward  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()


def _client(monkeypatch, url: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    return storage.Client(project="local-test", credentials=AnonymousCredentials())


def test_job_json_of_a_large_zip_costs_a_few_small_reads(
    monkeypatch, storage_client, bucket, counted
):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("data.bin", os.urandom(24 * MIB))
        archive.writestr("job.json", json.dumps({"job_parameters": {"docker_image": "alpine"}}))
    storage_client.bucket(bucket).blob("submissions/big.zip").upload_from_string(buffer.getvalue())
    url, counter = counted
    adapter = Bucket(_client(monkeypatch, url), bucket)
    info = adapter.object_info("submissions/big.zip")
    assert info is not None and info.size > 24 * MIB
    body, has_input = adapter.read_ranges(
        "submissions/big.zip",
        info,
        lambda file: read_body(file, Limits(max_uncompressed_bytes=64 * MIB)),
    )
    assert body == {"job_parameters": {"docker_image": "alpine"}} and has_input
    assert 0 < counter.bytes < 2 * MIB, counter.bytes


def test_a_replaced_generation_is_gone(storage_client, bucket):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    blob = storage_client.bucket(bucket).blob("submissions/x.zip")
    blob.upload_from_string(b"first")
    adapter = Bucket(
        storage.Client(project="local-test", credentials=AnonymousCredentials()), bucket
    )
    info = adapter.object_info("submissions/x.zip")
    assert info is not None
    blob.upload_from_string(b"second")
    with pytest.raises(ObjectGoneError):
        adapter.read_ranges("submissions/x.zip", info, lambda file: file.read())
