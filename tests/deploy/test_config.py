"""Deploy settings: every missing or malformed one is named, one line each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.deploy.config import (
    OBSOLETE,
    PASSED_TO_FUNCTIONS,
    DeployConfig,
    DeploySettingsError,
    read_env_file,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "deploy.example.env"


def test_the_example_file_is_complete():
    config = DeployConfig.load({}, EXAMPLE)
    assert config.project == "my-project"
    assert config.namespace == "task-runner"
    assert config.invokers == ("user:alice@example.com", "group:batch-users@example.com")
    assert not config.dry_run


def test_the_environment_wins_over_the_file():
    config = DeployConfig.load({"REGION": "us-east1", "DRY_RUN": "1"}, EXAMPLE)
    assert config.region == "us-east1"
    assert config.bucket_location == "europe-west1"  # set in the file
    assert config.dry_run


def test_each_missing_setting_gets_its_own_line():
    with pytest.raises(DeploySettingsError) as raised:
        DeployConfig.load({"REGION": "europe-west1"})
    missing = [line.split()[0] for line in raised.value.problems]
    assert missing == [
        "GOOGLE_CLOUD_PROJECT",
        "GC_BUCKET_NAME",
        "GKE_CLUSTER",
        "GKE_LOCATION",
        "KUBERNETES_NAMESPACE",
        "STAGER_IMAGE",
        "OPERATORS",
    ]


def test_malformed_settings_are_named(tmp_path):
    env = read_env_file(EXAMPLE) | {
        "API_SERVICE_ACCOUNT": "Bad_Name",
        "KUBERNETES_NAMESPACE": "Jobs!",
        "JOB_SYNCHRONIZATION_INTERVAL": "soon",
        "API_INVOKERS": "alice@example.com",
    }
    with pytest.raises(DeploySettingsError) as raised:
        DeployConfig.load(env)
    named = sorted(line.split("=")[0].split(":")[0] for line in raised.value.problems)
    assert named == [
        "API_INVOKERS",
        "API_SERVICE_ACCOUNT",
        "JOB_SYNCHRONIZATION_INTERVAL",
        "KUBERNETES_NAMESPACE",
    ]


def named(problems: list[str]) -> list[str]:
    """The setting each problem line starts with."""
    return sorted(re.sub(r"[^A-Z_].*", "", line) for line in problems)


def test_settings_of_the_stager_identity_are_refused():
    env = read_env_file(EXAMPLE) | {
        "STAGER_GOOGLE_SERVICE_ACCOUNT": "task-runner-stager",
        "STAGER_SERVICE_ACCOUNT": "task-runner-stager",
    }
    with pytest.raises(DeploySettingsError) as raised:
        DeployConfig.load(env)
    assert named(raised.value.problems) == sorted(OBSOLETE)
    assert all("no longer used" in line for line in raised.value.problems)


def test_the_functions_settings_are_checked_as_the_functions_check_them():
    env = read_env_file(EXAMPLE) | {
        "JOB_VOLUME_SIZE": "ten gigabytes",
        "JOB_TIMEOUT_SECONDS": str(8 * 24 * 3600),  # past what a signed URL lives
        "MAX_LOG_BYTES": "lots",
        "JOB_STORAGE_CLASS": "premium-rwo",
    }
    with pytest.raises(DeploySettingsError) as raised:
        DeployConfig.load(env)
    assert named(raised.value.problems) == [
        "JOB_TIMEOUT_SECONDS",
        "JOB_VOLUME_SIZE",
        "MAX_LOG_BYTES",
    ]
    good = DeployConfig.load(read_env_file(EXAMPLE) | {"JOB_VOLUME_SIZE": "20Gi"})
    assert good.runtime == {"JOB_VOLUME_SIZE": "20Gi"}


def test_every_setting_passed_on_is_one_the_functions_read():
    source = (ROOT / "shared" / "settings.py").read_text()
    assert [name for name in PASSED_TO_FUNCTIONS if f'"{name}"' not in source] == []
    for name in (*OBSOLETE, "GC_CREDENTIALS_FILE_PATH"):
        assert name not in PASSED_TO_FUNCTIONS


def test_env_file_lines(tmp_path):
    file = tmp_path / "deploy.env"
    file.write_text("# comment\n\nexport A=1\nB = 'two words'\nC=\"x=y\"\n")
    assert read_env_file(file) == {"A": "1", "B": "two words", "C": "x=y"}
    file.write_text("just words\n")
    with pytest.raises(DeploySettingsError, match="deploy.env:1"):
        read_env_file(file)


def test_make_deploy_without_settings_refuses_and_changes_nothing(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    build = ["--build", str(tmp_path / "build"), "--env-file", str(empty)]
    done = subprocess.run(
        [sys.executable, "-m", "infra.deploy", *build],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "REGION": "europe-west1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 7
    assert all(line.startswith("deploy: ") and "is not set" in line for line in lines)
    assert not (tmp_path / "build").exists()
