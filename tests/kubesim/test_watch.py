"""Watches through kubernetes.watch.Watch: initial state, changes, resourceVersion, timeout."""

from __future__ import annotations

from kubernetes import watch

from tests.kubesim.helpers import container, job, raw


def test_watch_pod_until_it_runs(core_v1, namespace):
    from tests.kubesim.helpers import pod

    core_v1.create_namespaced_pod(namespace, pod("w", container(KUBESIM_RUN_SECONDS=100)))
    phases = []
    w = watch.Watch()
    for event in w.stream(
        core_v1.list_namespaced_pod, namespace, field_selector="metadata.name=w", timeout_seconds=5
    ):
        phases.append((event["type"], event["object"].status.phase))
        if event["object"].status.phase == "Running":
            w.stop()
    assert phases[0] == ("ADDED", "Pending")
    assert phases[-1] == ("MODIFIED", "Running")


def test_watch_from_resource_version_sees_only_later_changes(batch_v1, namespace):
    listed = raw(batch_v1.list_namespaced_job, namespace)
    batch_v1.create_namespaced_job(namespace, job("later", container(KUBESIM_RUN_SECONDS=0)))
    seen = []
    w = watch.Watch()
    for event in w.stream(
        batch_v1.list_namespaced_job,
        namespace,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=5,
    ):
        seen.append(event["type"])
        conditions = event["object"].status.conditions or []
        if any(c.type == "Complete" for c in conditions):
            w.stop()
    assert seen[0] == "ADDED" and seen[-1] == "MODIFIED"


def test_watch_sees_deletion_and_honours_selectors(core_v1, namespace):
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "keep", "labels": {"w": "n"}}}
    )
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "drop", "labels": {"w": "y"}}}
    )
    rv = raw(core_v1.list_namespaced_secret, namespace)["metadata"]["resourceVersion"]
    core_v1.delete_namespaced_secret("keep", namespace)
    core_v1.delete_namespaced_secret("drop", namespace)
    events = []
    w = watch.Watch()
    for event in w.stream(
        core_v1.list_namespaced_secret,
        namespace,
        label_selector="w=y",
        resource_version=rv,
        timeout_seconds=5,
    ):
        events.append((event["type"], event["object"].metadata.name))
        w.stop()
    assert events == [("DELETED", "drop")]


def test_watch_ends_at_its_timeout(core_v1, namespace):
    events = list(
        watch.Watch().stream(core_v1.list_namespaced_secret, namespace, timeout_seconds=1)
    )
    assert events == []
