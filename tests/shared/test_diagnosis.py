"""Why a Job failed, from its conditions and its pods' container states."""

from __future__ import annotations

from shared.diagnosis import diagnose, finished


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


def terminated(name: str, code: int, reason: str = "Error") -> dict:
    return {"name": name, "state": {"terminated": {"exitCode": code, "reason": reason}}}


def waiting(name: str, reason: str) -> dict:
    return {"name": name, "image": "nope:1", "state": {"waiting": {"reason": reason}}}


def test_rejected_input_is_named_as_such():
    failure = diagnose(
        k8s_job("PodFailurePolicy"), [pod("t1", init=[terminated("stage-in", 65)])], retries=3
    )
    assert (failure.reason, failure.exit_code) == ("InputRejected", 65)


def test_missing_input():
    failure = diagnose(k8s_job(), [pod("t1", init=[terminated("stage-in", 66)])], retries=0)
    assert failure.reason == "InputMissing"


def test_deadline_wins_over_the_killed_container():
    failure = diagnose(
        k8s_job("DeadlineExceeded", "Job was active longer than specified deadline"),
        [pod("t1", main=[terminated("job", 137)])],
        retries=0,
    )
    assert failure.reason == "DeadlineExceeded"
    assert "deadline" in failure.message


def test_oom_exit_code_and_backoff():
    assert (
        diagnose(
            k8s_job(), [pod("t", main=[terminated("job", 137, "OOMKilled")])], retries=0
        ).reason
        == "OOMKilled"
    )
    plain = diagnose(k8s_job(), [pod("t", main=[terminated("job", 3)])], retries=0)
    assert (plain.reason, plain.exit_code) == ("Error", 3)
    retried = diagnose(
        k8s_job(),
        [pod("t1", main=[terminated("job", 4)]), pod("t2", main=[terminated("job", 5)])],
        retries=1,
    )
    assert (retried.reason, retried.exit_code) == ("BackoffLimitExceeded", 5)


def test_image_pull_and_fallback():
    pulled = diagnose(k8s_job(), [pod("t", main=[waiting("job", "ImagePullBackOff")])], retries=0)
    assert pulled.reason == "ImagePullBackOff"
    assert diagnose(k8s_job("Whatever", "m"), [], retries=0).reason == "Whatever"


def test_finished():
    assert finished(k8s_job()) == "Failed"
    assert (
        finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == "Complete"
    )
    assert finished({"status": {}}) is None
