"""stage-in (a URL) -> the job -> stage-out (an upload session) against fake-gcs-server, as
the pod runs them: the output object holds exactly what the job wrote, as a zip, with the
session's content type and job-id metadata, and nothing else is created."""

from __future__ import annotations

import datetime
import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from shared.contract.exits import ExitCode
from shared.stager import upload
from shared.stager.cli import main
from shared.stager.errors import MixedAttemptsError
from tests.stager.conftest import entry, make_zip, open_session

pytestmark = pytest.mark.usefixtures("gcs")
MIB = 1024 * 1024


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """name -> (st_mode, content) as a zip of `root` should hold it (dirs end with '/')."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            tree[f"{path.relative_to(root)}/"] = (path.stat().st_mode, b"")
        for name in filenames:
            path = Path(dirpath, name)
            tree[str(path.relative_to(root))] = (path.stat().st_mode, path.read_bytes())
    return tree


def _unzip(data: bytes) -> dict[str, tuple[int, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {i.filename: (i.external_attr >> 16, archive.read(i)) for i in archive.infolist()}


def _signed_url(gcs, storage_client, bucket: str, name: str) -> str:
    """A V4 signed GET URL, as the functions sign it (fake-gcs-server checks no signature),
    made with a service-account key invented here."""
    from tests.fixtures.keys import key_credentials

    signer = key_credentials("signer@local-test.iam.gserviceaccount.com")
    url: str = (
        storage_client.bucket(bucket)
        .blob(name)
        .generate_signed_url(
            version="v4",
            expiration=datetime.timedelta(hours=1),
            credentials=signer,
            api_access_endpoint=gcs.url,
        )
    )
    assert "X-Goog-Signature=" in url
    return url


def _stage_out(url: str, directory: Path) -> int:
    return main(["stage-out", "--upload-url", url, "--dir", str(directory), "--job-id", "job-1"])


def _objects(storage_client, bucket: str) -> list[str]:
    return sorted(blob.name for blob in storage_client.list_blobs(bucket))


@pytest.mark.parametrize("big", [0, 9 * MIB], ids=["small-one-request", "chunked-ten-requests"])
def test_round_trip(
    gcs,
    storage_client,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    big: int,
) -> None:
    monkeypatch.setenv("STAGER_CHUNK_MIB", "1")
    given = make_zip(
        ("data/numbers.csv", b"1,2,3\n"),
        (entry("tool.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        ("config/", b""),
    )
    storage_client.bucket(bucket).blob("job-1-input.zip").upload_from_string(given)
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    output_dir.mkdir()
    url = _signed_url(gcs, storage_client, bucket, "job-1-input.zip")
    assert main(["stage-in", "--url", url, "--dir", str(input_dir), "--job-id", "job-1"]) == 0
    assert (input_dir / "data" / "numbers.csv").read_bytes() == b"1,2,3\n"
    assert os.access(input_dir / "tool.sh", os.X_OK) and (input_dir / "config").is_dir()

    # The job: reads its input, writes its output.
    (output_dir / "lost+found").mkdir()
    (output_dir / "empty").mkdir()
    (output_dir / "nested" / "deeper").mkdir(parents=True)
    (output_dir / "nested" / "deeper" / "sum.txt").write_bytes(b"6\n")
    (output_dir / "run.sh").write_bytes((input_dir / "tool.sh").read_bytes())
    (output_dir / "run.sh").chmod(0o755)
    (output_dir / "private.key").write_bytes(b"k")
    (output_dir / "private.key").chmod(0o600)
    if big:
        (output_dir / "big.bin").write_bytes(os.urandom(big))

    session = open_session(storage_client, bucket, "job-1-output.zip")
    assert _stage_out(session, output_dir) == 0
    said = capsys.readouterr()
    for secret in (url.split("X-Goog-Signature=")[1][:40], session.split("upload_id=")[1]):
        assert secret not in said.out + said.err

    blob = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    assert blob.content_type == "application/zip"
    assert blob.metadata == {"job-id": "job-1"}
    expected = _tree(output_dir)
    del expected["lost+found/"]
    assert _unzip(blob.download_as_bytes()) == expected
    assert blob.size > big
    assert _objects(storage_client, bucket) == ["job-1-input.zip", "job-1-output.zip"]


def test_empty_output_gives_a_valid_empty_zip(storage_client, bucket: str, tmp_path: Path) -> None:
    assert _stage_out(open_session(storage_client, bucket, "job-1-output.zip"), tmp_path) == 0
    blob = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    assert _unzip(blob.download_as_bytes()) == {}
    assert (blob.size, blob.content_type, blob.metadata) == (
        22,
        "application/zip",
        {"job-id": "job-1"},
    )


def test_a_finished_session_answers_404_on_fake_gcs_server(
    storage_client, bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cloud Storage answers a finished session with its object (so a second run of the
    same zip is success); fake-gcs-server forgets the session: exit 73, object untouched."""
    (tmp_path / "result.txt").write_bytes(b"first")
    session = open_session(storage_client, bucket, "job-1-output.zip")
    assert _stage_out(session, tmp_path) == 0
    first = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    capsys.readouterr()
    assert _stage_out(session, tmp_path) == ExitCode.OUTPUT_CONFLICT
    err = capsys.readouterr().err
    assert "no longer exists (HTTP 404" in err and "upload_id" not in err
    assert storage_client.bucket(bucket).get_blob("job-1-output.zip").generation == first.generation


def test_an_earlier_attempts_bytes_in_the_session_are_never_mixed(
    storage_client, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pod sent a chunk and was stopped; the next pod's zip differs. fake-gcs-server
    appends instead of deduplicating, and its 308 says what it holds: no object."""
    monkeypatch.setenv("STAGER_CHUNK_MIB", "1")
    session = open_session(storage_client, bucket, "job-1-output.zip")
    connection = upload.Connection(session)
    earlier = upload.ResumableUpload(
        session, chunk_size=MIB, retry_seconds=0, connection=connection
    )
    earlier.write(os.urandom(MIB + 1))  # sends the first 1 MiB, then the pod is gone
    connection.close()
    (tmp_path / "result.bin").write_bytes(os.urandom(3 * MIB))
    assert _stage_out(session, tmp_path) == ExitCode.OUTPUT_CONFLICT
    assert _objects(storage_client, bucket) == []


def test_a_lost_answer_on_fake_gcs_server_is_reported_not_taken_for_success(
    storage_client, bucket: str, tmp_path: Path
) -> None:
    """The retry path's status query finalizes the object on fake-gcs-server (Cloud Storage
    answers 308): the stager sees an object that is not its zip and says so."""
    session = open_session(storage_client, bucket, "job-1-output.zip")

    class AnswerLost(upload.Connection):
        calls = 0

        def put(self, body: bytes | memoryview, headers: dict[str, str]) -> upload.Answer:
            answer = super().put(body, headers)
            self.calls += 1
            if self.calls == 2:
                raise upload.Lost("connection reset by peer")
            return answer

    sink = upload.ResumableUpload(
        session,
        chunk_size=MIB,
        retry_seconds=10,
        connection=AnswerLost(session),
        sleep=lambda _: None,
    )
    data = os.urandom(3 * MIB)
    for offset in range(0, len(data), MIB // 4):
        sink.write(data[offset : offset + MIB // 4])
    with pytest.raises(MixedAttemptsError, match="not this attempt's"):
        sink.finish()
    blob = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    assert blob.size == 2 * MIB  # what fake-gcs-server held when asked
