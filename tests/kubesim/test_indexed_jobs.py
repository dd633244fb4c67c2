"""Indexed Jobs: completion indexes, per-index retries, maxFailedIndexes, FailIndex, and the
API server's defaults and validation for them (pkg/controller/job/indexed_job_utils.go,
job_controller.go, pkg/apis/batch/validation/validation.go)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from typing import Any

import pytest

from infra.local.kubesim.sandbox import BWRAP
from tests.kubesim.helpers import (
    HOST_IMAGE,
    api_error,
    claim,
    condition,
    container,
    http,
    is_gone,
    job,
    job_finished,
    job_pods,
    must_condition,
    raw,
    wait_for,
)

INDEX = "batch.kubernetes.io/job-completion-index"
FAILURES = "batch.kubernetes.io/job-index-failure-count"
IGNORED = "batch.kubernetes.io/job-index-ignored-failure-count"


def indexed(name: str, *containers: dict, completions: int, **spec: Any) -> dict:
    return job(name, *containers, completionMode="Indexed", completions=completions, **spec)


def script(text: str, **env_values: Any) -> dict:
    """A host shell script (HOST_IMAGE): host paths work, JOB_COMPLETION_INDEX is set."""
    return container(image=HOST_IMAGE, KUBESIM_SH=text, **env_values)


def index(pod: dict) -> int:
    return int(pod["metadata"]["annotations"][INDEX])


def by_index(core_v1, namespace: str, name: str) -> dict[int, list[dict]]:
    pods: dict[int, list[dict]] = {}
    for pod in job_pods(core_v1, namespace, name):
        pods.setdefault(index(pod), []).append(pod)
    for group in pods.values():
        group.sort(key=lambda p: int(p["metadata"]["annotations"].get(FAILURES, "0")))
    return pods


def running(core_v1, namespace: str, name: str) -> list[int]:
    """Indexes of the Job's pods that are neither finished nor being deleted."""
    return sorted(
        index(p)
        for p in job_pods(core_v1, namespace, name)
        if p["status"].get("phase") not in ("Succeeded", "Failed")
        and not p["metadata"].get("deletionTimestamp")
    )


@pytest.mark.skipif(not BWRAP.exists(), reason="bubblewrap is not installed")
def test_each_index_sees_its_number(kubesim, batch_v1, core_v1, namespace):
    """Five indexes each write their index, from the environment and from `$(VAR)`
    expansion of the command, in an init container and the main one; the pods carry the
    index as annotation, label and hostname, and the Job reports the completed indexes."""
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("out"))
    out = kubesim.claim_dir(namespace, "out")
    mount = [{"name": "out", "mountPath": "/out"}]
    write = 'echo "$JOB_COMPLETION_INDEX" > /out/{0}-$(JOB_COMPLETION_INDEX)'
    step = {"image": "alpine:3", "command": ["sh", "-c"], "volumeMounts": mount}
    body = indexed(
        "five",
        {**step, "name": "main", "args": [write.format("main")]},
        completions=5,
        parallelism=5,
        pod_spec={
            "initContainers": [{**step, "name": "setup", "args": [write.format("init")]}],
            "volumes": [{"name": "out", "persistentVolumeClaim": {"claimName": "out"}}],
        },
    )
    created = batch_v1.create_namespaced_job(namespace, body)
    assert created.spec.completion_mode == "Indexed" and created.spec.backoff_limit == 6
    done = wait_for(job_finished(batch_v1, namespace, "five"))
    assert must_condition(done, "Complete")["reason"] == "CompletionsReached"
    assert done["status"]["completedIndexes"] == "0-4" and done["status"]["succeeded"] == 5
    typed = batch_v1.read_namespaced_job("five", namespace).status
    assert typed.completed_indexes == "0-4" and typed.failed_indexes is None
    for i in range(5):
        assert (out / f"init-{i}").read_text() == f"{i}\n"
        assert (out / f"main-{i}").read_text() == f"{i}\n"
    pods = by_index(core_v1, namespace, "five")
    assert sorted(pods) == [0, 1, 2, 3, 4]
    for i, [pod] in pods.items():
        m = pod["metadata"]
        assert re.fullmatch(rf"five-{i}-[a-z0-9]{{5}}", m["name"])
        assert m["generateName"] == f"five-{i}-"
        assert m["labels"][INDEX] == str(i) and FAILURES not in m["annotations"]
        assert pod["spec"]["hostname"] == f"five-{i}"
        for part in (*pod["spec"]["initContainers"], *pod["spec"]["containers"]):
            assert part["env"][-1] == {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {
                    "fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{INDEX}']"}
                },
            }


def test_an_own_job_completion_index_variable_is_kept(batch_v1, core_v1, namespace):
    body = indexed("own", container(JOB_COMPLETION_INDEX="mine"), completions=1, suspend=True)
    batch_v1.create_namespaced_job(namespace, body)
    batch_v1.patch_namespaced_job("own", namespace, {"spec": {"suspend": False}})
    [pod] = wait_for(lambda: job_pods(core_v1, namespace, "own"))
    assert pod["spec"]["containers"][0]["env"] == [
        {"name": "JOB_COMPLETION_INDEX", "value": "mine"}
    ]


def test_parallelism_limits_active_pods_and_may_change(batch_v1, core_v1, namespace):
    """At most `parallelism` pods run, the lowest pending indexes first; raising it starts
    the next indexes."""
    body = indexed("par", container(KUBESIM_RUN_SECONDS=40), completions=4, parallelism=1)
    batch_v1.create_namespaced_job(namespace, body)
    assert wait_for(lambda: running(core_v1, namespace, "par")) == [0]
    assert raw(batch_v1.read_namespaced_job, "par", namespace)["status"]["active"] == 1
    assert running(core_v1, namespace, "par") == [0]  # still one, and index 0
    batch_v1.patch_namespaced_job("par", namespace, {"spec": {"parallelism": 3}})
    assert wait_for(lambda: (r := running(core_v1, namespace, "par")) == [0, 1, 2] and r)
    seen: set[int] = set()

    def finished():
        active = running(core_v1, namespace, "par")
        assert len(active) <= 3, active
        seen.update(active)
        return job_finished(batch_v1, namespace, "par")()

    done = wait_for(finished)
    assert seen == {0, 1, 2, 3}
    assert done["status"]["completedIndexes"] == "0-3" and done["status"]["succeeded"] == 4


def test_an_index_that_fails_once_is_retried(tmp_path, batch_v1, core_v1, namespace):
    """backoffLimitPerIndex 1: index 1 fails once, its replacement carries the failure count
    and succeeds; the Job completes, the failure counted once."""
    marker = tmp_path / "tried"
    body = indexed(
        "retry",
        script(
            f'[ "$JOB_COMPLETION_INDEX" = 1 ] && [ ! -e {marker} ] && touch {marker} && exit 3;'
            " exit 0"
        ),
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=1,
    )
    created = batch_v1.create_namespaced_job(namespace, body)
    assert created.spec.backoff_limit == 2**31 - 1  # the default with backoffLimitPerIndex
    done = wait_for(job_finished(batch_v1, namespace, "retry"))
    assert must_condition(done, "Complete")
    status = done["status"]
    assert (status["completedIndexes"], status["failedIndexes"]) == ("0-2", "")
    assert (status["succeeded"], status["failed"]) == (3, 1)
    pods = by_index(core_v1, namespace, "retry")
    assert [len(pods[i]) for i in range(3)] == [1, 2, 1]
    first, second = pods[1]
    assert first["status"]["phase"] == "Failed" and second["status"]["phase"] == "Succeeded"
    assert first["metadata"]["annotations"][FAILURES] == "0"
    assert second["metadata"]["annotations"][FAILURES] == "1"
    assert second["metadata"]["name"].startswith("retry-1-")
    for group in pods.values():
        for pod in group:
            assert "finalizers" not in pod["metadata"]


def test_an_index_waits_its_back_off_before_a_new_pod(tmp_path, batch_v1, core_v1, namespace):
    """getRemainingTimePerIndex: the replacement of an index's first failure waits 10
    simulated seconds (0.5 s at the tests' speed 20) after the failure."""
    marker = tmp_path / "tried"
    body = indexed(
        "wait",
        script(f"[ -e {marker} ] && exit 0; touch {marker}; exit 1"),
        completions=1,
        backoffLimitPerIndex=1,
    )
    batch_v1.create_namespaced_job(namespace, body)

    def failed():
        pods = job_pods(core_v1, namespace, "wait")
        return pods if pods and pods[0]["status"].get("phase") == "Failed" else None

    wait_for(failed, what="the first pod failed")
    failed_at = time.monotonic()
    wait_for(lambda: len(job_pods(core_v1, namespace, "wait")) == 2, what="the replacement")
    assert time.monotonic() - failed_at >= 0.4  # the 0.5 s back-off, less polling latency
    done = wait_for(job_finished(batch_v1, namespace, "wait"))
    assert done["status"]["completedIndexes"] == "0"


def test_failed_replacement_waits_for_the_terminating_pod(batch_v1, core_v1, namespace):
    """podReplacementPolicy Failed with backoffLimitPerIndex: a deleted pod keeps its index
    while it terminates (firstPendingIndexes); once it has failed, its replacement carries
    the failure, after the index's back-off."""
    stubborn = container(KUBESIM_RUN_SECONDS=1000, KUBESIM_IGNORE_SIGTERM=1)
    body = indexed(
        "held", stubborn, completions=1, backoffLimitPerIndex=2, podReplacementPolicy="Failed"
    )
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 40  # 2 s wall
    batch_v1.create_namespaced_job(namespace, body)
    [first] = wait_for(lambda: job_pods(core_v1, namespace, "held"))
    wait_for(lambda: raw(batch_v1.read_namespaced_job, "held", namespace)["status"].get("ready"))
    core_v1.delete_namespaced_pod(first["metadata"]["name"], namespace)

    def terminating():
        status = raw(batch_v1.read_namespaced_job, "held", namespace)["status"]
        return status if status.get("terminating") == 1 else None

    wait_for(terminating, what="the deleted pod terminating")
    assert len(job_pods(core_v1, namespace, "held")) == 1  # no replacement yet

    def replaced():
        pods = [
            p
            for p in job_pods(core_v1, namespace, "held")
            if p["metadata"]["uid"] != first["metadata"]["uid"]
        ]
        return pods[0] if pods else None

    second = wait_for(replaced, what="a replacement once the old pod failed")
    assert index(second) == 0 and second["metadata"]["annotations"][FAILURES] == "1"

    def counted():  # the old pod is released, and counted, once its replacement exists
        status = raw(batch_v1.read_namespaced_job, "held", namespace)["status"]
        return status if status.get("failed") == 1 else None

    assert wait_for(counted, what="the failure counted")["failedIndexes"] == ""
    old = first["metadata"]["name"]
    wait_for(lambda: is_gone(core_v1.read_namespaced_pod, old, namespace), what="old pod gone")


def test_max_failed_indexes_exceeded_stops_the_rest(batch_v1, core_v1, namespace):
    """maxFailedIndexes 0: the first failed index fails the Job (FailureTarget, then
    Failed), and the other indexes' pods are stopped."""
    body = indexed(
        "stop",
        script('[ "$JOB_COMPLETION_INDEX" = 0 ] && exit 1; sleep 60'),
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=0,
        maxFailedIndexes=0,
    )
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "stop"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "MaxFailedIndexesExceeded"
    assert failed["message"] == "Job has exceeded the specified maximal number of failed indexes"
    assert must_condition(done, "FailureTarget")["reason"] == "MaxFailedIndexesExceeded"
    assert done["status"]["failedIndexes"] == "0" and "completedIndexes" not in done["status"]
    assert "active" not in done["status"]
    assert done["status"]["failed"] == 3  # the failed pod and the two it stopped
    wait_for(lambda: [index(p) for p in job_pods(core_v1, namespace, "stop")] == [0])
    typed = batch_v1.read_namespaced_job("stop", namespace).status
    assert typed.failed_indexes == "0"


def test_failed_indexes_within_the_limit_let_the_rest_finish(batch_v1, core_v1, namespace):
    """maxFailedIndexes 1: index 1 fails for good, the others complete; the Job then fails
    with reason FailedIndexes."""
    body = indexed(
        "some",
        script('[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 2; exit 0'),
        completions=3,
        parallelism=1,
        backoffLimitPerIndex=0,
        maxFailedIndexes=1,
    )
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "some"))
    failed = must_condition(done, "Failed")
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    assert not condition(done, "Complete")
    status = done["status"]
    assert (status["completedIndexes"], status["failedIndexes"]) == ("0,2", "1")
    assert (status["succeeded"], status["failed"]) == (2, 1)
    assert {i: len(p) for i, p in by_index(core_v1, namespace, "some").items()} == {
        0: 1,
        1: 1,
        2: 1,
    }


def test_fail_index_and_ignore_rules(tmp_path, batch_v1, core_v1, namespace):
    """A FailIndex rule fails its index at once despite retries left; an Ignore rule's
    failure is kept apart in the ignored-failure-count and does not use up the index's
    retries."""
    marker = tmp_path / "ignored"
    policy = {
        "rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}},
        ]
    }
    body = indexed(
        "fi",
        script(
            f'[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 42;'
            f' [ "$JOB_COMPLETION_INDEX" = 2 ] && [ ! -e {marker} ] && touch {marker} && exit 7;'
            " exit 0"
        ),
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=3,
        podFailurePolicy=policy,
    )
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "fi"))
    assert must_condition(done, "Failed")["reason"] == "FailedIndexes"
    status = done["status"]
    assert (status["completedIndexes"], status["failedIndexes"]) == ("0,2", "1")
    assert status["failed"] == 1  # the FailIndex failure counts, the ignored one does not
    pods = by_index(core_v1, namespace, "fi")
    assert len(pods[1]) == 1
    retried = sorted(pods[2], key=lambda p: p["status"]["phase"])  # Failed, then Succeeded
    assert [p["status"]["phase"] for p in retried] == ["Failed", "Succeeded"]
    annotations = retried[1]["metadata"]["annotations"]
    assert (annotations[FAILURES], annotations[IGNORED]) == ("0", "1")
    assert IGNORED not in retried[0]["metadata"]["annotations"]


def test_suspend_deletes_pods_and_resume_recreates_pending_indexes(batch_v1, core_v1, namespace):
    body = indexed(
        "sus",
        script('[ "$JOB_COMPLETION_INDEX" = 0 ] && exit 0; sleep 60'),
        completions=3,
        parallelism=3,
    )
    batch_v1.create_namespaced_job(namespace, body)

    def index_zero_done():
        status = raw(batch_v1.read_namespaced_job, "sus", namespace)["status"]
        return status.get("completedIndexes") == "0" and running(core_v1, namespace, "sus") == [
            1,
            2,
        ]

    wait_for(index_zero_done, what="index 0 done, 1 and 2 running")
    batch_v1.patch_namespaced_job("sus", namespace, {"spec": {"suspend": True}})

    def suspended():
        obj = raw(batch_v1.read_namespaced_job, "sus", namespace)
        left = [index(p) for p in job_pods(core_v1, namespace, "sus")]
        return obj if condition(obj, "Suspended") and left == [0] else None

    obj = wait_for(suspended, what="suspension to delete the running pods")
    assert obj["status"]["completedIndexes"] == "0" and "failed" not in obj["status"]
    batch_v1.patch_namespaced_job("sus", namespace, {"spec": {"suspend": False}})
    assert wait_for(lambda: (r := running(core_v1, namespace, "sus")) == [1, 2] and r)
    assert sorted(index(p) for p in job_pods(core_v1, namespace, "sus")) == [0, 1, 2]


def test_deadline_and_deletion_remove_every_pod(batch_v1, core_v1, namespace):
    """activeDeadlineSeconds fails an Indexed Job and stops its pods; deleting another with
    propagation removes all of its pods."""
    slow = indexed(
        "late",
        container(KUBESIM_RUN_SECONDS=1000),
        completions=3,
        parallelism=3,
        activeDeadlineSeconds=2,
    )
    batch_v1.create_namespaced_job(namespace, slow)
    done = wait_for(job_finished(batch_v1, namespace, "late"))
    assert must_condition(done, "Failed")["reason"] == "DeadlineExceeded"
    wait_for(lambda: not job_pods(core_v1, namespace, "late"), what="the late pods deleted")

    body = indexed("gone", container(KUBESIM_RUN_SECONDS=1000), completions=4, parallelism=4)
    batch_v1.create_namespaced_job(namespace, body)
    assert wait_for(lambda: (r := running(core_v1, namespace, "gone")) == [0, 1, 2, 3] and r)
    batch_v1.delete_namespaced_job("gone", namespace, propagation_policy="Foreground")
    wait_for(lambda: not job_pods(core_v1, namespace, "gone"), what="pods deleted")
    wait_for(lambda: is_gone(batch_v1.read_namespaced_job, "gone", namespace))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_reads_the_index_status(kubesim, batch_v1, namespace):
    body = indexed(
        "kc",
        script('[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 1; exit 0'),
        completions=3,
        parallelism=3,
        backoffLimitPerIndex=0,
    )
    batch_v1.create_namespaced_job(namespace, body)
    wait_for(job_finished(batch_v1, namespace, "kc"))
    path = "{.status.completedIndexes}/{.status.failedIndexes}"
    shown = subprocess.run(
        [
            "kubectl",
            "--kubeconfig",
            str(kubesim.kubeconfig),
            "get",
            "job",
            "kc",
            "-n",
            namespace,
            "-o",
            f"jsonpath={path}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (shown.returncode, shown.stdout) == (0, "0,2/1"), shown.stderr


def causes(kubesim, namespace: str, body: dict) -> list[tuple[str, str, str]]:
    status, error = http(kubesim, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
    assert status == 422 and error["reason"] == "Invalid", error
    return [(c["field"], c["reason"], c["message"]) for c in error["details"]["causes"]]


TANDEM = "must be less than or equal to 10000 when completions are above 100000 and used with "
INVALID = "FieldValueInvalid"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"completionMode": "Indexed", "parallelism": 2},
            [
                (
                    "spec.completions",
                    "FieldValueRequired",
                    "Required value: when completion mode is Indexed",
                )
            ],
        ),
        (
            {"completionMode": "Indexed", "completions": 3, "maxFailedIndexes": 1},
            [
                (
                    "spec.backoffLimitPerIndex",
                    "FieldValueRequired",
                    "Required value: when maxFailedIndexes is specified",
                )
            ],
        ),
        (
            {
                "completionMode": "Indexed",
                "completions": 3,
                "backoffLimitPerIndex": 1,
                "maxFailedIndexes": 4,
            },
            [
                (
                    "spec.maxFailedIndexes",
                    INVALID,
                    "Invalid value: 4: must be less than or equal to completions",
                )
            ],
        ),
        (
            {"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": -1},
            [
                (
                    "spec.backoffLimitPerIndex",
                    INVALID,
                    "Invalid value: -1: must be greater than or equal to 0",
                )
            ],
        ),
        (
            {"completions": 2, "backoffLimitPerIndex": 1, "maxFailedIndexes": 1},
            [
                (
                    "spec.backoffLimitPerIndex",
                    INVALID,
                    "Invalid value: 1: requires indexed completion mode",
                ),
                (
                    "spec.maxFailedIndexes",
                    INVALID,
                    "Invalid value: 1: requires indexed completion mode",
                ),
            ],
        ),
        (
            {"completionMode": "Indexed", "completions": 5, "parallelism": 100_001},
            [
                (
                    "spec.parallelism",
                    INVALID,
                    "Invalid value: 100001: must be less than or equal to 100000 when completion "
                    "mode is Indexed",
                )
            ],
        ),
        (
            {
                "completionMode": "Indexed",
                "completions": 100_001,
                "parallelism": 10_001,
                "backoffLimitPerIndex": 1,
            },
            [
                (
                    "spec.maxFailedIndexes",
                    "FieldValueRequired",
                    "Required value: must be specified when completions is above 100000",
                ),
                (
                    "spec.parallelism",
                    INVALID,
                    f"Invalid value: 10001: {TANDEM}backoff limit per index",
                ),
            ],
        ),
        (
            {
                "completions": 2,
                "podFailurePolicy": {
                    "rules": [
                        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}
                    ]
                },
            },
            [
                (
                    "spec.podFailurePolicy.rules[0].action",
                    INVALID,
                    'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set',
                )
            ],
        ),
    ],
)
def test_invalid_indexed_specs(kubesim, namespace, spec, expected):
    assert causes(kubesim, namespace, job("bad", suspend=True, **spec)) == expected


def test_every_pod_hostname_must_be_a_dns_label(kubesim, namespace):
    name = "a" * 62
    body = indexed(name, completions=10, suspend=True)
    assert causes(kubesim, namespace, body) == [
        (
            "metadata.name",
            INVALID,
            f'Invalid value: "{name}": will not able to create pod with invalid DNS label: '
            f"{name}-9",
        )
    ]


def test_defaults(batch_v1, namespace):
    queue = batch_v1.create_namespaced_job(namespace, job("queue", suspend=True, parallelism=2))
    assert queue.spec.completions is None and queue.spec.completion_mode == "NonIndexed"
    set_limit = indexed("lim", completions=2, suspend=True, backoffLimitPerIndex=0, backoffLimit=3)
    assert batch_v1.create_namespaced_job(namespace, set_limit).spec.backoff_limit == 3


def test_updates_keep_the_mode_and_move_completions_with_parallelism(batch_v1, namespace):
    batch_v1.create_namespaced_job(
        namespace, indexed("up", completions=3, parallelism=3, suspend=True, backoffLimitPerIndex=1)
    )
    merge = {"_content_type": "application/merge-patch+json"}
    status, error = api_error(
        batch_v1.patch_namespaced_job,
        "up",
        namespace,
        {"spec": {"completionMode": "NonIndexed"}},
        **merge,
    )
    assert status == 422
    assert [(c["field"], c["message"]) for c in error["details"]["causes"]] == [
        ("spec.backoffLimitPerIndex", "Invalid value: 1: requires indexed completion mode"),
        ("spec.completionMode", 'Invalid value: "NonIndexed": field is immutable'),
    ]
    status, error = api_error(
        batch_v1.patch_namespaced_job,
        "up",
        namespace,
        {"spec": {"backoffLimitPerIndex": 2}},
        **merge,
    )
    assert status == 422 and error["details"]["causes"][0]["field"] == "spec.backoffLimitPerIndex"
    status, error = api_error(
        batch_v1.patch_namespaced_job, "up", namespace, {"spec": {"completions": 4}}, **merge
    )
    assert status == 422
    assert error["message"] == (
        'Job.batch "up" is invalid: spec.completions: Invalid value: 4: can only be modified in '
        "tandem with spec.parallelism"
    )
    both = {"spec": {"completions": 5, "parallelism": 5}}
    patched = batch_v1.patch_namespaced_job("up", namespace, both, **merge)
    assert (patched.spec.completions, patched.spec.parallelism) == (5, 5)
