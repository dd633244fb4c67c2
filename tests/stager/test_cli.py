"""Arguments and exit codes of `python -m shared.stager`, run as the containers run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contract.exits import PERMANENT_CODES, ExitCode
from shared.stager import cli
from shared.stager.config import build_config
from tests.stager.resumable import ResumableServer

REPO_ROOT = Path(__file__).resolve().parents[2]


def stager(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in ("INPUT_URL", "OUTPUT_UPLOAD_URL", "STAGER_DIR", "STAGER_JOB_ID")
    }
    return subprocess.run(
        [sys.executable, "-m", "shared.stager", *args],
        cwd=REPO_ROOT,
        env={**clean, "STAGER_RETRY_SECONDS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["stage-in", "--dir", "/input"], {}, "stage-in: --url is required (or set INPUT_URL)"),
        (
            ["stage-out", "--dir", "/output"],
            {},
            "stage-out: --upload-url is required (or set OUTPUT_UPLOAD_URL)",
        ),
        (["stage-out"], {"OUTPUT_UPLOAD_URL": "https://x/u"}, "--dir is required"),
        (["stage-out", "--dir", "/o", "--upload-url", "ftp://x/u"], {}, "must be an http(s) URL"),
        (["stage-out", "--dir", "/o", "--bucket", "b"], {}, "unrecognized arguments: --bucket"),
        (["stage-in", "--dir", "/i", "--object", "o"], {}, "unrecognized arguments: --object"),
        (["unpack"], {}, "invalid choice: 'unpack'"),
    ],
)
def test_usage_errors_exit_64(args: list[str], env: dict[str, str], said: str) -> None:
    result = stager(*args, env=env)
    assert result.returncode == ExitCode.USAGE
    assert result.stderr.startswith("stager: usage error: ")
    assert said in result.stderr


def test_a_missing_output_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = stager(
        "stage-out", "--dir", str(tmp_path / "absent"), "--upload-url", "http://127.0.0.1:9/u"
    )
    assert result.returncode == ExitCode.USAGE
    assert "does not exist" in result.stderr


def test_flags_win_over_the_environment() -> None:
    env = {
        "OUTPUT_UPLOAD_URL": "https://storage.example/env",
        "STAGER_DIR": "/output",
        "STAGER_JOB_ID": "job-7",
        "STAGER_CHUNK_MIB": "2",
        "STAGER_RETRY_SECONDS": "30",
        "STAGER_COMPRESS_LEVEL": "1",
    }
    config = build_config("stage-out", url="https://storage.example/flag", env=env)
    assert (config.url, str(config.directory), config.job_id) == (
        "https://storage.example/flag",
        "/output",
        "job-7",
    )
    assert (config.chunk_size, config.retry_deadline, config.compress_level) == (2 << 20, 30, 1)
    assert build_config("stage-out", env=env).url == "https://storage.example/env"


def test_help_is_fast_and_names_the_flags() -> None:
    result = stager("stage-out", "--help")
    assert result.returncode == 0
    assert "--upload-url" in result.stdout and "OUTPUT_UPLOAD_URL" in result.stdout
    assert "--url" in stager("stage-in", "--help").stdout


def test_the_image_needs_nothing_but_the_standard_library(
    resumable: ResumableServer, tmp_path: Path
) -> None:
    """What the Dockerfile copies, run with `python -S` (no site-packages at all)."""
    image = REPO_ROOT / "infra" / "images" / "stager"
    assert [
        line
        for line in (image / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ] == []
    assert "pip install" not in (image / "Dockerfile").read_text()
    app = tmp_path / "app"
    copy_like_the_dockerfile(app)
    output = tmp_path / "output"
    output.mkdir()
    (output / "out.txt").write_text("result")
    result = subprocess.run(
        [sys.executable, "-S", "-m", "shared.stager", "stage-out", "--dir", str(output)],
        cwd=app,
        env={"OUTPUT_UPLOAD_URL": resumable.open(), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "job-output.zip" in resumable.objects


def test_the_failure_line_is_also_the_termination_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    termination_log = tmp_path / "termination-log"
    termination_log.write_text("")  # the kubelet creates it; the stager only writes it
    monkeypatch.setattr(cli, "TERMINATION_LOG", termination_log)
    code = cli.main(["stage-out", "--dir", str(tmp_path / "absent"), "--upload-url", "http://h/u"])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.endswith("does not exist\n")
    assert termination_log.read_text() == err


def test_no_termination_message_file_outside_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "TERMINATION_LOG", tmp_path / "termination-log")
    assert cli.main(["stage-in", "--dir", str(tmp_path)]) == ExitCode.USAGE
    assert not (tmp_path / "termination-log").exists()


@pytest.mark.parametrize("code", list(ExitCode))
def test_only_transient_and_unexpected_failures_are_retryable(code: ExitCode) -> None:
    assert (int(code) in PERMANENT_CODES) == (code not in (0, 1, 75))


def test_exit_code_values_are_the_ones_the_pod_failure_policy_uses() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "USAGE": 64,
        "INPUT_REJECTED": 65,
        "INPUT_MISSING": 66,
        "OUTPUT_CONFLICT": 73,
        "TRANSIENT": 75,
    }


def copy_like_the_dockerfile(app: Path) -> None:
    """The files the Dockerfile's COPY lines put under WORKDIR /app, into `app`."""
    dockerfile = (REPO_ROOT / "infra" / "images" / "stager" / "Dockerfile").read_text()
    copies = [line.split()[1:] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert copies
    for *sources, target in copies:
        destination = app / target.removeprefix("/app/")
        for source in sources:
            path = REPO_ROOT / source
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(path, destination, ignore=ignore, dirs_exist_ok=True)
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, destination / path.name)
