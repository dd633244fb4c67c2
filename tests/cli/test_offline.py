"""`ktr` without a local cloud: an API that is down, usage errors, and the pieces that
need no server (the --params expansion, the API's field errors flattened)."""

from __future__ import annotations

import socket
from pathlib import Path

from cli.errors import flatten_fields
from cli.params import JobSpec, default_base_name, expand, substitute
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


def test_rows_fill_placeholders_in_the_command_and_env_only():
    spec = JobSpec(
        image="alpine:3",
        command=("sh", "-c", "echo {sample} {missing} {'a': 1}"),
        env=(("SAMPLE", "{sample}.fq"), ("FIXED", "x")),
    )
    jobs = expand(spec, [{"sample": "s1"}, {"sample": "s2"}], "run")
    assert [job.name for job in jobs] == ["run-1", "run-2"]
    assert jobs[1].command == ("sh", "-c", "echo s2 {missing} {'a': 1}")
    assert jobs[0].env == (("SAMPLE", "s1.fq"), ("FIXED", "x"))
    assert substitute("{a}{b}", {"a": "1", "b": None}) == "1"  # type: ignore[dict-item]


def test_a_default_base_name_leaves_room_for_the_row_number():
    name = default_base_name("gcr.io/" + "very-long-project/" * 5 + "image:v1", 1527122339156)
    assert name.endswith("-1527122339156")
    assert len(f"{name}-999999") <= 55
    assert default_base_name("python:3.11", 1).startswith("python-3-11-")


def test_field_errors_are_flattened_to_dotted_paths():
    data = {"job_parameters": {"resources": {"limits": {"memory": "Bad"}}}, "name": "Too long"}
    assert flatten_fields(data) == {
        "job_parameters.resources.limits.memory": "Bad",
        "name": "Too long",
    }
    assert flatten_fields("") == {}
