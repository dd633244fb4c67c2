"""`make run`: the whole local cloud comes up on loopback, refuses a second copy, stops clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra.local.config import isolated_env
from infra.local.stack import read_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_make_run_serves_everything_and_leaves_nothing_behind(tmp_path):
    state = tmp_path / "state"
    env = isolated_env(
        state,
        GOOGLE_CLOUD_PROJECT="stack-test",
        GC_BUCKET_NAME="stack-bucket",
        KUBERNETES_NAMESPACE="jobs",
        JOB_SYNCHRONIZATION_INTERVAL="2",
    )
    stack = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not (state / "env").exists():
            assert stack.poll() is None, stack.stdout.read() if stack.stdout else ""
            assert time.monotonic() < deadline, "the local cloud did not come up"
            time.sleep(0.2)
        cloud = read_env_file(state / "env")
        spawned = descendants(stack.pid)

        assert cloud["GOOGLE_CLOUD_PROJECT"] == "stack-test"
        assert cloud["KUBECONFIG"] == str(state / "kubeconfig")
        for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
            assert cloud[name].startswith("127.0.0.1:")
        assert requests.get(f"http://{cloud['FIRESTORE_EMULATOR_HOST']}/", timeout=5).ok
        buckets = requests.get(f"{cloud['STORAGE_EMULATOR_HOST']}/storage/v1/b", timeout=5)
        assert [b["name"] for b in buckets.json()["items"]] == ["stack-bucket"]

        kubectl = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                cloud["KUBECONFIG"],
                "get",
                "namespace",
                "jobs",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert kubectl.stdout.strip() == "namespace/jobs", kubectl.stderr

        api = requests.get(f"http://127.0.0.1:{env['API_PORT']}/batch/", timeout=30)
        assert api.json() == {"data": [], "error": "", "msg": "", "result": True}
        sync_port = int(env["LOCAL_FUNCTIONS_PORT"])  # synchronize_batch_jobs comes first
        sync = requests.post(f"http://127.0.0.1:{sync_port}/", timeout=30)
        assert sync.json()["result"] is True

        second = subprocess.run(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert stack.poll() is None, "the second copy must not disturb the first"
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=60)
        finally:
            if stack.poll() is None:
                os.killpg(stack.pid, signal.SIGKILL)
    assert stack.returncode == 0
    assert not (state / "env").exists()
    assert spawned, "the stack runs its servers as child processes"
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in spawned):
        assert time.monotonic() < deadline, [pid for pid in spawned if alive(pid)]
        time.sleep(0.1)
