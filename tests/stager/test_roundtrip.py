"""stage-in and stage-out against fake-gcs-server, in process: the round trip gives back
exactly what the job wrote, and a retried cleanup never replaces an object."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

import pytest

from shared.stager import storage
from shared.stager.cli import main
from shared.stager.config import Credentials
from shared.stager.errors import ExitCode
from tests.stager.conftest import entry, make_zip

pytestmark = pytest.mark.usefixtures("gcs")


def _run(command: str, bucket: str, obj: str, directory: Path, job_id: str = "job-1") -> int:
    return main(
        [command, "--bucket", bucket, "--object", obj, "--dir", str(directory)]
        + ["--job-id", job_id]
    )


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


def test_round_trip(
    storage_client, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGER_CHUNK_MIB", "1")  # several resumable chunks for 9 MiB
    given = make_zip(
        ("data/numbers.csv", b"1,2,3\n"),
        (entry("tool.sh", stat.S_IFREG | 0o755), b"#!/bin/sh\n"),
        ("config/", b""),
    )
    storage_client.bucket(bucket).blob("job-1-input.zip").upload_from_string(given)
    input_dir, output_dir = tmp_path / "input", tmp_path / "output"
    output_dir.mkdir()
    assert _run("stage-in", bucket, "job-1-input.zip", input_dir) == 0
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
    (output_dir / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    assert _run("stage-out", bucket, "job-1-output.zip", output_dir) == 0

    blob = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    assert blob.content_type == "application/zip"
    assert blob.metadata == {"job-id": "job-1"}
    expected = _tree(output_dir)
    del expected["lost+found/"]
    assert _unzip(blob.download_as_bytes()) == expected


def test_empty_output_gives_a_valid_empty_zip(storage_client, bucket: str, tmp_path: Path) -> None:
    assert _run("stage-out", bucket, "job-1-output.zip", tmp_path) == 0
    data = storage_client.bucket(bucket).blob("job-1-output.zip").download_as_bytes()
    assert _unzip(data) == {}


def test_retried_stage_out_is_a_no_op(storage_client, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "result.txt").write_bytes(b"first")
    assert _run("stage-out", bucket, "job-1-output.zip", tmp_path) == 0
    first = storage_client.bucket(bucket).get_blob("job-1-output.zip").generation
    (tmp_path / "result.txt").write_bytes(b"second attempt sees other bytes")
    assert _run("stage-out", bucket, "job-1-output.zip", tmp_path) == 0
    blob = storage_client.bucket(bucket).get_blob("job-1-output.zip")
    assert blob.generation == first
    assert _unzip(blob.download_as_bytes())["result.txt"][1] == b"first"


def test_another_jobs_object_is_never_overwritten(
    storage_client, bucket: str, tmp_path: Path
) -> None:
    theirs = storage_client.bucket(bucket).blob("job-1-output.zip")
    theirs.metadata = {"job-id": "someone-else"}
    theirs.upload_from_string(b"their bytes")
    (tmp_path / "result.txt").write_bytes(b"mine")
    assert _run("stage-out", bucket, "job-1-output.zip", tmp_path) == ExitCode.OUTPUT_CONFLICT
    assert theirs.download_as_bytes() == b"their bytes"


def test_the_upload_itself_refuses_an_existing_object(storage_client, bucket: str) -> None:
    """The precondition, not only the check before zipping, guards the object."""
    storage_client.bucket(bucket).blob("out.zip").upload_from_string(b"already here")
    sink = storage.UploadSink(
        storage.make_client(Credentials(os.environ["STORAGE_EMULATOR_HOST"], None, "p"))
        .bucket(bucket)
        .blob("out.zip"),
        chunk_size=256 * 1024,
        retry=storage.retry_policy(1.0),
        metadata={"job-id": "job-1"},
    )
    sink.write(b"new bytes")
    with pytest.raises(storage.PreconditionFailed):
        sink.finish()
    assert storage_client.bucket(bucket).blob("out.zip").download_as_bytes() == b"already here"


def test_missing_input_object(bucket: str, tmp_path: Path) -> None:
    assert _run("stage-in", bucket, "nope-input.zip", tmp_path / "in") == ExitCode.INPUT_MISSING
    assert os.listdir(tmp_path / "in") == []
