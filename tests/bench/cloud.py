"""The local cloud for the request and sync benchmarks: the Firestore and Pub/Sub emulators,
fake-gcs-server, and the Kubernetes control plane with the node agent (speed 20), on free
loopback ports, with the environment the product reads pointing at them. The product
reaches the API server as the functions' API user through a fault proxy that counts its
requests. No scheduler and no Eventarc relay: nothing runs that is not measured.

    with local_cloud() as cloud:
        ...  # os.environ now holds FIRESTORE_EMULATOR_HOST, KUBECONFIG, GC_BUCKET_NAME, ...
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.auth import local_token
from infra.local import emulators
from infra.local.controlplane import cluster
from infra.local.faultproxy import FaultProxy
from infra.local.issuer import CertsServer, access_env, new_issuer, write_key_file
from infra.local.nodeagent.launch import start_agent
from infra.local.procs import free_port
from infra.local.pubsub import ensure_topic_and_subscription

API_USER = cluster.FUNCTION_USERS[0]
REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_KSA = cluster.JOB_KSA
STAGER_IMAGE = "stager:bench"
PROJECT = "bench"
BUCKET = "bench-jobs"
NAMESPACE = "bench"
TOPIC = "gcs-notifications"
EVENTS_TOPIC = "job-events"  # JOB_EVENTS_TOPIC: the benchmarks run with notifications on


AUDIENCE = "https://task-runner.bench"  # AUTH_AUDIENCES: the functions' URL
OPERATOR = "operator@local"
ISSUER_KEY = "BENCH_ISSUER_KEY"  # the variable naming the issuer's key file


def operator_headers(email: str = OPERATOR) -> dict[str, str]:
    """`email`'s identity token, signed by the bench cloud's issuer."""
    token = local_token(Path(os.environ[ISSUER_KEY]), email, AUDIENCE, 6 * 3600)
    return {"Authorization": f"Bearer {token}"}


def authorized(client: Any, email: str = OPERATOR) -> Any:
    """A functions-framework test client whose every request carries `email`'s identity
    token, which the functions verify."""
    client.environ_base["HTTP_AUTHORIZATION"] = operator_headers(email)["Authorization"]
    return client


def _issuer(base: Path, stack: contextlib.ExitStack) -> None:
    """The local issuer, its certificates on loopback, and access control on."""
    port = free_port()
    issuer = new_issuer(f"http://127.0.0.1:{port}")
    os.environ[ISSUER_KEY] = str(write_key_file(issuer, base / "issuer"))
    stack.callback(CertsServer(issuer, port).start().stop)
    os.environ.update(access_env(issuer.url, [AUDIENCE], (OPERATOR,)))
    os.environ["ACCOUNTS_COLLECTION"] = "bench_accounts"


@dataclass(frozen=True)
class Cloud:
    kubeconfig: Path  # the functions' (KUBECONFIG)
    plane: cluster.ControlPlane
    proxy: FaultProxy

    def k8s_stats(self) -> dict[str, Any]:
        """The product's Kubernetes requests: {"total": N, "by_verb": ..., "by_resource": ...}."""
        return self.proxy.stats()

    def reset_k8s_stats(self) -> None:
        self.proxy.reset_stats()


def _cluster(base: Path, stack: contextlib.ExitStack, audit: bool) -> Cloud:
    """The control plane, the node agent (after STORAGE_EMULATOR_HOST: its stagers inherit
    it), the namespace from infra/k8s/, and the proxy the functions' kubeconfig goes through."""
    plane = stack.enter_context(cluster.start(base / "cluster", base, audit=audit))
    agent = start_agent(plane, base / "nodes", speed=20.0, stager_image=STAGER_IMAGE)
    stack.callback(agent.stop)
    cluster.apply_namespace(plane, NAMESPACE, JOB_KSA)
    proxy = FaultProxy.in_front_of(plane)
    stack.callback(proxy.stop)
    kubeconfig = plane.token_kubeconfig(base / "functions.kubeconfig", API_USER, proxy.url)
    return Cloud(kubeconfig=kubeconfig, plane=plane, proxy=proxy)


@contextlib.contextmanager
def local_cloud(*, audit: bool = False) -> Iterator[Cloud]:
    """The cloud; with `audit`, the API server logs every write (ControlPlane.audit_log)."""
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
        _issuer(base, stack)
        cloud = _cluster(base, stack, audit)
        os.environ.update(
            {
                "KUBECONFIG": str(cloud.kubeconfig),
                "KUBERNETES_NAMESPACE": NAMESPACE,
                "JOB_SERVICE_ACCOUNT": JOB_KSA,
                "STAGER_IMAGE": STAGER_IMAGE,
                "GC_BUCKET_NAME": BUCKET,
                "FIRESTORE_COLLECTION": "bench_jobs",
                "LOG_LEVEL": "WARNING",
                # BENCH_EVENTS_TOPIC="" measures without notifications, for comparison
                "JOB_EVENTS_TOPIC": os.environ.get("BENCH_EVENTS_TOPIC", EVENTS_TOPIC),
            }
        )
        _prepare()
        yield cloud


def _prepare() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    storage.Client(project=PROJECT, credentials=AnonymousCredentials()).create_bucket(BUCKET)
