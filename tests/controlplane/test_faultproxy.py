"""The fault proxy in front of the API server: everything passes through as it is (the
caller's token and the API server's RBAC included), the verbs it counts are Kubernetes'
own, and an injected fault answers as the API server would, or stalls, for as many
requests as it was given."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, config
from kubernetes.client import ApiException

from infra.local.faultproxy import verb_of


@pytest.fixture
def pods(cluster_kubeconfig):
    api = config.new_client_from_config(config_file=str(cluster_kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


@pytest.mark.parametrize(
    ("method", "url", "verb", "resource"),
    [
        ("GET", "/api/v1/namespaces/a/pods?limit=1", "list", "pods"),
        ("GET", "/api/v1/namespaces/a/pods?watch=true", "watch", "pods"),
        ("GET", "/api/v1/namespaces/a/pods/p/log?follow=true", "get", "pods/log"),
        ("POST", "/apis/batch/v1/namespaces/a/jobs", "create", "jobs"),
        ("PATCH", "/apis/batch/v1/namespaces/a/jobs/j", "patch", "jobs"),
        ("DELETE", "/apis/batch/v1/namespaces/a/jobs/j", "delete", "jobs"),
        ("DELETE", "/api/v1/namespaces/a/pods", "deletecollection", "pods"),
        ("GET", "/api/v1/namespaces", "list", "namespaces"),
        ("GET", "/api/v1/namespaces/a", "get", "namespaces"),
        ("PUT", "/api/v1/nodes/n/status", "update", "nodes/status"),
    ],
)
def test_verbs_are_kubernetes_own(method, url, verb, resource):
    assert verb_of(method, url) == (verb, resource)


def test_requests_pass_as_the_callers_user(pods, cluster_faults, namespace):
    cluster_faults.reset_stats()
    assert pods.list_namespaced_pod(namespace).items == []
    with pytest.raises(ApiException) as refused:  # the Role grants no secrets
        pods.list_namespaced_secret(namespace)
    assert refused.value.status == 403
    assert "task-runner-api@local-cloud.iam" in str(refused.value.body)
    assert cluster_faults.stats()["by_resource"] == {"list pods": 1, "list secrets": 1}


def test_a_fault_answers_as_the_api_server_for_its_count(pods, cluster_faults, namespace):
    cluster_faults.inject_fault(verb="list", path=f"/namespaces/{namespace}/pods", count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            pods.list_namespaced_pod(namespace)
        assert failed.value.status == 500
        assert '"reason": "InternalError"' in str(failed.value.body)
    assert pods.list_namespaced_pod(namespace).items == []
    assert cluster_faults.faults() == []


def test_a_stall_then_goes_through(pods, cluster_faults, namespace):
    cluster_faults.inject_fault(verb="list", status=0, delay_seconds=1.0)
    started = time.monotonic()
    assert pods.list_namespaced_pod(namespace).items == []
    assert time.monotonic() - started >= 1.0
