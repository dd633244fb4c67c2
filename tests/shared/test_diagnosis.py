"""Why a Job failed, from its conditions and its pods' container states."""

from __future__ import annotations

from shared.model.diagnosis import (
    Failure,
    diagnose,
    disrupted,
    finished,
    image_missing,
    user_finished,
    user_pod,
    user_started,
    user_succeeded,
)


def k8s_job(reason: str = "BackoffLimitExceeded", message: str = "") -> dict:
    return {
        "status": {
            "conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": message}
            ]
        }
    }


def pod(created: str, init: list | None = None, main: list | None = None) -> dict:
    return {
        "metadata": {"creationTimestamp": created},
        "status": {"initContainerStatuses": init or [], "containerStatuses": main or []},
    }


def terminated(name: str, code: int, reason: str = "Error", message: str = "") -> dict:
    state = {"exitCode": code, "reason": reason, "startedAt": "2026-01-01T00:00:05Z"}
    if message:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}}


def running(name: str, started: str = "2026-01-01T00:00:10Z") -> dict:
    return {"name": name, "state": {"running": {"startedAt": started}}}


def waiting(name: str, reason: str) -> dict:
    return {"name": name, "image": "nope:1", "state": {"waiting": {"reason": reason}}}


def test_rejected_input_is_named_as_such():
    line = "stager: input rejected: entry '../x' escapes the directory"
    failure = diagnose(
        k8s_job("PodFailurePolicy"),
        [pod("t1", init=[terminated("stage-in", 65, message=line)])],
        retries=3,
    )
    assert (failure.reason, failure.exit_code) == ("InputRejected", 65)
    assert failure.message == f"The stager rejected the input zip: {line}"


def test_missing_input():
    failure = diagnose(k8s_job(), [pod("t1", init=[terminated("stage-in", 66)])], retries=0)
    assert failure.reason == "InputMissing"


def test_deadline_wins_over_the_killed_container():
    failure = diagnose(
        k8s_job("DeadlineExceeded", "Job was active longer than specified deadline"),
        [pod("t1", init=[terminated("job", 0)], main=[terminated("stage-out", 143)])],
        retries=0,
    )
    assert failure.reason == "DeadlineExceeded"
    assert "deadline" in failure.message


def test_oom_exit_code_and_backoff():
    assert (
        diagnose(
            k8s_job(), [pod("t", init=[terminated("job", 137, "OOMKilled")])], retries=0
        ).reason
        == "OOMKilled"
    )
    plain = diagnose(k8s_job(), [pod("t", init=[terminated("job", 3)])], retries=0)
    assert (plain.reason, plain.exit_code) == ("Error", 3)
    assert plain.message == "the job's container exited with code 3"
    retried = diagnose(
        k8s_job(),
        [pod("t1", init=[terminated("job", 4)]), pod("t2", init=[terminated("job", 5)])],
        retries=1,
    )
    assert (retried.reason, retried.exit_code) == ("BackoffLimitExceeded", 5)


def test_image_pull_and_fallback():
    pulled = diagnose(k8s_job(), [pod("t", init=[waiting("job", "ImagePullBackOff")])], retries=0)
    assert pulled.reason == "ImagePullBackOff"
    assert diagnose(k8s_job("Whatever", "m"), [], retries=0).reason == "Whatever"


def test_an_image_that_is_not_there_is_final_and_a_registry_timeout_is_not():
    missing = (
        'Back-off pulling image "pyhton:3.11": ErrImagePull: rpc error: code = NotFound desc = '
        'failed to pull and unpack image "docker.io/library/pyhton:3.11": failed to resolve '
        'reference "docker.io/library/pyhton:3.11": docker.io/library/pyhton:3.11: not found'
    )
    assert image_missing(Failure("ImagePullBackOff", missing))
    denied = (
        "rpc error: code = Unknown desc = failed to pull and unpack image "
        '"docker.io/acme/private:1": pull access denied, repository does not exist or may '
        "require authorization: server message: insufficient_scope"
    )
    assert image_missing(Failure("ErrImagePull", denied))
    assert image_missing(Failure("InvalidImageName", 'invalid reference format: "UPPER"'))
    slow = (
        "rpc error: code = Unknown desc = failed to pull and unpack image "
        '"gcr.io/p/worker:1": failed to do request: Head "https://gcr.io/v2/p/worker": '
        "dial tcp 10.0.0.1:443: i/o timeout"
    )
    assert not image_missing(Failure("ErrImagePull", slow))
    unavailable = "image pull failed for r.example/w because the registry is unavailable"
    assert not image_missing(Failure("ErrImagePull", unavailable))


def test_finished():
    assert finished(k8s_job()) == "Failed"
    assert (
        finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "Complete"
    )
    assert finished({"status": {}}) is None
    assert finished({"status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}}) == (
        "Failed"
    )
    success = {"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}}
    assert finished(success) == "Complete"


def test_a_failed_upload_is_a_cleanup_failure_in_the_stagers_words():
    line = "stager: output conflict: the upload session is gone (HTTP 404)"
    failure = diagnose(
        k8s_job("PodFailurePolicy"),
        [pod("t", init=[terminated("job", 0)], main=[terminated("stage-out", 73, message=line)])],
        retries=2,
    )
    assert (failure.reason, failure.message) == (
        "CleanupFailed",
        f"Uploading the output failed: {line}",
    )


def test_a_volume_past_its_size_limit_is_an_eviction():
    evicted = pod("t", init=[terminated("job", 137)])
    message = 'Usage of EmptyDir volume "output" exceeds the limit "10Gi". '
    evicted["status"].update(phase="Failed", reason="Evicted", message=message)
    failure = diagnose(k8s_job(), [evicted], retries=0)
    assert (failure.reason, failure.message) == ("Evicted", message.strip())


def test_what_the_pods_say_about_a_running_job():
    first = pod("t1", init=[terminated("job", 1)])
    second = pod("t2", init=[running("job")])
    second["metadata"]["name"] = "p2"
    assert user_started([first, second]) == 1767225605000  # the first attempt's start
    assert user_succeeded([first, second]) is False
    assert user_pod([first, second]) is second
    done = pod("t3", init=[terminated("job", 0)], main=[running("stage-out")])
    assert user_succeeded([done]) is True
    waiting_pod = pod("t4", init=[waiting("job", "PodInitializing")])
    assert user_started([waiting_pod]) is None
    assert user_pod([waiting_pod]) is waiting_pod


def test_disrupted_pods_are_named():
    evicted = pod("t", init=[running("job")])
    evicted["metadata"]["name"] = "p1"
    evicted["status"]["conditions"] = [
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    ]
    assert disrupted([evicted, pod("t2")]) == ["p1"]


def test_a_pod_past_its_own_deadline_is_kept_and_named():
    """The kubelet fails it with reason DeadlineExceeded: the Job counts the failure (and
    fails at its backoff limit), the pod and its log stay."""
    late = pod("t", init=[terminated("job", 137)])
    message = "Pod was active on the node longer than the specified deadline"
    late["status"].update(phase="Failed", reason="DeadlineExceeded", message=message)
    failure = diagnose(k8s_job("BackoffLimitExceeded"), [late], retries=0)
    assert (failure.reason, failure.message) == ("DeadlineExceeded", message)


def test_a_user_container_finishes_at_its_last_attempts_end():
    def ended(finished: str) -> dict:
        state = {"exitCode": 3, "startedAt": "2026-01-01T00:00:05Z", "finishedAt": finished}
        return {"name": "job", "state": {"terminated": state}}

    first = pod("a", init=[ended("2026-01-01T00:00:07Z")])
    retry = pod("b", init=[ended("2026-01-01T00:00:09Z")])
    assert user_finished([first, retry]) == user_finished([retry]) == 1767225609000
    assert user_finished([pod("c", init=[running("job")])]) is None
