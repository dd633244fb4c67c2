"""Supervised servers leave nothing behind, even children that change process group or
session, and stop within their grace period whatever they do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from infra.local.procs import (
    KILL_WAIT,
    ServerProcess,
    StartError,
    session_members,
    spawn,
    stop_servers,
    wait_until_ready,
)
from tests.fixtures.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]

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


def wait_gone(sid: int) -> None:
    wait_for(lambda: not session_members(sid), what=f"session {sid} to be empty")


def wait_members(sid: int, count: int) -> None:
    wait_for(lambda: len(session_members(sid)) >= count, what=f"{count} in session {sid}")


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
        cwd=REPO_ROOT,
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


# Ignores SIGTERM, and starts a child in a session of its own that ignores it too, as
# the node agent runs a pod's host process.
STUBBORN_SERVER = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    print("child", child.pid, flush=True)
    time.sleep(600)
    """
)

# Starts a process in a session of its own through a parent that exits at once: the process
# is an orphan before anyone asks to stop the server.
ORPHANING_SERVER = textwrap.dedent(
    """
    import subprocess, sys, time
    code = "import time; time.sleep(600)"
    starter = (
        "import subprocess, sys; "
        f"print(subprocess.Popen([sys.executable, '-c', {code!r}], start_new_session=True, "
        "stdout=subprocess.DEVNULL).pid)"
    )
    orphan = subprocess.run([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    print("child", orphan.stdout.strip(), flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def logged_child(proc: ServerProcess) -> int:
    """The pid the server printed as `child PID`."""

    def logged() -> int | None:
        for line in proc.log_path.read_text().splitlines():
            if line.startswith("child ") and line.split()[1].isdigit():
                return int(line.split()[1])
        return None

    return wait_for(logged, what=f"the child's pid in {proc.log_path}")


def test_sigterm_ignored_in_and_out_of_the_session_costs_the_grace_period_only(tmp_path):
    proc = spawn("stubborn", [sys.executable, "-c", STUBBORN_SERVER], log_dir=tmp_path)
    child = logged_child(proc)
    assert os.getsid(child) != proc.pid, "the child really left the supervisor's session"
    everything = proc.members()
    assert child in everything
    started = time.monotonic()
    clean = proc.stop(timeout=1)
    elapsed = time.monotonic() - started
    assert not clean, "SIGKILL was needed"
    assert elapsed < 1 + KILL_WAIT + 10, elapsed  # the grace period, not forever
    assert not [pid for pid in everything if alive(pid)]


def test_a_process_orphaned_before_the_stop_is_adopted_and_stopped(tmp_path):
    proc = spawn("orphaning", [sys.executable, "-c", ORPHANING_SERVER], log_dir=tmp_path)
    orphan = logged_child(proc)
    assert alive(orphan)
    # The supervisor is a child subreaper: the orphan did not move to init.
    assert int(Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[1]) == proc.pid
    assert proc.stop(timeout=15)
    wait_for(lambda: not alive(orphan), what=f"orphan {orphan} to be gone")


def test_a_stopped_process_gets_to_act_on_its_sigterm(tmp_path):
    proc = spawn(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], log_dir=tmp_path
    )
    wait_members(proc.pid, 2)
    server = next(pid for pid in session_members(proc.pid) if pid != proc.pid)
    os.kill(server, signal.SIGSTOP)
    assert proc.stop(timeout=15), "SIGCONT after SIGTERM: no SIGKILL needed"
    wait_gone(proc.pid)


def test_servers_stopped_together_share_one_grace_period(tmp_path):
    procs = [
        spawn(f"stubborn-{n}", [sys.executable, "-c", STUBBORN_SERVER], log_dir=tmp_path)
        for n in range(3)
    ]
    children = [logged_child(proc) for proc in procs]
    started = time.monotonic()
    killed = stop_servers(procs, 1.0)
    elapsed = time.monotonic() - started
    assert {proc.name for proc in killed} == {proc.name for proc in procs}
    assert elapsed < 1 + KILL_WAIT + 10, elapsed  # the grace period, not forever
    assert not [pid for pid in children if alive(pid)]
    for proc in procs:
        wait_gone(proc.pid)


# The first SIGTERM handler call is interrupted by further SIGTERMs at every call it makes
# (tests/local/nested_signals.py), as when make forwards the SIGTERM its process group got.
STOP_ON_SIGTERM = textwrap.dedent(
    """
    import os, signal, threading
    from infra.local.procs import StopSignal
    stop = StopSignal().install()
    woke = []
    waiter = threading.Thread(target=lambda: woke.append(stop.wait(10)))
    waiter.start()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.wait(10)
    waiter.join()
    print("stopped", stop.signum == signal.SIGTERM, woke, flush=True)
    """
)


def test_the_stop_signal_survives_a_signal_inside_its_own_handler():
    result = subprocess.run(
        [sys.executable, "-m", "tests.local.nested_signals", "-c", STOP_ON_SIGTERM],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped True [True]"
