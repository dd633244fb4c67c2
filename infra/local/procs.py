"""Start local servers as process groups, wait until they answer, and stop them whole.

Every server runs under a tiny supervisor (this file run as a script) that leads a new
session. Stopping signals every process in that session, not just one process group:
`gcloud emulators ... start` moves itself and its JVM into a group of their own, which a
plain killpg would miss. The supervisor also asks the kernel to signal it when its parent
dies (PR_SET_PDEATHSIG), and then takes its session down, so even a parent killed with
SIGKILL leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A server did not come up; the message names it and points at its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def session_members(sid: int) -> list[int]:
    """Pids of every live process in session `sid` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp session ...
        fields = stat[stat.rfind(")") + 2 :].split()
        # A zombie is already dead; it only waits for a parent that may never reap it.
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def signal_session(sid: int, signum: int, *, spare: int | None = None) -> int:
    """Send `signum` to every process of session `sid` but `spare`; returns how many."""
    sent = 0
    for pid in session_members(sid):
        if pid == spare:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            sent += 1
    return sent


def free_port_block(size: int) -> int:
    """The first of `size` consecutive ports on 127.0.0.1 that nothing listens on."""
    for _ in range(50):
        base = free_port()
        if base + size < 65535 and not any(port_in_use(base + i) for i in range(size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def _die_with_parent(parent: int) -> bool:
    """Ask the kernel for SIGTERM when the thread that started this process exits; False
    when `parent` is already gone (it died before the request was made)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == parent


@dataclass
class ServerProcess:
    """One supervised server: its process group, its log, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the session, then SIGKILL whatever is left after `timeout` seconds."""
        sid = self.popen.pid  # the supervisor leads its session: sid == its pid
        signal_session(sid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while session_members(sid) and time.monotonic() < deadline:
            if self.popen.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=0.1)
            else:
                time.sleep(0.1)
        # The supervisor may be gone while a child that ignored SIGTERM is not.
        signal_session(sid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start `argv` under a supervisor in a new process group, output to `log_dir/name.log`.

    Call it from the main thread: the parent-death signal fires when the spawning thread
    exits. The supervisor asks for that signal itself, first thing: a `preexec_fn` would
    make Python fork rather than spawn, and a fork runs gRPC's fork handlers, which can
    hang forever in a process whose gRPC clients have threads running.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(os.getpid()), "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return ServerProcess(name=name, popen=popen, log_path=log_path)


def http_ok(url: str, timeout: float = 1.0) -> Callable[[], bool]:
    """A readiness check: `url` answers with any status below 500."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status) < 500
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (OSError, ValueError):
            return False

    return check


def tcp_open(port: int) -> Callable[[], bool]:
    """A readiness check: something accepts connections on 127.0.0.1:`port`."""
    return lambda: port_in_use(port)


def wait_until_ready(proc: ServerProcess, ready: Callable[[], bool], timeout: float) -> None:
    """Poll `ready` until it is true; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(
                f"{proc.name} exited with code {proc.popen.returncode} before it was ready; "
                f"log {proc.log_path}:\n{proc.log_tail()}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise StartError(
        f"{proc.name} was not ready after {timeout:.0f} s; log {proc.log_path}:\n{proc.log_tail()}"
    )


@dataclass
class Starting:
    """A server that was spawned but may not answer yet; `wait()` until it does.

    Lets a caller spawn several servers (from the main thread) before waiting on any.
    """

    proc: ServerProcess
    ready: Callable[[], bool]
    timeout: float

    def wait(self) -> ServerProcess:
        try:
            wait_until_ready(self.proc, self.ready, self.timeout)
        except StartError:
            self.proc.stop()
            raise
        return self.proc


def _supervise(argv: list[str], parent: int) -> int:
    """Run `argv` in this session and take the whole session down on SIGTERM/SIGINT, or
    when `parent` dies."""
    sid, me = os.getsid(0), os.getpid()
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop_session(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        signal_session(sid, signal.SIGTERM, spare=me)
        deadline = time.monotonic() + 8
        while len(session_members(sid)) > 1 and time.monotonic() < deadline:
            if child is not None:
                child.poll()  # reap, so a finished child no longer counts
            time.sleep(0.05)
        signal_session(sid, signal.SIGKILL, spare=me)
        if child is not None:
            child.poll()
        sys.exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_session)
    signal.signal(signal.SIGINT, stop_session)
    if not _die_with_parent(parent):
        return 128 + signal.SIGTERM
    child = subprocess.Popen(argv)
    code = child.wait()
    if not stopping:
        # The server exited on its own: take down whatever it left behind.
        signal_session(sid, signal.SIGKILL, spare=me)
    return code


if __name__ == "__main__":
    if len(sys.argv) < 4 or not sys.argv[1].isdigit() or sys.argv[2] != "--":
        sys.exit("usage: procs.py PARENT_PID -- COMMAND [ARG...]")
    sys.exit(_supervise(sys.argv[3:], int(sys.argv[1])))
