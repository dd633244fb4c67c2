"""Settings of the local cloud (`make run`), read once from the environment."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.contract.env import EnvReader

REPO_ROOT = Path(__file__).resolve().parents[2]


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
        LOCAL_ISSUER_PORT=str(free_port()),
        LOCAL_FUNCTIONS_PORT=str(free_port_block(9)),  # one per stack.OTHER_FUNCTIONS
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
    issuer_port: int  # LOCAL_ISSUER_PORT: the token issuer's certificates
    access_control: bool  # ACCESS_CONTROL (on): callers need tokens, and act on their accounts
    operators: tuple[str, ...]  # OPERATORS ("operator@local"): may do anything
    node_speed: float  # KUBESIM_SPEED: the node agent's simulated durations are divided by it
    stager_image: str  # STAGER_IMAGE: run for real as a host process by the node agent
    state_dir: Path  # LOCAL_CLOUD_DIR: env file, kubeconfig, logs, volumes
    callback_secret: str  # CALLBACK_SECRET: random per run unless set
    simulated_images: tuple[str, ...]  # LOCAL_SIMULATED_IMAGES: comma-separated images (any
    #   tag) the node agent simulates; any other image it neither runs nor sees KUBESIM_*
    #   variables for fails to pull, as an unknown image does on GKE

    @classmethod
    def from_env(cls) -> LocalCloudSettings:
        read = EnvReader(os.environ, SystemExit)
        return cls(
            project=read.text("GOOGLE_CLOUD_PROJECT", "local-project"),
            bucket=read.text("GC_BUCKET_NAME", "local-jobs"),
            namespace=read.text("KUBERNETES_NAMESPACE", "default"),
            sync_interval=read.number("JOB_SYNCHRONIZATION_INTERVAL", 30.0, minimum=0.1),
            api_port=read.integer("API_PORT", 4898),
            firestore_port=read.integer("LOCAL_FIRESTORE_PORT", 8681),
            pubsub_port=read.integer("LOCAL_PUBSUB_PORT", 8682),
            gcs_port=read.integer("LOCAL_GCS_PORT", 8683),
            kube_api_port=read.integer("LOCAL_KUBE_API_PORT", 8684),
            functions_port=read.integer("LOCAL_FUNCTIONS_PORT", 8690),
            issuer_port=read.integer("LOCAL_ISSUER_PORT", 8685),
            access_control=read.flag("ACCESS_CONTROL", default=True),
            operators=read.words("OPERATORS", "operator@local"),
            node_speed=read.number("KUBESIM_SPEED", 1.0, minimum=0.01),
            stager_image=read.text("STAGER_IMAGE", "kubernetes-task-runner/stager:local"),
            state_dir=Path(read.text("LOCAL_CLOUD_DIR", str(REPO_ROOT / ".local-cloud"))),
            callback_secret=read.optional("CALLBACK_SECRET") or secrets.token_hex(32),
            simulated_images=read.words("LOCAL_SIMULATED_IMAGES"),
        )

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def issuer_key(self) -> Path:
        return self.state_dir / "issuer" / "key.json"

    @property
    def issuer_url(self) -> str:
        return f"http://127.0.0.1:{self.issuer_port}"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"
