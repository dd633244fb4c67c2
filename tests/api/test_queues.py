"""Each account's share of the cluster, on Kueue's real manager: operators set its quota and
weight through the accounts API, its ClusterQueue and LocalQueue follow, every Job names
its account's queue, a job over quota waits suspended until Kueue admits it, and a job
with `start_after` ahead waits in the held queue until the sync moves it."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from shared.model import queues
from tests.api.test_access import call
from tests.api.test_lifecycle import env
from tests.fixtures.waiting import wait_for

TEAM = "team-q"
MEMBER = "q@q.test"
LONG = env(KUBESIM_RUN_SECONDS=600)
ONE_POD = {"on-demand": {"pods": 1}, "spot": {"pods": 0}}


@pytest.fixture
def kueue(k8s_api) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(k8s_api)


@pytest.fixture
def team(fn) -> dict[str, Any]:
    body = {"account_id": TEAM, "members": {MEMBER: "submitter"}}
    status, answer = fn.api("POST", "/accounts/", json=body)
    assert status == 200, answer
    return answer["data"]


def cluster_queue(kueue, namespace: str, queue: str) -> dict[str, Any]:
    name = queues.Names(namespace).cluster_queue(queue)
    found: dict[str, Any] = kueue.get_cluster_custom_object(
        queues.KUEUE, queues.VERSION, "clusterqueues", name
    )
    return found


def nominal(found: dict[str, Any]) -> dict[str, dict[str, str]]:
    (group,) = found["spec"]["resourceGroups"]
    return {
        flavor["name"]: {r["name"]: str(r["nominalQuota"]) for r in flavor["resources"]}
        for flavor in group["flavors"]
    }


def submit(fn, who: str | None = None, **params: Any) -> dict[str, Any]:
    body = {"account_id": TEAM, "job_parameters": {"docker_image": "alpine:3", **params}}
    status, answer = (
        call(fn, "POST", "/batch/", who, json=body) if who else fn.api("POST", "/batch/", json=body)
    )
    assert status == 200, answer
    return answer["data"]


def k8s_job(batch_v1, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = batch_v1.api_client.sanitize_for_serialization(
        batch_v1.read_namespaced_job(name, namespace)
    )
    return found


def test_a_new_account_gets_the_default_quota_and_its_queues(fn, team, kueue, namespace):
    assert team["quota"] == {
        "on-demand": {"cpu": "32", "memory": "128Gi", "pods": "100"},
        "spot": {"cpu": "32", "memory": "128Gi", "pods": "100"},
    }
    assert team["fair_share_weight"] == 1
    found = cluster_queue(kueue, namespace, TEAM)
    assert found["spec"]["cohortName"] == namespace
    assert nominal(found) == {"on-demand": {"cpu": "32", "memory": "128Gi", "pods": "100"},
                              "spot": {"cpu": "32", "memory": "128Gi", "pods": "100"}}  # fmt: skip
    local = kueue.get_namespaced_custom_object(
        queues.KUEUE, queues.VERSION, namespace, "localqueues", TEAM
    )
    assert local["spec"]["clusterQueue"] == found["metadata"]["name"]


def test_operators_set_the_quota_and_weight_and_the_queue_follows(fn, team, kueue, namespace):
    change = {"quota": {"spot": {"cpu": "64", "pods": 200}}, "fair_share_weight": 2.5}
    status, answer = call(fn, "PATCH", f"/accounts/{TEAM}", MEMBER, json=change)
    assert (status, answer["error"]) == (403, "Forbidden")
    status, answer = fn.api("PATCH", f"/accounts/{TEAM}", json=change)
    assert status == 200, answer
    assert answer["data"]["quota"]["spot"] == {"cpu": "64", "memory": "128Gi", "pods": "200"}
    assert answer["data"]["fair_share_weight"] == 2.5
    found = cluster_queue(kueue, namespace, TEAM)
    assert nominal(found)["spot"] == {"cpu": "64", "memory": "128Gi", "pods": "200"}
    assert str(found["spec"]["fairSharing"]["weight"]) == "2.5"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quota": {"gpu": {"cpu": "1"}}}, "quota"),
        ({"quota": {"spot": {"disk": "1"}}}, "quota.spot"),
        ({"quota": {"spot": {"cpu": "lots"}}}, "quota.spot.cpu"),
        ({"quota": {"spot": {"pods": "1.5"}}}, "quota.spot.pods"),
        ({"quota": {"spot": {"memory": -1}}}, "quota.spot.memory"),
        ({"fair_share_weight": 0}, "fair_share_weight"),
        ({"fair_share_weight": "2"}, "fair_share_weight"),
    ],
)
def test_a_bad_share_is_refused_with_its_field(fn, team, change, field):
    status, answer = fn.api("PATCH", f"/accounts/{TEAM}", json=change)
    assert (status, answer["error"]) == (400, "InvalidParameters"), answer
    assert field in answer["data"], answer


@pytest.mark.parametrize("reserved", sorted(queues.RESERVED))
def test_the_products_own_queue_names_are_no_account_ids(fn, reserved):
    status, answer = fn.api("POST", "/accounts/", json={"account_id": reserved})
    assert (status, answer["error"]) == (400, "InvalidParameters"), answer


def test_every_job_names_its_accounts_queue(fn, team, batch_v1, namespace):
    job = submit(fn, MEMBER, **LONG)
    assert queues_label(k8s_job(batch_v1, namespace, job["name"])) == TEAM
    body = {"job_parameters": {"docker_image": "alpine:3", **LONG}}  # an operator's, no account
    status, answer = fn.api("POST", "/batch/", json=body)
    assert status == 200, answer
    assert queues_label(k8s_job(batch_v1, namespace, answer["data"]["name"])) == "default"


def queues_label(k8s: dict[str, Any]) -> str:
    return str(k8s["metadata"]["labels"][queues.QUEUE_LABEL])


def test_a_job_over_quota_waits_suspended_and_can_be_killed(fn, team, batch_v1, namespace):
    assert fn.api("PATCH", f"/accounts/{TEAM}", json={"quota": ONE_POD})[0] == 200
    first = submit(fn, MEMBER, **LONG)
    second = submit(fn, MEMBER, **LONG)

    def started(name: str) -> bool:
        return k8s_job(batch_v1, namespace, name)["spec"].get("suspend") is False

    wait_for(lambda: started(first["name"]), what="the first job admitted")
    assert not started(second["name"])  # no quota left: Kueue keeps it suspended

    def waiting() -> dict[str, Any] | None:
        fn.sync()
        queued = fn.job(second["id"]).get("queued")
        return queued if queued and queued["position"] else None

    queued = wait_for(waiting, what="the second job's place in line")
    assert queued["queue"] == TEAM and queued["position"] == 1
    assert "insufficient unused quota for pods in flavor on-demand" in queued["reason"]
    assert queued["since"] >= second["created"]
    shown = fn.job(second["id"])
    assert shown["status"] == "running" and shown["queue"] == TEAM  # the six statuses only
    admitted = fn.job(first["id"])
    assert "queued" not in admitted and admitted["admitted"] >= first["created"]
    status, answer = call(fn, "DELETE", f"/batch/{second['id']}", MEMBER)
    assert status == 200 and answer["data"]["status"] == "killed", answer
    assert "queued" not in answer["data"]


def test_a_spot_job_gets_the_spot_flavor(fn, team, kueue, batch_v1, namespace):
    job = submit(fn, MEMBER, spot=True, **LONG)

    def admitted() -> dict[str, Any] | None:
        listed = kueue.list_namespaced_custom_object(
            queues.KUEUE, queues.VERSION, namespace, "workloads"
        )["items"]
        for workload in listed:
            admission = (workload.get("status") or {}).get("admission")
            if workload["metadata"]["ownerReferences"][0]["name"] == job["name"] and admission:
                return dict(admission)
        return None

    admission = wait_for(admitted, what="the spot job's admission")
    flavors = admission["podSetAssignments"][0]["flavors"]
    assert set(flavors.values()) == {"spot"}
    pod_spec = k8s_job(batch_v1, namespace, job["name"])["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {queues.PROVISIONING_LABEL: "spot"}


def test_a_scheduled_job_waits_held_until_the_sync_moves_it(fn, team, batch_v1, namespace):
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3)
    job = submit(fn, MEMBER, start_after=soon.isoformat(), **env(KUBESIM_RUN_SECONDS=1))
    held = k8s_job(batch_v1, namespace, job["name"])
    assert queues_label(held) == queues.SCHEDULED and held["spec"]["suspend"] is True

    def moved() -> bool:
        fn.sync()
        found = k8s_job(batch_v1, namespace, job["name"])
        return queues_label(found) == TEAM and found["spec"].get("suspend") is False

    wait_for(moved, what="the scheduled job moved to its account's queue and admitted")


def test_the_sync_puts_back_what_was_changed_behind_its_back(fn, team, kueue, namespace):
    name = queues.Names(namespace).cluster_queue(TEAM)
    kueue.delete_namespaced_custom_object(
        queues.KUEUE, queues.VERSION, namespace, "localqueues", TEAM
    )
    found = cluster_queue(kueue, namespace, TEAM)
    (group,) = found["spec"]["resourceGroups"]
    group["flavors"][0]["resources"][0]["nominalQuota"] = "1"
    kueue.replace_cluster_custom_object(queues.KUEUE, queues.VERSION, "clusterqueues", name, found)
    report = fn.sync()
    assert report["queues_applied"] >= 2, report
    assert nominal(cluster_queue(kueue, namespace, TEAM))["on-demand"]["cpu"] == "32"
    kueue.get_namespaced_custom_object(queues.KUEUE, queues.VERSION, namespace, "localqueues", TEAM)


def test_what_could_never_run_is_refused_with_the_numbers(fn, team, batch_v1, namespace):
    small = {"on-demand": {"pods": 4}, "spot": {"pods": 2}}
    assert fn.api("PATCH", f"/accounts/{TEAM}", json={"quota": small})[0] == 200
    wide = {"task_count": 10, "parallelism": 5, **LONG}
    body = {"account_id": TEAM, "job_parameters": {"docker_image": "alpine:3", **wide}}
    status, answer = call(fn, "POST", "/batch/", MEMBER, json=body)
    assert (status, answer["error"]) == (400, "InvalidParameters"), answer
    why = answer["data"]["resources"]
    assert "on-demand: 5 pods at once (4 at most)" in why, why
    assert "spot: 5 pods at once (2 at most)" in why, why
    huge = {"resources": {"requests": {"cpu": "16"}}, **LONG}
    body = {"account_id": TEAM, "job_parameters": {"docker_image": "alpine:3", **huge}}
    status, answer = call(fn, "POST", "/batch/", MEMBER, json=body)
    assert (status, answer["error"]) == (400, "InvalidParameters"), answer
    assert "16 cpu a pod (the largest node: " in answer["data"]["resources"], answer
    assert not batch_v1.list_namespaced_job(namespace).items  # nothing was made
    status, listed = fn.api("GET", f"/batch/?status=any&account_id={TEAM}")
    assert status == 200 and listed["data"] == []


def test_a_dry_run_says_where_the_job_would_wait_and_makes_nothing(fn, team, batch_v1, namespace):
    assert fn.api("PATCH", f"/accounts/{TEAM}", json={"quota": ONE_POD})[0] == 200
    body = {"account_id": TEAM, "job_parameters": {"docker_image": "alpine:3", **LONG}}
    status, answer = call(fn, "POST", "/batch/?dry_run=true", MEMBER, json=body)
    assert status == 200, answer
    assert answer["data"] == {"accepted": True, "account_id": TEAM, "queue": TEAM,
                              "waiting_ahead": 0, "scheduled_for": None}  # fmt: skip
    assert not batch_v1.list_namespaced_job(namespace).items
    submit(fn, MEMBER, **LONG)
    submit(fn, MEMBER, **LONG)  # waits behind the first
    ahead = wait_for(
        lambda: call(fn, "POST", "/batch/?dry_run=1", MEMBER, json=body)[1]["data"][
            "waiting_ahead"
        ],
        what="the waiting job counted",
    )
    assert ahead == 1
    status, answer = call(fn, "POST", "/batch/?dry_run=maybe", MEMBER, json=body)
    assert (status, answer["error"]) == (400, "InvalidParameters")
    status, answer = call(fn, "POST", "/batch/?dry_run=true", "nobody@q.test", json=body)
    assert status == 403, answer  # the same checks as a create


def test_a_raised_quota_and_a_new_account_count_at_once(fn, team):
    """The quotas a create reads are kept a while; not past a change of them."""
    assert fn.api("PATCH", f"/accounts/{TEAM}", json={"quota": ONE_POD})[0] == 200
    wide = {"account_id": TEAM, "job_parameters": {"docker_image": "alpine:3", "task_count": 2,
                                                    "parallelism": 2, **LONG}}  # fmt: skip
    status, answer = fn.api("POST", "/batch/", json=wide)  # the quotas are read, and kept
    assert status == 400 and "2 pods at once" in answer["data"]["resources"], answer
    raised = {"on-demand": {"pods": 2}, "spot": {"pods": 0}}
    assert fn.api("PATCH", f"/accounts/{TEAM}", json={"quota": raised})[0] == 200
    status, answer = fn.api("POST", "/batch/", json=wide)
    assert status == 200, answer
    assert fn.api("POST", "/accounts/", json={"account_id": "team-r"})[0] == 200
    body = {"account_id": "team-r", "job_parameters": {"docker_image": "alpine:3", **LONG}}
    status, answer = fn.api("POST", "/batch/", json=body)
    assert status == 200, answer
