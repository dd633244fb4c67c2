"""Fault injection, request counters, health, concurrency, the kubeconfig and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from kubernetes.client import ApiException

from tests.kubesim.helpers import api_error, raw


def test_health_endpoints(kubesim):
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(kubesim.url + path, timeout=5) as response:
            assert response.read() == b"ok"


def test_kubeconfig_points_at_kubesim(kubesim):
    config = json.loads(kubesim.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kubesim.url
    assert config["current-context"] == "kubesim"
    assert config["contexts"][0]["context"]["namespace"] == "default"
    assert config["users"][0]["user"]["token"]


def test_fault_fails_n_requests_then_clears(kubesim, core_v1, namespace):
    kubesim.inject_fault(verb="list", path=f"/namespaces/{namespace}/secrets$", status=503, count=2)
    assert len(kubesim.faults()) == 1
    for _ in range(2):
        status, body = api_error(core_v1.list_namespaced_secret, namespace)
        assert status == 503 and body["kind"] == "Status" and body["code"] == 503
        assert body["reason"] == "ServiceUnavailable"
    assert raw(core_v1.list_namespaced_secret, namespace)["items"] == []
    assert kubesim.faults() == []


def test_fault_matches_verb_and_path_only(kubesim, core_v1, namespace):
    kubesim.inject_fault(verb="create", path="/secrets", status=500, message="boom")
    core_v1.list_namespaced_secret(namespace)  # a list is not a create
    status, body = api_error(
        core_v1.create_namespaced_secret, namespace, {"metadata": {"name": "s"}}
    )
    assert status == 500 and body["message"] == "boom"
    assert core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "s"}})


def test_fault_delay_then_serve(kubesim, core_v1, namespace):
    kubesim.inject_fault(verb="get", path="/secrets/slow$", status=0, delay_seconds=0.3)
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "slow"}})
    started = time.monotonic()
    assert core_v1.read_namespaced_secret("slow", namespace).metadata.name == "slow"
    assert time.monotonic() - started >= 0.3


def test_fault_delay_and_fail(kubesim, core_v1, namespace):
    kubesim.inject_fault(verb="*", path="/secrets", status=429, delay_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(ApiException) as caught:
        core_v1.list_namespaced_secret(namespace)
    assert caught.value.status == 429 and time.monotonic() - started >= 0.2


def test_clear_faults(kubesim, core_v1, namespace):
    kubesim.inject_fault(verb="*", path=".*", status=500, count=100)
    kubesim.clear_faults()
    assert kubesim.faults() == []
    assert core_v1.list_namespaced_secret(namespace).items == []


def test_stats_count_requests_by_verb(kubesim, core_v1, namespace):
    kubesim.reset_stats()
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "a"}})
    core_v1.read_namespaced_secret("a", namespace)
    core_v1.list_namespaced_secret(namespace)
    core_v1.list_namespaced_secret(namespace)
    core_v1.patch_namespaced_secret("a", namespace, {"metadata": {"labels": {"x": "y"}}})
    core_v1.delete_namespaced_secret("a", namespace)
    stats = kubesim.stats()
    assert stats["by_verb"] == {"create": 1, "get": 1, "list": 2, "patch": 1, "delete": 1}
    assert stats["total"] == 6
    assert stats["by_resource"]["list secrets"] == 2
    kubesim.reset_stats()
    assert kubesim.stats()["total"] == 0


def test_concurrent_creates(core_v1, namespace):
    results: list[dict] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        try:
            body = {"metadata": {"generateName": "c-", "labels": {"i": str(i)}}}
            obj = raw(core_v1.create_namespaced_secret, namespace, body)
            with lock:
                results.append(obj)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({r["metadata"]["name"] for r in results}) == 50
    assert len({r["metadata"]["uid"] for r in results}) == 50
    assert len({r["metadata"]["resourceVersion"] for r in results}) == 50
    assert len(raw(core_v1.list_namespaced_secret, namespace)["items"]) == 50


def test_refuses_non_loopback_address(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.local.kubesim",
            "--host",
            "0.0.0.0",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in json.loads(result.stderr.splitlines()[-1])["message"]
    assert not (tmp_path / "kc").exists()


def test_startup_log_line_is_json(kubesim):
    first = kubesim.log_path.read_text().splitlines()
    started = [json.loads(line) for line in first if '"kubesim serving' in line]
    assert started and started[0]["severity"] == "INFO" and started[0]["url"] == kubesim.url
