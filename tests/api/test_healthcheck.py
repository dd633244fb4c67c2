"""GET /healthcheck: 200 with each dependency's latency when Firestore, the cluster and the
bucket all answer in time; otherwise 503 naming the one that did not. It writes nothing."""

from __future__ import annotations

import pytest

from infra.local.procs import free_port
from tests.robustness.helpers import reconfigure

DEPENDENCIES = {"firestore", "cluster", "bucket"}


def check(fn) -> tuple[int, dict]:
    return fn.api("GET", "/healthcheck")


def dead_address() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


def assert_down(fn, failed: str) -> dict:
    status, body = check(fn)
    assert (status, body["error"], body["result"]) == (503, "Unavailable", False), body
    assert set(body["data"]) == DEPENDENCIES
    assert [name for name, probe in body["data"].items() if not probe["ok"]] == [failed], body
    assert body["data"][failed]["error"]
    assert body["msg"].startswith(f"Unavailable: {failed}: "), body["msg"]
    return body


def test_up_with_each_latency(fn, cluster_faults, backends, storage_client, bucket):
    cluster_faults.reset_stats()
    status, body = check(fn)
    assert status == 200, body
    assert set(body["data"]) == DEPENDENCIES
    for probe in body["data"].values():
        assert probe["ok"] is True and 0 <= probe["latency_ms"] < 15_000, probe
    # It wrote nothing: no document, no object, and only reads on the cluster.
    store = backends.store
    for collection in (store.jobs, store.names, store.requests):
        assert list(collection.limit(1).stream()) == []
    assert list(storage_client.list_blobs(bucket)) == []
    verbs = cluster_faults.stats()["by_verb"]
    assert set(verbs) <= {"get", "list", "watch"}, verbs


def test_firestore_down(fn, monkeypatch):
    reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=dead_address(), BACKEND_TIMEOUT_SECONDS="1")
    body = assert_down(fn, "firestore")
    assert body["data"]["firestore"]["latency_ms"] < 2_500


def test_firestore_too_slow_to_answer(fn, monkeypatch, firestore_emulator):
    """An answer later than BACKEND_TIMEOUT_SECONDS counts as none: a listener that accepts
    and never answers."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=host, BACKEND_TIMEOUT_SECONDS="1")
        assert_down(fn, "firestore")
    finally:
        listener.close()


def test_cluster_refuses(fn, cluster_faults, namespace):
    cluster_faults.inject_fault(
        verb="list", path=f"/apis/batch/v1/namespaces/{namespace}/jobs", status=500, count=1
    )
    body = assert_down(fn, "cluster")
    assert "500" in body["data"]["cluster"]["error"]


def test_cluster_stalls(fn, cluster_faults, namespace, monkeypatch):
    reconfigure(monkeypatch, BACKEND_TIMEOUT_SECONDS="1")
    cluster_faults.inject_fault(
        verb="list", path=f"/apis/batch/v1/namespaces/{namespace}/jobs", delay_seconds=3
    )
    assert_down(fn, "cluster")


def test_cluster_unreachable(fn, monkeypatch, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://{dead_address()}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n"
    )
    reconfigure(monkeypatch, KUBECONFIG=str(kubeconfig), BACKEND_TIMEOUT_SECONDS="1")
    assert_down(fn, "cluster")


def test_cluster_misconfigured(fn, monkeypatch):
    reconfigure(monkeypatch, KUBECONFIG="/nonexistent/kubeconfig")
    body = assert_down(fn, "cluster")
    assert "KUBECONFIG" in body["data"]["cluster"]["error"]


def test_bucket_missing(fn, monkeypatch):
    reconfigure(monkeypatch, GC_BUCKET_NAME="no-such-bucket-here")
    assert_down(fn, "bucket")


def test_storage_unreachable(fn, monkeypatch):
    """monkeypatch puts STORAGE_EMULATOR_HOST back after the test."""
    reconfigure(
        monkeypatch, STORAGE_EMULATOR_HOST=f"http://{dead_address()}", BACKEND_TIMEOUT_SECONDS="1"
    )
    assert_down(fn, "bucket")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get(fn_store, method):
    response = fn_store.clients["batch_api"].open("/healthcheck", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
