"""`ktr` as a user runs it: the installed script in a subprocess, against a private local
cloud (one per module that asks for it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.local.config import isolated_env
from infra.local.stack import read_env_file
from tests.local.test_stack import descendants, start_stack, stop_stack

KTR = Path(sys.executable).parent / "ktr"
# Accounts with the default quota lend no Spot capacity: a test's account with a Spot quota
# of its own waits once that is used up, whichever other accounts the stack has by then.
NO_SPOT_TO_LEND = {"DEFAULT_QUOTA": '{"spot": {"pods": "0"}}'}
RUN_SECONDS = 300  # a hung ktr fails its test instead of the whole run


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def ktr_env(api: str | None, cloud: dict[str, str] | None = None) -> dict[str, str]:
    """ktr's environment: the API's address, and with `cloud` (its env file) the issuer's
    key too, as in a shell where `.local-cloud/env` was sourced."""
    env = {k: v for k, v in os.environ.items() if k not in ("KTR_API_URL", "KTR_DEBUG")}
    if api is not None:
        env["KTR_API_URL"] = api
    if cloud is not None:
        env["LOCAL_ISSUER_KEY"] = cloud["LOCAL_ISSUER_KEY"]
    return env


def run_ktr(*args: str, api: str | None, cwd: Path, env: dict[str, str] | None = None) -> Result:
    assert KTR.exists(), f"{KTR} is missing: `pip install -e .` (make does it) installs ktr"
    done = subprocess.run(
        [str(KTR), *args],
        cwd=cwd,
        env=env if env is not None else ktr_env(api),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`make run`'s stack on free ports; stopped at the end, leaving no process behind."""
    state = tmp_path_factory.mktemp("cloud") / "state"
    env = isolated_env(
        state, GC_BUCKET_NAME="cli-bucket", JOB_SYNCHRONIZATION_INTERVAL="2", **NO_SPOT_TO_LEND
    )
    stack = start_stack(state, env)
    # Read its output all along: a full pipe would stop the stack.
    assert stack.stdout is not None
    drain = threading.Thread(target=stack.stdout.read, daemon=True)
    drain.start()
    spawned: set[int] = set()
    try:
        spawned = descendants(stack.pid)
        yield read_env_file(state / "env")
    finally:
        stop_stack(stack, spawned)
    assert stack.returncode == 0
