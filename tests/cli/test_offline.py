"""`ktr` without a local cloud: an API that is down, usage errors, and the pieces that
need no server (the --params expansion, the API's field errors flattened)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from cli.errors import CliError, flatten_fields
from cli.params import JobSpec, substitute, sweep
from tests.cli.conftest import run_ktr


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_api_that_is_down_is_one_clear_line_and_exit_3(tmp_path: Path):
    url = f"http://127.0.0.1:{closed_port()}"
    for args in (
        ["list", "--api", url],
        ["status", "x", "--api", url],
        ["submit", "--image", "alpine:3", "--api", url, "--", "true"],
    ):
        down = run_ktr(*args, api=None, cwd=tmp_path)
        assert down.code == 3, down
        assert down.err.count("\n") == 1, down.err
        assert down.err.startswith(f"ktr: Cannot reach {url}/batch/")
        assert "connection refused" in down.err


def test_usage_errors_exit_3(tmp_path: Path):
    missing_image = run_ktr("submit", "--", "true", api="http://127.0.0.1:1", cwd=tmp_path)
    assert missing_image.code == 3
    assert "--image" in missing_image.err
    bad_env = run_ktr("submit", "--image", "a", "--env", "NOEQUALS", api=None, cwd=tmp_path)
    assert bad_env.code == 3 and "K=V" in bad_env.err
    not_a_zip = tmp_path / "notes.txt"
    not_a_zip.write_text("hi")
    bad_input = run_ktr(
        "submit", str(not_a_zip), "--image", "a", api="http://127.0.0.1:1", cwd=tmp_path
    )
    assert bad_input.code == 3 and "neither a directory nor a zip" in bad_input.err


def test_every_command_has_an_example_in_its_help(tmp_path: Path):
    for command in ("submit", "status", "list", "logs", "fetch", "kill", "wait"):
        shown = run_ktr(command, "--help", api=None, cwd=tmp_path)
        assert shown.code == 0
        assert "Example" in shown.out and f"ktr {command}" in shown.out, shown.out


INJECTIONS = [
    "$(echo pwned > /tmp/pwned)",
    "`echo pwned`",
    "'); import os; os.system('echo pwned') #",
    '"; echo pwned; "',
    "s 1",
]


def test_rows_become_one_array_job_whose_tasks_read_their_row():
    """Each row's value reaches the command as one literal argument, whatever it holds."""
    spec = JobSpec(
        image="alpine:3",
        command=("printf", "%s|", "{sample}", "{n}", "{missing}", "{'a': 1}", "it's"),
        env=(("SAMPLE", "{sample}.fq"), ("FIXED", "x")),
    )
    rows = [{"sample": value, "n": str(i), "bad-col": "x"} for i, value in enumerate(INJECTIONS)]
    array = sweep(spec, rows)
    assert array.env == (("FIXED", "x"),)
    assert array.task_environments[0] == {
        "n": "0",
        "sample": INJECTIONS[0],
        "SAMPLE": f"{INJECTIONS[0]}.fq",
    }
    assert array.command[:2] == ("/bin/sh", "-c")
    for task in array.task_environments:  # as the pod runs it: sh with the task's variables
        ran = subprocess.run(
            list(array.command), env=task, capture_output=True, text=True, check=True
        )
        assert ran.stdout == f"{task['sample']}|{task['n']}|{{missing}}|{{'a': 1}}|it's|"
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize(
    ("command", "refusal"),
    [
        (("sh", "-c", "echo {sample}"), "{sample} must be a whole argument"),
        (("python3", "-c", "print({sample} * 2)"), "{sample} must be a whole argument"),
        (("run", "--name=pre-{sample}"), "{sample} must be a whole argument"),
        (("sh", "-c", "{sample}"), "{sample} after -c would run each row's value"),
        (("perl", "-e", "{sample}"), "{sample} after -e would run each row's value"),
    ],
)
def test_a_value_is_never_put_inside_a_program(command, refusal):
    with pytest.raises(CliError, match=re.escape(refusal)):
        sweep(JobSpec(image="alpine:3", command=command), [{"sample": "x"}])


def test_braces_that_name_no_column_are_left_alone():
    spec = JobSpec(image="alpine:3", command=("awk", "{print}", "{other}"))
    assert sweep(spec, [{"sample": "x"}]).command == ("awk", "{print}", "{other}")

    assert substitute("{a}{b}", {"a": "1", "b": None}) == "1"  # type: ignore[dict-item]


def test_rows_without_placeholders_keep_the_command():
    spec = JobSpec(image="alpine:3", command=("python3", "run.py"))
    assert sweep(spec, [{"x": "1"}]).command == ("python3", "run.py")
    with pytest.raises(CliError, match="needs a command"):
        sweep(JobSpec(image="alpine:3"), [{"x": "1"}])
    with pytest.raises(CliError, match="no column"):
        sweep(spec, [{"a-b": "1"}])


def test_field_errors_are_flattened_to_dotted_paths():
    data = {"job_parameters": {"resources": {"limits": {"memory": "Bad"}}}, "name": "Too long"}
    assert flatten_fields(data) == {
        "job_parameters.resources.limits.memory": "Bad",
        "name": "Too long",
    }
    assert flatten_fields("") == {}
