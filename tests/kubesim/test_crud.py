"""Every verb on every resource, through the official client, with server-set metadata."""

from __future__ import annotations

import base64
import re

from tests.kubesim.helpers import (
    api_error,
    claim,
    condition,
    container,
    is_gone,
    job,
    pod,
    pod_phase,
    raw,
    wait_for,
)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_default_namespace_exists(core_v1):
    ns = raw(core_v1.read_namespace, "default")
    assert ns["kind"] == "Namespace" and ns["apiVersion"] == "v1"
    assert ns["status"]["phase"] == "Active"


def test_namespace_verbs(core_v1):
    created = raw(core_v1.create_namespace, {"metadata": {"generateName": "crud-"}})
    name = created["metadata"]["name"]
    assert re.fullmatch(r"crud-[a-z0-9]{5}", name)
    assert created["metadata"]["labels"]["kubernetes.io/metadata.name"] == name
    names = [n["metadata"]["name"] for n in raw(core_v1.list_namespace)["items"]]
    assert {"default", name} <= set(names)
    patched = core_v1.patch_namespace(name, {"metadata": {"labels": {"team": "a"}}})
    assert patched.metadata.labels["team"] == "a"
    deleted = raw(core_v1.delete_namespace, name)
    assert deleted["kind"] == "Namespace"  # namespaces answer DELETE with the object
    status, body = api_error(core_v1.read_namespace, "no-such-ns")
    assert status == 404 and body["message"] == 'namespaces "no-such-ns" not found'


def test_server_sets_metadata(core_v1, namespace):
    first = raw(core_v1.create_namespaced_secret, namespace, {"metadata": {"generateName": "s-"}})
    second = raw(core_v1.create_namespaced_secret, namespace, {"metadata": {"generateName": "s-"}})
    for obj in (first, second):
        meta = obj["metadata"]
        assert obj["kind"] == "Secret" and obj["apiVersion"] == "v1"
        assert meta["namespace"] == namespace
        assert re.fullmatch(r"s-[a-z0-9]{5}", meta["name"])
        assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
        assert RFC3339.match(meta["creationTimestamp"])
        assert meta["resourceVersion"].isdigit()
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["metadata"]["uid"] != second["metadata"]["uid"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_secret_verbs(core_v1, namespace):
    body = {"metadata": {"name": "creds"}, "stringData": {"key.json": "{}"}, "data": {}}
    created = core_v1.create_namespaced_secret(namespace, body)
    assert created.type == "Opaque"
    assert base64.b64decode(created.data["key.json"]) == b"{}"
    got = core_v1.read_namespaced_secret("creds", namespace)
    assert got.metadata.uid == created.metadata.uid
    listed = core_v1.list_namespaced_secret(namespace)
    assert listed.kind == "SecretList" and [s.metadata.name for s in listed.items] == ["creds"]
    got.data["extra"] = base64.b64encode(b"x").decode()
    replaced = core_v1.replace_namespaced_secret("creds", namespace, got)
    assert int(replaced.metadata.resource_version) > int(got.metadata.resource_version)
    assert set(replaced.data) == {"key.json", "extra"}
    patched = core_v1.patch_namespaced_secret(
        "creds", namespace, {"metadata": {"annotations": {"a": "1"}}}
    )
    assert patched.metadata.annotations == {"a": "1"}
    status = raw(core_v1.delete_namespaced_secret, "creds", namespace)
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "creds" and status["details"]["uid"] == created.metadata.uid
    assert api_error(core_v1.read_namespaced_secret, "creds", namespace)[0] == 404


def test_pvc_verbs_and_host_directory(kubesim, core_v1, namespace):
    created = core_v1.create_namespaced_persistent_volume_claim(namespace, claim("data", "2Gi"))
    assert created.status.phase == "Bound"
    assert created.status.capacity == {"storage": "2Gi"}
    assert created.spec.volume_name == f"pvc-{created.metadata.uid}"
    host = kubesim.claim_dir(namespace, "data")
    assert host.is_dir()
    (host / "file.txt").write_text("x")
    listed = core_v1.list_namespaced_persistent_volume_claim(namespace)
    assert listed.kind == "PersistentVolumeClaimList" and len(listed.items) == 1
    patched = core_v1.patch_namespaced_persistent_volume_claim(
        "data", namespace, {"metadata": {"labels": {"role": "output"}}}
    )
    assert patched.metadata.labels == {"role": "output"}
    # The claim carries kubernetes.io/pvc-protection from its creation, so a delete marks it
    # and the protection controller lets it go once no pod uses it.
    answer = raw(core_v1.delete_namespaced_persistent_volume_claim, "data", namespace)
    assert answer["kind"] == "PersistentVolumeClaim"
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    wait_for(
        lambda: is_gone(core_v1.read_namespaced_persistent_volume_claim, "data", namespace),
        what="the unused claim to go",
    )
    assert not host.exists()


def test_pod_verbs(core_v1, namespace):
    created = core_v1.create_namespaced_pod(namespace, pod("p", container(KUBESIM_RUN_SECONDS=100)))
    assert created.kind == "Pod" and created.status.phase == "Pending"
    assert created.spec.restart_policy == "Never"
    # The kubelet writes the pod's status while it starts it; a read-modify-replace made in
    # that window carries a stale resourceVersion and gets 409 Conflict, as on a cluster
    # (test_replace_with_a_stale_resource_version_conflicts). Once the container runs, the
    # status holds still for its 100 simulated seconds.
    wait_for(pod_phase(core_v1, namespace, "p", "Running"), what="the pod to run")
    assert core_v1.read_namespaced_pod("p", namespace).metadata.uid == created.metadata.uid
    assert core_v1.read_namespaced_pod_status("p", namespace).metadata.name == "p"
    everywhere = core_v1.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={namespace}"
    )
    assert [p.metadata.name for p in everywhere.items] == ["p"]
    patched = core_v1.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"x": "y"}
    current = core_v1.read_namespaced_pod("p", namespace)
    current.metadata.annotations = {"note": "replaced"}
    replaced = core_v1.replace_namespaced_pod("p", namespace, current)
    assert replaced.metadata.annotations == {"note": "replaced"}
    deleted = raw(core_v1.delete_namespaced_pod, "p", namespace, grace_period_seconds=0)
    assert deleted["kind"] == "Pod"
    assert api_error(core_v1.read_namespaced_pod, "p", namespace)[0] == 404


def test_job_verbs(batch_v1, namespace):
    created = batch_v1.create_namespaced_job(
        namespace, job("work", container(KUBESIM_RUN_SECONDS=100), suspend=True)
    )
    uid = created.metadata.uid
    assert created.kind == "Job" and created.api_version == "batch/v1"
    assert created.spec.backoff_limit == 6 and created.spec.completions == 1
    labels = created.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/controller-uid"] == uid and labels["job-name"] == "work"
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    # The controller writes status (Suspended) concurrently: wait for it before a replace.
    wait_for(lambda: condition(raw(batch_v1.read_namespaced_job, "work", namespace), "Suspended"))
    assert batch_v1.read_namespaced_job_status("work", namespace).metadata.uid == uid
    assert [j.metadata.name for j in batch_v1.list_namespaced_job(namespace).items] == ["work"]
    everywhere = batch_v1.list_job_for_all_namespaces(label_selector="job-name!=x")
    assert "work" in [j.metadata.name for j in everywhere.items]
    current = batch_v1.read_namespaced_job("work", namespace)
    current.metadata.labels = {"replaced": "yes"}
    replaced = batch_v1.replace_namespaced_job("work", namespace, current)
    assert replaced.metadata.labels == {"replaced": "yes"}
    status = raw(batch_v1.delete_namespaced_job, "work", namespace)
    assert status["kind"] == "Status" and status["details"]["group"] == "batch"
    assert status["details"]["kind"] == "jobs"


def test_patch_types(batch_v1, namespace):
    batch_v1.create_namespaced_job(
        namespace, job("p", container(KUBESIM_RUN_SECONDS=100), suspend=True)
    )
    strategic = batch_v1.patch_namespaced_job(
        "p", namespace, {"metadata": {"labels": {"a": "1", "b": "2"}}}
    )
    assert strategic.metadata.labels == {"a": "1", "b": "2"}
    removed = batch_v1.patch_namespaced_job("p", namespace, {"metadata": {"labels": {"a": None}}})
    assert removed.metadata.labels == {"b": "2"}
    json_patched = batch_v1.patch_namespaced_job(
        "p",
        namespace,
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"n": "v"}},
            {"op": "replace", "path": "/spec/suspend", "value": False},
        ],
    )
    assert json_patched.metadata.annotations == {"n": "v"}
    assert json_patched.spec.suspend is False
    assert json_patched.metadata.generation == 2


def test_merge_patch_content_type(core_v1, namespace):
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "m", "labels": {"a": "1"}}})
    patched = core_v1.patch_namespaced_secret(
        "m",
        namespace,
        {"metadata": {"labels": {"b": "2", "a": None}}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels == {"b": "2"}


def test_delete_collection(core_v1, namespace):
    for i in range(3):
        core_v1.create_namespaced_secret(
            namespace, {"metadata": {"name": f"s{i}", "labels": {"drop": str(i < 2).lower()}}}
        )
    core_v1.delete_collection_namespaced_secret(namespace, label_selector="drop=true")
    left = [s.metadata.name for s in core_v1.list_namespaced_secret(namespace).items]
    assert left == ["s2"]


def test_list_items_and_list_metadata(core_v1, namespace):
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "a"}})
    listed = raw(core_v1.list_namespaced_secret, namespace)
    assert listed["kind"] == "SecretList" and listed["apiVersion"] == "v1"
    assert listed["metadata"]["resourceVersion"].isdigit()
    assert "continue" not in listed["metadata"]
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]


def test_replace_with_a_stale_resource_version_conflicts(core_v1, namespace):
    """What made test_pod_verbs flaky is the API's optimistic concurrency: a replace built
    on a read that another writer (here a patch, as the kubelet's status writes) overtook
    is refused; reading again and replacing works."""
    from kubernetes.client import ApiException

    core_v1.create_namespaced_pod(namespace, pod("p", container(KUBESIM_RUN_SECONDS=100)))
    wait_for(pod_phase(core_v1, namespace, "p", "Running"), what="the pod to run")
    stale = core_v1.read_namespaced_pod("p", namespace)
    core_v1.patch_namespaced_pod("p", namespace, {"metadata": {"labels": {"by": "other"}}})
    stale.metadata.annotations = {"note": "stale"}
    status, body = api_error(core_v1.replace_namespaced_pod, "p", namespace, stale)
    assert status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on pods "p": the object has been modified; please apply '
        "your changes to the latest version and try again"
    )
    for _ in range(5):  # the usual client loop: re-read and retry on 409
        fresh = core_v1.read_namespaced_pod("p", namespace)
        fresh.metadata.annotations = {"note": "fresh"}
        try:
            replaced = core_v1.replace_namespaced_pod("p", namespace, fresh)
            break
        except ApiException as error:
            if error.status != 409:
                raise
    assert replaced.metadata.annotations == {"note": "fresh"}
    assert replaced.metadata.labels == {"by": "other"}
