"""A terminated container's message: the file at terminationMessagePath, or, with
FallbackToLogsOnError and a failure, the tail of its log (80 lines, 2048 bytes)."""

from __future__ import annotations

from tests.nodeagent.helpers import container, pod, pod_phase, statuses, wait_for


def ended(core_v1, namespace, name, main):
    core_v1.create_namespaced_pod(namespace, pod(name, main))
    done = wait_for(pod_phase(core_v1, namespace, name, "Succeeded", "Failed"))
    return statuses(done)["main"]["state"]["terminated"]


def fallback(**env) -> dict:
    main = container(**env)
    main["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return main


def test_log_tail_of_a_failed_container(core_v1, namespace):
    # 100 lines of 30 bytes: the last 80 are 2400 bytes, of which the last 2048 remain.
    script = "for i in $(seq 1 100); do printf 'line %024d\\n' $i; done; exit 2"
    term = ended(core_v1, namespace, "tail", fallback(KUBESIM_SH=script))
    assert term["exitCode"] == 2
    lines = "".join(f"line {i:024d}\n" for i in range(1, 101))
    assert term["message"] == lines[-2048:]
    assert len(term["message"]) == 2048


def test_fewer_than_eighty_lines_whole(core_v1, namespace):
    script = "echo starting; echo 'stager: input rejected: bad zip' >&2; exit 64"
    term = ended(core_v1, namespace, "short", fallback(KUBESIM_SH=script))
    assert term["message"] == "starting\nstager: input rejected: bad zip\n"


def test_only_the_last_eighty_lines(core_v1, namespace):
    script = "for i in $(seq 1 100); do echo $i; done; exit 1"
    term = ended(core_v1, namespace, "lines", fallback(KUBESIM_SH=script))
    assert term["message"] == "".join(f"{i}\n" for i in range(21, 101))


def test_success_has_no_message(core_v1, namespace):
    term = ended(core_v1, namespace, "fine", fallback(KUBESIM_SH="echo all good"))
    assert term["exitCode"] == 0 and "message" not in term


def test_simulated_container_log(core_v1, namespace):
    main = fallback(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=5, KUBESIM_LOG="it broke")
    assert ended(core_v1, namespace, "sim", main)["message"] == "it broke\n"


def test_default_policy_keeps_the_log_out(core_v1, namespace):
    term = ended(core_v1, namespace, "file", container(KUBESIM_SH="echo noisy; exit 3"))
    assert "message" not in term


def test_termination_file_wins(core_v1, namespace):
    script = "echo noisy; printf 'from the file' > /dev/termination-log; exit 3"
    term = ended(core_v1, namespace, "msg", fallback(KUBESIM_SH=script))
    assert term["message"] == "from the file"
    custom = container(KUBESIM_SH="printf done > /tmp/end-note")
    custom["terminationMessagePath"] = "/tmp/end-note"
    assert ended(core_v1, namespace, "custom", custom)["message"] == "done"
