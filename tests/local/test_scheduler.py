"""The local Cloud Scheduler calls the sync on a fixed schedule, overlapping slow calls."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from infra.local.procs import spawn
from tests.local.httpcapture import capture_server

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_calls_target_every_interval_with_scheduler_headers(tmp_path):
    with capture_server() as capture:
        proc = spawn(
            "scheduler",
            [sys.executable, "-m", "infra.local.scheduler", f"--target={capture.url}"],
            log_dir=tmp_path,
            cwd=REPO_ROOT,
            env={"JOB_SYNCHRONIZATION_INTERVAL": "0.2", "PATH": "/usr/bin:/bin"},
        )
        try:
            capture.wait_for(lambda requests: len(requests) >= 3)
        finally:
            proc.stop()
    first, second = capture.requests[0], capture.requests[1]
    assert first.method == "POST"
    assert first.headers["x-cloudscheduler"] == "true"
    assert first.headers["user-agent"] == "Google-Cloud-Scheduler"
    assert first.headers["x-cloudscheduler-scheduletime"].endswith("Z")
    assert 0.1 < second.at - first.at < 10  # every 0.2 s, on a machine as busy as it may be


def test_slow_calls_overlap_like_cloud_scheduler(tmp_path):
    with capture_server() as capture:
        capture.delay = 0.6
        proc = spawn(
            "scheduler",
            [
                sys.executable,
                "-m",
                "infra.local.scheduler",
                f"--target={capture.url}",
                "--interval=0.15",
            ],
            log_dir=tmp_path,
            cwd=REPO_ROOT,
        )
        try:
            capture.wait_for(lambda requests: len(requests) >= 4)
        finally:
            proc.stop()
    assert capture.max_in_flight >= 2


def test_a_stop_does_not_wait_for_a_call_in_flight(tmp_path):
    with capture_server() as capture:
        capture.delay = 30
        proc = spawn(
            "scheduler",
            [sys.executable, "-m", "infra.local.scheduler", f"--target={capture.url}"],
            log_dir=tmp_path,
            cwd=REPO_ROOT,
            env={"JOB_SYNCHRONIZATION_INTERVAL": "0.1", "PATH": "/usr/bin:/bin"},
        )
        try:
            capture.wait_for(lambda requests: len(requests) >= 1)
            started = time.monotonic()
            clean = proc.stop(timeout=15)
            elapsed = time.monotonic() - started
        finally:
            proc.stop()
    assert elapsed < 15, elapsed  # not the half minute the call is held
    assert clean, proc.log_tail()


def test_rejects_a_non_positive_interval(tmp_path):
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "infra.local.scheduler", "--target=http://x", "--interval=0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--interval must be a positive number" in result.stderr
