"""The README's examples run as written: every shell block it marks
`<!-- runnable on make run; prints: TEXT -->` is run by bash from an empty folder (the
checkout's `.venv` and the stack's `.local-cloud` beside it, the env file's variables set,
as after `source .local-cloud/env`) against `make run`'s stack, and must exit 0 and print
TEXT."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.config import isolated_env
from infra.local.stack import read_env_file
from tests.local.test_stack import descendants, start_stack, stop_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"<!-- runnable on make run; prints: (.+?) -->\n```sh\n(.*?)```", re.S)
BLOCKS = MARK.findall((REPO_ROOT / "README.md").read_text())
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`make run`'s stack on free ports; its state folder (env file, kubeconfig)."""
    state = tmp_path_factory.mktemp("readme") / "state"
    stack = start_stack(state, isolated_env(state, GC_BUCKET_NAME="readme-bucket"))
    spawned = descendants(stack.pid)
    try:
        yield state
    finally:
        stop_stack(stack, spawned | descendants(stack.pid))


def test_the_readme_marks_its_examples_runnable():
    assert len(BLOCKS) >= 2, "the three-line session and the API's example"


@pytest.mark.parametrize(
    ("prints", "script"), BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))]
)
def test_a_marked_block_runs_as_written(state: Path, tmp_path: Path, prints: str, script: str):
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / ".local-cloud").symlink_to(state)
    env = {**os.environ, **read_env_file(state / "env")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert prints in done.stdout, done.stdout
