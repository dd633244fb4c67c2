"""Supervised servers leave nothing behind, even children that change process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from infra.local.procs import StartError, session_members, spawn, wait_until_ready

# Like `gcloud emulators ... start`: moves itself into a new process group, then starts a
# long-lived child (the JVM) that a killpg of the original group would miss.
ESCAPING_SERVER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    os.setpgid(0, 0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print("child", child.pid, flush=True)
    time.sleep(600)
    """
)


def wait_gone(sid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while session_members(sid):
        assert time.monotonic() < deadline, f"left behind: {session_members(sid)}"
        time.sleep(0.05)


def wait_members(sid: int, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while len(session_members(sid)) < count:
        assert time.monotonic() < deadline, session_members(sid)
        time.sleep(0.05)


def test_stop_takes_down_children_in_other_process_groups(tmp_path):
    proc = spawn("escaping", [sys.executable, "-c", ESCAPING_SERVER], log_dir=tmp_path)
    wait_members(proc.pid, 3)  # supervisor, server, grandchild
    groups = {os.getpgid(pid) for pid in session_members(proc.pid)}
    assert len(groups) == 2, "the server really left the supervisor's process group"
    proc.stop(timeout=5)
    wait_gone(proc.pid)
    assert not proc.alive()


def test_a_parent_killed_with_sigkill_leaves_nothing_behind(tmp_path):
    parent_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from infra.local.procs import spawn
        proc = spawn("escaping", [sys.executable, "-c", {ESCAPING_SERVER!r}],
                     log_dir=Path({str(tmp_path)!r}))
        print(proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    supervisor = int(parent.stdout.readline())
    wait_members(supervisor, 3)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_gone(supervisor)


def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path):
    proc = spawn(
        "broken",
        [sys.executable, "-c", "import sys; print('bad flag --nope'); sys.exit(3)"],
        log_dir=tmp_path,
    )
    with pytest.raises(StartError, match=r"(?s)broken exited with code 3.*bad flag --nope"):
        wait_until_ready(proc, lambda: False, timeout=10)
