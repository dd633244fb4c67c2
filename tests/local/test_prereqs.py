"""A missing prerequisite is named in one clear line, before anything starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_prereqs(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.local.prereqs", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )


def test_all_present_passes_silently():
    result = run_prereqs(os.environ["PATH"])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_tests_browser_is_there_for_make_test():
    """`make test` asks for chromium too (installed when missing, as root on Debian)."""
    result = run_prereqs(os.environ["PATH"], "--tests")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert Path("/usr/bin/chromium").exists()


def test_an_unknown_argument_is_a_usage_error():
    result = run_prereqs(os.environ["PATH"], "--everything")
    assert result.returncode == 2
    assert result.stderr.strip() == "usage: python -m infra.local.prereqs [--tests]"


def test_missing_gcloud(tmp_path):
    result = run_prereqs(str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "missing prerequisite: gcloud (the Google Cloud CLI) is not on PATH"
    )


def test_missing_java(tmp_path):
    gcloud = shutil.which("gcloud")
    assert gcloud
    (tmp_path / "gcloud").symlink_to(gcloud)
    result = run_prereqs(str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("missing prerequisite: java")


def test_missing_emulator_component(tmp_path):
    sdk = tmp_path / "sdk"
    (sdk / "bin").mkdir(parents=True)
    (sdk / "platform" / "pubsub-emulator").mkdir(parents=True)
    (sdk / "bin" / "gcloud").write_text("#!/bin/sh\n")
    (sdk / "bin" / "gcloud").chmod(0o755)
    java = shutil.which("java")
    assert java
    (tmp_path / "java").symlink_to(java)
    result = run_prereqs(f"{sdk / 'bin'}:{tmp_path}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "missing prerequisite: the gcloud component cloud-firestore-emulator" in lines[0]


def test_missing_go(tmp_path):
    """Everything else there (gcloud, java, the emulators, bubblewrap), but not Go."""
    for tool in ("gcloud", "java"):
        found = shutil.which(tool)
        assert found
        (tmp_path / tool).symlink_to(found)
    result = subprocess.run(
        [sys.executable, "-m", "infra.local.prereqs"],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "KUBE_BINARIES_DIR"},
            "PATH": f"{tmp_path}:/usr/sbin:/sbin",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("missing prerequisite: go (Go 1.26"), lines
