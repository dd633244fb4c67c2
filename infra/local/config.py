"""Settings of the local cloud (`make run`), read once from the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def isolated_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """An environment for a second, private stack (tests, benchmarks): free ports, its
    own state directory, and none of the caller's emulator variables."""
    from infra.local.procs import free_port, free_port_block

    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")
    }
    env.update(
        LOCAL_CLOUD_DIR=str(state_dir),
        LOCAL_FIRESTORE_PORT=str(free_port()),
        LOCAL_PUBSUB_PORT=str(free_port()),
        LOCAL_GCS_PORT=str(free_port()),
        LOCAL_KUBE_API_PORT=str(free_port()),
        LOCAL_FUNCTIONS_PORT=str(free_port_block(8)),  # one per stack.OTHER_FUNCTIONS
        API_PORT=str(free_port()),
    )
    env.update(overrides)
    return env


@dataclass(frozen=True)
class LocalCloudSettings:
    project: str  # GOOGLE_CLOUD_PROJECT
    bucket: str  # GC_BUCKET_NAME
    namespace: str  # KUBERNETES_NAMESPACE
    sync_interval: float  # JOB_SYNCHRONIZATION_INTERVAL, seconds
    api_port: int  # API_PORT: the earlier REST API (batch_api)
    firestore_port: int  # LOCAL_FIRESTORE_PORT
    pubsub_port: int  # LOCAL_PUBSUB_PORT
    gcs_port: int  # LOCAL_GCS_PORT
    kube_api_port: int  # LOCAL_KUBE_API_PORT: the Kubernetes API server
    functions_port: int  # LOCAL_FUNCTIONS_PORT: first port of the other functions
    node_speed: float  # KUBESIM_SPEED: the node agent's simulated durations are divided by it
    stager_image: str  # STAGER_IMAGE: run for real as a host process by the node agent
    state_dir: Path  # LOCAL_CLOUD_DIR: env file, kubeconfig, logs, volumes
    callback_secret: str  # CALLBACK_SECRET: random per run unless set

    @classmethod
    def from_env(cls) -> LocalCloudSettings:
        return cls(
            project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local-project"),
            bucket=os.environ.get("GC_BUCKET_NAME", "local-jobs"),
            namespace=os.environ.get("KUBERNETES_NAMESPACE", "default"),
            sync_interval=_float("JOB_SYNCHRONIZATION_INTERVAL", 30.0),
            api_port=_int("API_PORT", 4898),
            firestore_port=_int("LOCAL_FIRESTORE_PORT", 8681),
            pubsub_port=_int("LOCAL_PUBSUB_PORT", 8682),
            gcs_port=_int("LOCAL_GCS_PORT", 8683),
            kube_api_port=_int("LOCAL_KUBE_API_PORT", 8684),
            functions_port=_int("LOCAL_FUNCTIONS_PORT", 8690),
            node_speed=_float("KUBESIM_SPEED", 1.0),
            stager_image=os.environ.get("STAGER_IMAGE", "kubernetes-task-runner/stager:local"),
            state_dir=Path(os.environ.get("LOCAL_CLOUD_DIR", REPO_ROOT / ".local-cloud")),
            callback_secret=os.environ.get("CALLBACK_SECRET") or secrets.token_hex(32),
        )

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"
