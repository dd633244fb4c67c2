"""Label and field selectors in every form, and limit/continue pagination."""

from __future__ import annotations

import pytest

from tests.kubesim.helpers import api_error, raw

LABELS = {
    "a": {"env": "prod", "tier": "web"},
    "b": {"env": "dev", "tier": "web"},
    "c": {"env": "test"},
    "d": {},
}


@pytest.fixture
def labelled(core_v1, namespace):
    for name, labels in LABELS.items():
        core_v1.create_namespaced_secret(namespace, {"metadata": {"name": name, "labels": labels}})
    return namespace


def names(core_v1, namespace, **kwargs) -> list[str]:
    listed = raw(core_v1.list_namespaced_secret, namespace, **kwargs)
    return [item["metadata"]["name"] for item in listed["items"]]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", ["a"]),
        ("env==dev", ["b"]),
        ("env!=prod", ["b", "c", "d"]),
        ("env in (prod,dev)", ["a", "b"]),
        ("env notin (prod)", ["b", "c", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("tier=web,env!=dev", ["a"]),
        ("env in (prod, test),!tier", ["c"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors(core_v1, labelled, selector, expected):
    assert names(core_v1, labelled, label_selector=selector) == expected


@pytest.mark.parametrize("selector", ["env in prod", "=x", "env=(", "bad key=1", "a,", "env in ()"])
def test_bad_label_selector_is_400(core_v1, labelled, selector):
    status, body = api_error(core_v1.list_namespaced_secret, labelled, label_selector=selector)
    assert status == 400
    assert body["reason"] == "BadRequest" and body["code"] == 400
    assert body["message"].startswith("unable to parse requirement")


def test_field_selectors(core_v1, labelled):
    assert names(core_v1, labelled, field_selector="metadata.name=b") == ["b"]
    assert names(core_v1, labelled, field_selector="metadata.name!=b") == ["a", "c", "d"]
    assert names(core_v1, labelled, field_selector=f"metadata.namespace={labelled}") == list(LABELS)
    assert (
        names(core_v1, labelled, field_selector="metadata.name=a", label_selector="env=dev") == []
    )
    status, body = api_error(
        core_v1.list_namespaced_secret, labelled, field_selector="spec.bogus=1"
    )
    assert status == 400 and body["message"] == 'field label not supported: "spec.bogus"'


def test_pod_phase_field_selector(core_v1, namespace):
    from tests.kubesim.helpers import container, pod, pod_phase, wait_for

    core_v1.create_namespaced_pod(namespace, pod("fast", container(KUBESIM_RUN_SECONDS=0)))
    core_v1.create_namespaced_pod(namespace, pod("slow", container(KUBESIM_RUN_SECONDS=100)))
    wait_for(pod_phase(core_v1, namespace, "fast", "Succeeded"))
    wait_for(pod_phase(core_v1, namespace, "slow", "Running"))
    listed = raw(core_v1.list_namespaced_pod, namespace, field_selector="status.phase=Succeeded")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["fast"]


def test_pagination_over_several_pages(core_v1, namespace):
    for i in range(23):
        core_v1.create_namespaced_secret(
            namespace, {"metadata": {"name": f"s{i:02d}", "labels": {"odd": str(i % 2)}}}
        )
    seen: list[str] = []
    pages = 0
    token = None
    while True:
        kwargs = {"limit": 5}
        if token:
            kwargs["_continue"] = token
        page = raw(core_v1.list_namespaced_secret, namespace, **kwargs)
        pages += 1
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        assert len(page["items"]) == 5
        assert page["metadata"]["remainingItemCount"] == 23 - len(seen)
    assert pages == 5
    assert seen == [f"s{i:02d}" for i in range(23)]


def test_pagination_with_a_selector(core_v1, namespace):
    for i in range(9):
        core_v1.create_namespaced_secret(
            namespace, {"metadata": {"name": f"s{i}", "labels": {"odd": str(i % 2)}}}
        )
    first = raw(core_v1.list_namespaced_secret, namespace, label_selector="odd=1", limit=3)
    assert [i["metadata"]["name"] for i in first["items"]] == ["s1", "s3", "s5"]
    token = first["metadata"]["continue"]
    second = raw(
        core_v1.list_namespaced_secret, namespace, label_selector="odd=1", limit=3, _continue=token
    )
    assert [i["metadata"]["name"] for i in second["items"]] == ["s7"]
    assert "continue" not in second["metadata"]


def test_bad_continue_token_is_400(core_v1, namespace):
    status, body = api_error(core_v1.list_namespaced_secret, namespace, limit=1, _continue="%%%")
    assert status == 400 and body["message"].startswith("continue key is not valid")


def test_all_namespaces_list_is_ordered_by_namespace_then_name(core_v1, namespace):
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "zz"}})
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "aa"}})
    listed = raw(core_v1.list_secret_for_all_namespaces)
    keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]]
    assert keys == sorted(keys)
    assert (namespace, "aa") in keys and (namespace, "zz") in keys
