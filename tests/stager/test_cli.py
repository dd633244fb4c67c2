"""Exit codes of `python -m shared.stager`, run as the containers run it: a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.procs import free_port
from shared.stager.cli import _parser, container_command
from shared.stager.errors import PERMANENT_CODES, ExitCode
from tests.stager.conftest import make_zip

REPO_ROOT = Path(__file__).resolve().parents[2]


def stager(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.stager", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "STAGER_RETRY_SECONDS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_usage_errors_exit_64(tmp_path: Path) -> None:
    result = stager("stage-in", "--bucket", "b", "--dir", str(tmp_path), env={"STAGER_OBJECT": ""})
    assert result.returncode == ExitCode.USAGE
    assert "--object is required" in result.stderr
    assert stager("unpack").returncode == ExitCode.USAGE
    assert stager("stage-out", "--bucket", "b", "--object", "o", "--dir", "/x").returncode == 64


def test_help_is_fast_and_needs_no_storage_client() -> None:
    result = stager("--help")
    assert result.returncode == 0 and "stage-in" in result.stdout


def test_environment_fallbacks_and_rejected_input_exit_65(
    gcs, storage_client, bucket: str, tmp_path: Path
) -> None:
    storage_client.bucket(bucket).blob("bad-input.zip").upload_from_string(
        make_zip(("ok.txt", b"fine"), ("../escape.txt", b"evil"))
    )
    result = stager(
        "stage-in",
        env={
            "STAGER_BUCKET": "",
            "GC_BUCKET_NAME": bucket,
            "STAGER_OBJECT": "bad-input.zip",
            "STAGER_DIR": str(tmp_path / "input"),
            "STAGER_JOB_ID": "job-9",
        },
    )
    assert result.returncode == ExitCode.INPUT_REJECTED
    assert result.stderr.strip() == (
        "stager: input rejected: entry '../escape.txt' has a '..' component"
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["severity"] == "ERROR" and lines[-1]["job_id"] == "job-9"
    assert os.listdir(tmp_path / "input") == []
    assert not (tmp_path / "escape.txt").exists()


def test_missing_input_exits_66_and_conflict_73(
    gcs, storage_client, bucket: str, tmp_path: Path
) -> None:
    common = ["--bucket", bucket, "--dir", str(tmp_path), "--job-id", "job-1"]
    assert stager("stage-in", "--object", "absent.zip", *common).returncode == 66
    other = storage_client.bucket(bucket).blob("taken.zip")
    other.metadata = {"job-id": "job-2"}
    other.upload_from_string(b"job 2's output")
    result = stager("stage-out", "--object", "taken.zip", *common)
    assert result.returncode == ExitCode.OUTPUT_CONFLICT
    assert "already exists for job job-2" in result.stderr


def test_unreachable_storage_exits_75(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    args = ["--bucket", "b", "--object", "o.zip", "--dir", str(tmp_path), "--job-id", "j"]
    env = {"STORAGE_EMULATOR_HOST": closed, "GOOGLE_CLOUD_PROJECT": "p"}
    for command in ("stage-in", "stage-out"):
        result = stager(command, *args, env=env)
        assert result.returncode == ExitCode.TRANSIENT, result.stderr
        assert "storage unavailable" in result.stderr


@pytest.mark.parametrize("code", list(ExitCode))
def test_only_transient_and_unexpected_failures_are_retryable(code: ExitCode) -> None:
    assert (int(code) in PERMANENT_CODES) == (code not in (0, 1, 75))


def test_container_command_matches_the_cli() -> None:
    argv = container_command(
        "stage-in", bucket="b", object_name="j-input.zip", directory="/input", job_id="j"
    )
    assert argv[:4] == ["python", "-m", "shared.stager", "stage-in"]
    args = _parser().parse_args(argv[3:])
    assert (args.bucket, args.object_name, args.directory, args.job_id) == (
        "b",
        "j-input.zip",
        "/input",
        "j",
    )
