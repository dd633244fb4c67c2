"""A job that fails is reconciled by its cluster event, not by the next sync: the local
stand-in of GKE's event logging and its log sink (infra/local/eventsink.py) watches the real
API server, and its entries go to on_cluster_event. No test here calls the sync."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.eventsink import EventSink
from shared.model import clusterevents
from tests.api.test_lifecycle import FINAL, create, env
from tests.fixtures.waiting import wait_for


class Published:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, data: bytes) -> None:
        import json

        with self.lock:
            self.entries.append(json.loads(data))

    def about(self, name_prefix: str, reason: str) -> dict[str, Any] | None:
        with self.lock:
            return next(
                (
                    entry
                    for entry in self.entries
                    if entry["jsonPayload"]["reason"] == reason
                    and entry["jsonPayload"]["involvedObject"]["name"].startswith(name_prefix)
                ),
                None,
            )


@pytest.fixture
def sink(k8s_api, namespace) -> Iterator[Published]:
    """The sink's stand-in on this test's namespace, its entries kept instead of published."""
    from kubernetes import client

    published = Published()
    core = client.CoreV1Api(k8s_api)
    sink = EventSink(core, namespace, "local-test", published.add, watch_seconds=1)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop, ready.set), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield published
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_a_failed_job_is_reconciled_by_its_event(fn, sink):
    job = create(fn, **env(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=3))
    entry = wait_for(lambda: sink.about(job["name"], "BackoffLimitExceeded"), what="the event")
    assert entry["resource"]["type"] == "k8s_cluster"
    assert entry["logName"] == "projects/local-test/logs/events"
    assert fn.cluster_event(entry) == 200
    failed = fn.job(job["id"])
    assert FINAL(failed) and failed["status"] == "failed"
    assert (failed["reason"], failed["exit_code"]) == ("Error", 3)
    assert fn.cluster_event(entry, event_id="2") == 200  # delivered again: nothing changes
    assert fn.job(job["id"])["transitions"] == failed["transitions"]


def test_a_misspelled_image_is_reconciled_by_the_kubelets_event(fn, sink):
    job = create(fn, docker_image="pyhton:3.11", command=["python", "-c", "print(1)"])
    entry = wait_for(lambda: sink.about(job["name"], "Failed"), what="the kubelet's event")
    assert entry["resource"]["type"] == "k8s_pod"
    assert 'Failed to pull image "pyhton:3.11"' in entry["jsonPayload"]["message"]
    assert fn.cluster_event(entry) == 200
    failed = fn.job(job["id"])
    assert failed["status"] == "failed"
    assert failed["reason"] in ("ErrImagePull", "ImagePullBackOff")


def test_events_of_no_job_of_ours_change_nothing(fn, sink, namespace):
    involved = {"kind": "Job", "namespace": namespace, "name": "not-ours"}
    other: dict[str, Any] = {
        "involvedObject": involved,
        "reason": "BackoffLimitExceeded",
        "source": {"component": "job-controller"},
        "type": "Warning",
    }
    entry = clusterevents.log_entry(other, "local-test", "c", "l")
    assert fn.cluster_event(entry) == 200
    elsewhere = {**other, "involvedObject": {**involved, "namespace": "kube-system"}}
    assert fn.cluster_event(clusterevents.log_entry(elsewhere, "local-test", "c", "l")) == 200
    assert fn.cluster_event({"not": "an entry"}) == 200


def test_the_sinks_filter_passes_what_it_matches():
    text = clusterevents.log_filter("p", "c", "europe-west1", "jobs")
    assert text.startswith('logName="projects/p/logs/events" AND ')
    assert 'resource.labels.cluster_name="c"' in text
    assert 'jsonPayload.involvedObject.namespace="jobs"' in text
    for route in clusterevents.ROUTES:
        assert f'jsonPayload.source.component="{route.component}"' in text
        for reason in route.reasons:
            assert f'"{reason}"' in text
    job_failed = {
        "involvedObject": {"kind": "Job", "namespace": "jobs", "name": "j"},
        "reason": "DeadlineExceeded",
        "source": {"component": "job-controller"},
    }
    assert clusterevents.matches(clusterevents.log_entry(job_failed, "p", "c", "l"), "jobs")
    assert not clusterevents.matches(clusterevents.log_entry(job_failed, "p", "c", "l"), "other")
    completed = {**job_failed, "reason": "Completed"}
    assert not clusterevents.matches(clusterevents.log_entry(completed, "p", "c", "l"), "jobs")
    scheduled = {**job_failed, "source": {"component": "default-scheduler"}}
    assert not clusterevents.matches(clusterevents.log_entry(scheduled, "p", "c", "l"), "jobs")
