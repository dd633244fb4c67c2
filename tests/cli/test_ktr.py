"""`ktr` end to end on the local cloud, run as a user runs it: jobs submitted from a
directory (inline and through an upload), waited for, their output fetched; failures,
kills, logs, lists, --params rows and the API's refusals as the user sees them."""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import KTR, RUN_SECONDS, Result, ktr_env, run_ktr
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow
COPY = "import shutil; shutil.copytree('/input', '/output', dirs_exist_ok=True)"


@pytest.fixture
def ktr(cloud: dict[str, str], tmp_path: Path) -> Any:
    """ktr in a shell where the local cloud's env is sourced: its API, its issuer's key."""
    env = ktr_env(cloud["API_URL"], cloud)

    def run(*args: str) -> Result:
        return run_ktr(*args, api=cloud["API_URL"], cwd=tmp_path, env=env)

    return run


def job_id(result: Result) -> str:
    first = result.out.splitlines()[0]
    return str(uuid.UUID(first))


def status(ktr: Any, ident: str) -> dict[str, Any]:
    shown = ktr("status", ident, "--json")
    assert shown.code == 0, shown.err
    job: dict[str, Any] = json.loads(shown.out)
    return job


def submit_copy(ktr: Any, source: Path, out: Path) -> Result:
    """`ktr submit SOURCE --wait --fetch OUT` of a job that copies /input to /output."""
    result: Result = ktr(
        "submit", str(source), "--image", "python:3.11", "--wait", "--fetch", str(out),
        "--", "python", "-c", COPY,
    )  # fmt: skip
    return result


def test_a_small_directory_goes_inline_and_its_output_comes_back(ktr, tmp_path):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "greeting.txt").write_text("hello\n")
    (source / "sub" / "data.bin").write_bytes(bytes(range(256)))
    out = tmp_path / "out"

    done = submit_copy(ktr, source, out)

    assert done.code == 0, done.err
    assert (out / "greeting.txt").read_text() == "hello\n"
    assert (out / "sub" / "data.bin").read_bytes() == bytes(range(256))
    job = status(ktr, job_id(done))
    assert job["status"] == "succeeded"
    assert "input_upload" not in job["job_parameters"]  # sent inline
    assert "succeeded" in done.err  # the transitions as they happened
    shown = ktr("status", job["id"])
    assert shown.code == 0
    assert "timeline" in shown.out and "container started" in shown.out
    assert "-> succeeded" in shown.out.rstrip().splitlines()[-1]  # the last transition


def test_a_large_directory_goes_through_the_upload(ktr, tmp_path):
    source = tmp_path / "big"
    source.mkdir()
    payload = os.urandom(3 * 1024 * 1024)  # random: the zip stays over the inline limit
    (source / "random.bin").write_bytes(payload)
    out = tmp_path / "out"

    done = submit_copy(ktr, source, out)

    assert done.code == 0, done.err
    assert (out / "random.bin").read_bytes() == payload
    job = status(ktr, job_id(done))
    assert job["job_parameters"].get("input_upload") is True


def test_a_failed_job_exits_1_with_its_reason_exit_code_and_log(ktr):
    script = "import sys; print('working on it'); print('boom: no such sample'); sys.exit(3)"

    done = ktr(
        "submit",
        "--image",
        "python:3.11",
        "--name",
        "cli-fails",
        "--wait",
        "--",
        "python",
        "-c",
        script,
    )

    assert done.code == 1, done.err
    assert "cli-fails failed: Error" in done.err
    assert "exit code 3" in done.err
    assert "boom: no such sample" in done.err
    # It ran for what its container ran, as Kubernetes records it (whole seconds), however
    # late its failure was recorded.
    shown = ktr("status", job_id(done))
    ran = re.search(r"ran for\s+(\d+\.\d)s", shown.out)
    assert ran is not None and float(ran.group(1)) <= 1.0, shown.out
    # A job's name serves wherever its id does.
    by_name = ktr("status", "cli-fails", "--json")
    assert by_name.code == 0 and by_name.json_lines()[0]["id"] == job_id(done)
    assert "boom: no such sample" in ktr("logs", "cli-fails").out
    unknown = ktr("status", "no-job-is-named-so")
    assert unknown.code == 3 and "No job is named 'no-job-is-named-so'" in unknown.err

    # --logs: the log on stdout as it comes (once), and then no tail on stderr.
    followed = ktr(
        "submit",
        "--image",
        "python:3.11",
        "--name",
        "cli-fails-logged",
        "--wait",
        "--logs",
        "--",
        "python",
        "-c",
        script,
    )
    assert followed.code == 1, followed.err
    assert followed.out.count("boom: no such sample\n") == 1, followed.out
    assert "exit code 3" in followed.err and "boom" not in followed.err


def test_list_json_follows_status_and_account(ktr):
    account = f"acct-{uuid.uuid4().hex[:8]}"
    done = ktr(
        "submit",
        "--image",
        "python:3.11",
        "--account",
        account,
        "--wait",
        "--",
        "python",
        "-c",
        "print(1)",
    )
    assert done.code == 0, done.err
    ident = job_id(done)

    listed = ktr("list", "--status", "succeeded", "--account", account, "--json", "--all")
    assert listed.code == 0, listed.err
    assert [job["id"] for job in listed.json_lines()] == [ident]
    assert listed.json_lines()[0]["account_id"] == account

    table = ktr("list", "--status", "succeeded", "--account", account)
    assert table.code == 0 and ident in table.out
    none = ktr("list", "--status", "failed", "--account", account, "--json")
    assert (none.code, none.out) == (0, "")

    # Without --status: the account's jobs of every status, the newest first.
    failed = ktr("submit", "--image", "python:3.11", "--account", account, "--wait",
                 "--", "python", "-c", "raise SystemExit(3)")  # fmt: skip
    assert failed.code == 1, failed.err
    recent = ktr("list", "--account", account, "--json")
    assert [job["id"] for job in recent.json_lines()] == [job_id(failed), ident]
    assert [job["status"] for job in recent.json_lines()] == ["failed", "succeeded"]


def test_logs_of_a_finished_job_and_followed_while_it_runs(ktr):
    script = "import time; print('first line', flush=True); time.sleep(3); print('second line')"
    started = ktr("submit", "--image", "python:3.11", "--", "python", "-c", script)
    assert started.code == 0, started.err
    ident = job_id(started)

    followed = ktr("logs", ident, "-f")

    assert followed.code == 0, followed.err
    assert followed.out.count("first line") == 1, followed.out  # each line once
    assert followed.out.count("second line") == 1, followed.out
    assert followed.out.index("first line") < followed.out.index("second line")
    saved = ktr("logs", ident, "--json")
    assert json.loads(saved.out)["complete"] is True
    assert ktr("logs", ident, "--tail", "1").out == "second line\n"


def test_kill_of_a_sleeping_job_makes_wait_exit_2(ktr, cloud, tmp_path):
    started = ktr(
        "submit", "--image", "python:3.11", "--", "python", "-c", "import time; time.sleep(600)"
    )
    assert started.code == 0, started.err
    ident = job_id(started)
    waiting = subprocess.Popen(
        [str(KTR), "wait", ident],
        cwd=tmp_path,
        env=ktr_env(cloud["API_URL"], cloud),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while status(ktr, ident)["status"] != "running":
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.5)

        killed = ktr("kill", ident)

        assert killed.code == 0, killed.err
        assert "killed" in killed.out
        _, err = waiting.communicate(timeout=RUN_SECONDS)
        assert waiting.returncode == 2, err
        assert "was killed" in err
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert status(ktr, ident)["status"] == "killed"


INJECTIONS = [
    "$(echo pwned > /output/pwned)",
    "`echo pwned > /output/pwned`",
    "'); open('/output/pwned', 'w') #",
]


def test_params_make_one_array_job_a_task_per_row(ktr, tmp_path):
    """Each row's values reach its task as literal text: as a variable, as an argument that
    is exactly {column}, and in an --env value. None of them runs."""
    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["word", "count", "value"])
        table.writerows(zip(["alpha", "beta", "gamma"], ["1", "2", "3"], INJECTIONS, strict=True))
    script = (
        "import os, pathlib, sys; out = pathlib.Path('/output'); "
        "(out / 'w.txt').write_text(os.environ['WORD'] + ' ' + os.environ['count']); "
        "(out / 'argv.txt').write_text(sys.argv[1]); "
        "(out / 'env.txt').write_text(os.environ['value'])"
    )
    out = tmp_path / "out"

    done = ktr(
        "submit",
        "--params",
        str(rows),
        "--image",
        "python:3.11",
        "--name",
        "cli-rows",
        "--env",
        "WORD={word}",
        "--wait",
        "--fetch",
        str(out),
        "--json",
        "--",
        "python",
        "-c",
        script,
        "{value}",
    )

    assert done.code == 0, done.err
    created, final = done.json_lines()
    assert created["name"] == "cli-rows" and created["job_parameters"]["task_count"] == 3
    assert final["status"] == "succeeded"
    assert final["tasks"]["succeeded"] == 3 and len(final["task_output_urls"]) == 3
    expected = zip(["alpha 1", "beta 2", "gamma 3"], INJECTIONS, strict=True)
    for index, (word, value) in enumerate(expected):
        task = out / str(index)
        assert sorted(path.name for path in task.iterdir()) == ["argv.txt", "env.txt", "w.txt"]
        assert (task / "w.txt").read_text() == word
        assert (task / "argv.txt").read_text() == value
        assert (task / "env.txt").read_text() == value


def test_a_value_inside_a_program_is_refused_before_anything_is_sent(ktr, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("sample\nx\n")
    args = ["submit", "--params", str(rows), "--image", "alpine:3", "--", "sh", "-c"]
    refused = ktr(*args, "echo {sample}")
    assert refused.code == 3, refused
    assert "{sample} must be a whole argument" in refused.err
    assert '"$sample" in sh' in refused.err


def test_a_refused_field_is_named_with_its_option(ktr):
    refused = ktr("submit", "--image", "python:3.11", "--memory", "lots", "--", "true")

    assert refused.code == 3
    assert refused.out == ""
    assert refused.err.startswith("ktr: InvalidParameters")
    assert "job_parameters.resources.limits.memory (--memory): Must be a positive" in refused.err

    as_json = ktr("submit", "--image", "python:3.11", "--memory", "lots", "--json", "--", "true")
    assert as_json.code == 3
    answer = json.loads(as_json.out)
    assert answer["error"] == "InvalidParameters"
    assert "job_parameters.resources.limits.memory" in answer["fields"]


def test_an_unknown_job_is_an_api_error(ktr):
    missing = ktr("status", str(uuid.uuid4()))
    assert missing.code == 3
    assert missing.err.startswith("ktr: DoesNotExist: Batch job")


def test_the_api_address_comes_from_the_checkouts_local_cloud_env(cloud, tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / ".local-cloud").mkdir(parents=True)
    (checkout / ".local-cloud" / "env").write_text(
        f"# Written by `make run`\nexport API_URL='{cloud['API_URL']}'\n"
        f"export LOCAL_ISSUER_KEY='{cloud['LOCAL_ISSUER_KEY']}'\n"
    )
    inside = checkout / "some" / "dir"
    inside.mkdir(parents=True)

    found = run_ktr("list", "--json", api=None, cwd=inside)
    assert found.code == 0, found.err

    elsewhere = run_ktr("list", api=None, cwd=tmp_path)
    assert elsewhere.code == 3
    assert "No API address" in elsewhere.err


# -- callers and accounts ------------------------------------------------------------------


def test_ktr_is_the_operator_unless_told_otherwise(ktr, cloud):
    token = ktr("auth", "token")
    assert token.code == 0, token.err
    claims = json.loads(base64.urlsafe_b64decode(token.out.split(".")[1] + "=="))
    assert claims["email"] == "operator@local" and claims["aud"] == cloud["API_URL"]
    other = ktr("--as", "ana@cli.test", "auth", "token")
    assert json.loads(base64.urlsafe_b64decode(other.out.split(".")[1] + "=="))["email"] == (
        "ana@cli.test"
    )
    link = ktr("ui")
    assert link.out.startswith(f"{cloud['API_URL']}/ui/#token=ey"), link.out


def test_accounts_from_the_command_line(ktr):
    made = ktr("accounts", "create", "cli-team", "--member", "ana@cli.test=admin", "--json")
    assert made.code == 0, made.err
    assert made.json_lines()[0]["members"] == {"ana@cli.test": "admin"}
    added = ktr("--as", "ana@cli.test", "accounts", "set", "cli-team", "bo@cli.test", "viewer")
    assert added.code == 0, added.err
    assert "bo@cli.test" in added.out and "viewer" in added.out
    mine = ktr("--as", "bo@cli.test", "accounts", "list")
    assert mine.code == 0 and "cli-team" in mine.out and "viewer" in mine.out, mine.out

    submitted = ktr("--as", "ana@cli.test", "submit", "--image", "alpine:3", "--", "sleep", "600")
    assert submitted.code == 0, submitted.err
    job = job_id(submitted)
    shown = ktr("--as", "bo@cli.test", "status", job)
    assert shown.code == 0, shown.err
    assert "created by" in shown.out and "ana@cli.test" in shown.out
    refused = ktr("--as", "bo@cli.test", "kill", job)
    assert refused.code == 3
    assert "Forbidden" in refused.err and "cli-team" in refused.err
    hidden = ktr("--as", "eve@cli.test", "status", job)
    assert hidden.code == 3 and "DoesNotExist" in hidden.err
    killed = ktr("--as", "ana@cli.test", "kill", job, "--json")
    assert killed.code == 0 and killed.json_lines()[0]["killed_by"] == "ana@cli.test"

    left = ktr("--as", "bo@cli.test", "accounts", "remove", "cli-team", "bo@cli.test")
    assert left.code == 0, left.err
    assert ktr("--as", "bo@cli.test", "accounts", "list").err.strip() == "No accounts."


def test_without_the_issuer_key_ktr_sends_no_token_and_is_told_why(cloud, tmp_path):
    refused = run_ktr("list", api=cloud["API_URL"], cwd=tmp_path)
    assert refused.code == 3
    assert "Unauthenticated" in refused.err
    asked = run_ktr("--as", "ana@cli.test", "list", api=cloud["API_URL"], cwd=tmp_path)
    assert asked.code == 3 and "issuer key" in asked.err


def test_a_job_waiting_for_its_accounts_quota_says_where_and_why(ktr):
    made = ktr("accounts", "create", "cli-q", "--member", "ana@cli.test=submitter")
    assert made.code == 0, made.err
    quota = ktr("accounts", "quota", "cli-q", "--on-demand", "pods=0", "--spot", "pods=1",
                "--weight", "2")  # fmt: skip
    assert quota.code == 0, quota.err
    assert "on-demand" in quota.out and "fair-sharing weight: 2" in quota.out, quota.out
    refused = ktr("--as", "ana@cli.test", "accounts", "quota", "cli-q", "--weight", "3")
    assert refused.code == 3 and "Forbidden" in refused.err
    submitted = [
        ktr(
            "--as",
            "ana@cli.test",
            "submit",
            "--account",
            "cli-q",
            "--spot",
            "--image",
            "alpine:3",
            "--",
            "sleep",
            "600",
        )  # fmt: skip
        for _ in range(2)
    ]
    assert all(result.code == 0 for result in submitted), [r.err for r in submitted]
    first, second = (job_id(result) for result in submitted)

    def waiting() -> str | None:
        listed = ktr("--as", "ana@cli.test", "list")
        line = next((row for row in listed.out.splitlines() if row.startswith(second)), "")
        return line if "waiting (#1)" in line else None

    wait_for(waiting, what="the second job listed as waiting, first in line")
    shown = ktr("--as", "ana@cli.test", "status", second)
    assert "cli-q, #1 in line" in shown.out, shown.out
    assert "insufficient unused quota for pods in flavor spot" in shown.out, shown.out
    assert "admitted by Kueue" in ktr("status", first).out
    for job in (first, second):
        assert ktr("--as", "ana@cli.test", "kill", job).code == 0
