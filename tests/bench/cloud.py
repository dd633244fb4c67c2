"""The local cloud for the request and sync benchmarks: the Firestore and Pub/Sub emulators,
fake-gcs-server and kubesim on free loopback ports, with the environment the product reads
pointing at them. No scheduler and no Eventarc relay: nothing runs that is not measured.

    with local_cloud() as cloud:
        ...  # os.environ now holds FIRESTORE_EMULATOR_HOST, KUBECONFIG, GC_BUCKET_NAME, ...
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local import emulators
from infra.local.procs import ServerProcess, free_port, http_ok, spawn, wait_until_ready
from infra.local.pubsub import ensure_topic_and_subscription

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "bench"
BUCKET = "bench-jobs"
NAMESPACE = "bench"
TOPIC = "gcs-notifications"
EVENTS_TOPIC = "job-events"  # JOB_EVENTS_TOPIC: the benchmarks run with notifications on


@dataclass(frozen=True)
class Cloud:
    kubesim_url: str
    kubeconfig: Path

    def kubesim_stats(self) -> dict[str, Any]:
        """kubesim's request counters: {"total": N, "by_verb": ..., "by_resource": ...}."""
        with urllib.request.urlopen(f"{self.kubesim_url}/_kubesim/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.loads(answer.read())
        return stats

    def reset_kubesim_stats(self) -> None:
        request = urllib.request.Request(f"{self.kubesim_url}/_kubesim/stats/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


def _kubesim(base: Path) -> tuple[ServerProcess, str, Path]:
    port = free_port()
    kubeconfig = base / "kubeconfig"
    argv = [sys.executable, "-m", "infra.local.kubesim", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--kubeconfig", str(kubeconfig)]
    argv += ["--data-dir", str(base / "kubesim"), "--speed", "20"]
    proc = spawn("kubesim", argv, log_dir=base, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(proc, http_ok(f"{url}/healthz"), timeout=30)
    return proc, url, kubeconfig


@contextlib.contextmanager
def local_cloud() -> Iterator[Cloud]:
    emulators.check_prerequisites()
    with (
        tempfile.TemporaryDirectory(prefix="bench-cloud-") as temp,
        contextlib.ExitStack() as stack,
    ):
        base = Path(temp)
        os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
        pubsub_port, firestore_port, gcs_port = free_port(), free_port(), free_port()
        pubsub = emulators.start_pubsub(
            port=pubsub_port, project=PROJECT, log_dir=base, data_dir=base / "pubsub"
        ).wait()
        stack.callback(pubsub.stop)
        os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{pubsub_port}"
        firestore = emulators.start_firestore(port=firestore_port, project=PROJECT, log_dir=base)
        stack.callback(firestore.proc.stop)
        ensure_topic_and_subscription(PROJECT, TOPIC, "bench-sink")
        ensure_topic_and_subscription(PROJECT, EVENTS_TOPIC, "bench-events-sink")
        gcs = emulators.start_fake_gcs(
            port=gcs_port,
            project=PROJECT,
            topic=TOPIC,
            pubsub_host=f"127.0.0.1:{pubsub_port}",
            log_dir=base,
        ).wait()
        stack.callback(gcs.stop)
        firestore.wait()
        os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{firestore_port}"
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{gcs_port}"
        kubesim, kubesim_url, kubeconfig = _kubesim(base)  # inherits STORAGE_EMULATOR_HOST
        stack.callback(kubesim.stop)
        os.environ.update(
            {
                "KUBECONFIG": str(kubeconfig),
                "KUBERNETES_NAMESPACE": NAMESPACE,
                "GC_BUCKET_NAME": BUCKET,
                "FIRESTORE_COLLECTION": "bench_jobs",
                "LOG_LEVEL": "WARNING",
                # BENCH_EVENTS_TOPIC="" measures without notifications, for comparison
                "JOB_EVENTS_TOPIC": os.environ.get("BENCH_EVENTS_TOPIC", EVENTS_TOPIC),
            }
        )
        _prepare(kubeconfig)
        yield Cloud(kubesim_url=kubesim_url, kubeconfig=kubeconfig)


def _prepare(kubeconfig: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from kubernetes import client, config

    storage.Client(project=PROJECT, credentials=AnonymousCredentials()).create_bucket(BUCKET)
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core: Any = client.CoreV1Api(api)  # takes the plain-dict manifest
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    api.close()
