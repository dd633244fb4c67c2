"""Start local servers as process groups, wait until they answer, and stop them whole.

Every server runs under a tiny supervisor (this file run as a script) that leads a new
session. A server's processes are the supervisor, everything descended from it, and
everyone in the sessions those processes lead: `gcloud emulators ... start` moves itself
and its JVM into a process group of their own, which a plain killpg would miss, and the node agent
runs each pod's host process in a session of its own. The supervisor is a child subreaper
(PR_SET_CHILD_SUBREAPER), so a process whose parent died stays in its tree instead of
moving to init. It also asks the kernel to signal it when its parent dies
(PR_SET_PDEATHSIG), and then takes its processes down, so even a parent killed with
SIGKILL leaves nothing behind.

Stopping is bounded: SIGTERM (and SIGCONT, for a stopped process) to every process at
once, SIGKILL to whatever is left after a grace period, then at most `KILL_WAIT` seconds
more. A server that ignores SIGTERM, hangs, or has children in other sessions costs its
grace period, never more.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

STOP_POLL = 0.05  # seconds between two looks at what is still running
KILL_WAIT = 1.0  # seconds to wait for processes to vanish after SIGKILL
SUPERVISOR_GRACE = 5.0  # seconds a supervisor told to stop gives its processes


class StartError(RuntimeError):
    """A server did not come up; the message names it and points at its log."""


class StartCancelledError(RuntimeError):
    """A stop was requested while waiting for a server to come up."""


class StopSignal:
    """A stop request that SIGTERM and SIGINT set, and any thread may wait on.

    Python runs a signal handler between two bytecodes of the main thread, wherever it is:
    inside a `with lock:` block, or inside another handler. A handler that calls
    `threading.Event.set()` then waits forever for the Event's lock that its own thread
    already holds. That is what kept `make run` from ever stopping now and then: SIGTERM to
    its process group reaches make and Python at once, make forwards a second SIGTERM, and
    it arrived while the first one's handler held the lock. This handler takes no lock: it
    records the signal and writes a byte to a pipe that `wait` selects on.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def install(self, signums: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> StopSignal:
        """Make `signums` set this request (from the main thread)."""
        for signum in signums:
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        try:
            os.write(self._write, b"\0")
        except OSError:  # the pipe is full: a byte is there already
            pass

    def set(self) -> None:
        """Request a stop without a signal."""
        self._handle(0, None)

    def is_set(self) -> bool:
        return self.signum is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds (None: for ever) for a stop; True once requested."""
        if not self.is_set():
            # The pipe is never drained: once a byte is in it, every wait returns at once.
            select.select([self._read], [], [], timeout)
        return self.is_set()


LOWEST_PORT = 20000


def _ephemeral_ports() -> tuple[int, int]:
    """The range the kernel takes source ports of outgoing connections from."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, chosen below the kernel's
    ephemeral range: a port from that range (what binding port 0 gives) may be taken by an
    outgoing connection's source port before the server that was meant to have it binds."""
    low, _ = _ephemeral_ports()
    for _ in range(200):
        port = random.randrange(LOWEST_PORT, low) if low - LOWEST_PORT > 1000 else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port found")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class ProcessTable:
    """The parent and the session of every live process, from one pass over /proc.

    A zombie is left out: it is already dead, and only waits for a parent to reap it.
    """

    parent: dict[int, int]
    session: dict[int, int]

    @classmethod
    def read(cls) -> ProcessTable:
        parent, session = {}, {}
        with os.scandir("/proc") as entries:
            pids = [entry.name for entry in entries if entry.name.isdigit()]
        for name in pids:
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    text = stat.read()
            except OSError:
                continue
            # Fields after the parenthesised command: state ppid pgrp session ...
            fields = text[text.rfind(b")") + 2 :].split()
            if len(fields) > 3 and fields[0] != b"Z":
                parent[int(name)] = int(fields[1])
                session[int(name)] = int(fields[3])
        return cls(parent, session)

    def descendants(self, root: int) -> set[int]:
        children: dict[int, list[int]] = {}
        for pid, ppid in self.parent.items():
            children.setdefault(ppid, []).append(pid)
        found: set[int] = set()
        todo = [root]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found

    def tree(self, root: int | None, sessions: set[int]) -> set[int]:
        """`root` and its descendants (none for None), and every process in `sessions`.

        Adds the session of each descendant to `sessions`: a process that later leaves the
        tree (its parent dies and it moves to init) is still found by its session.
        """
        found: set[int] = set()
        if root is not None and root in self.parent:
            found = self.descendants(root) | {root}
            sessions.update(self.session[pid] for pid in found)
        found.update(pid for pid, sid in self.session.items() if sid in sessions)
        return found


def session_members(sid: int) -> list[int]:
    """Pids of every live process in session `sid` (read from /proc)."""
    return [pid for pid, session in ProcessTable.read().session.items() if session == sid]


def _send(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def terminate(
    groups: Sequence[Callable[[ProcessTable], set[int]]],
    grace: float,
    *,
    reap: Callable[[], None] = lambda: None,
    kill_wait: float = KILL_WAIT,
) -> list[int]:
    """Stop every process of every group, in at most `grace` + `kill_wait` seconds.

    Each group is a function giving its live processes in a process table. Every process
    gets SIGTERM, then SIGCONT so that a stopped one can act on it, as soon as it is seen
    (a process forked during the stop too); after `grace` seconds, each group still running
    gets SIGKILL, repeated until it is gone or `kill_wait` seconds have passed. `reap` is
    called on each pass, to collect the caller's own dead children. Returns the indices of
    the groups that had to be killed.
    """
    deadline = time.monotonic() + grace
    pending = list(range(len(groups)))
    termed: set[int] = set()
    while True:
        reap()
        table = ProcessTable.read()
        running = []
        for index in pending:
            members = groups[index](table)
            if members:
                running.append(index)
                fresh = members - termed
                _send(fresh, signal.SIGTERM)
                _send(fresh, signal.SIGCONT)
                termed |= fresh
        pending = running
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(STOP_POLL)
    killed = list(pending)
    deadline = time.monotonic() + kill_wait
    while pending:
        table = ProcessTable.read()
        running = []
        for index in pending:
            members = groups[index](table)
            if members:
                running.append(index)
                _send(members, signal.SIGKILL)
        pending = running
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(STOP_POLL / 2)
        reap()
    reap()
    return killed


def stop_servers(servers: Sequence[ServerProcess], grace: float) -> list[ServerProcess]:
    """Stop `servers` all at once (see `terminate`); returns those that needed SIGKILL."""

    def reap() -> None:
        for server in servers:
            server.popen.poll()

    killed = terminate([server.members for server in servers], grace, reap=reap)
    return [servers[index] for index in killed]


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
    """One supervised server: its processes, its log, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    # Sessions seen among the server's processes; the supervisor leads the first one.
    sessions: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.sessions.add(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def members(self, table: ProcessTable | None = None) -> set[int]:
        """The server's live processes: the supervisor, its descendants, and everyone in
        their sessions."""
        table = table or ProcessTable.read()
        # Until the supervisor is reaped its pid cannot be reused, so its tree is ours.
        root = self.popen.pid if self.popen.returncode is None else None
        return table.tree(root, self.sessions)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM every process of the server, SIGKILL whatever is left after `timeout`
        seconds; False when SIGKILL was needed."""
        return not stop_servers([self], timeout)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    """Start `argv` under a supervisor in a new session, output to `log_dir/name.log`.

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


def wait_until_ready(
    proc: ServerProcess,
    ready: Callable[[], bool],
    timeout: float,
    *,
    stop: StopSignal | None = None,
) -> None:
    """Poll `ready` until it is true; fail early if the process exits, and give up with
    StartCancelledError as soon as `stop` is set."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            raise StartCancelledError(f"stop requested while {proc.name} was starting")
        if not proc.alive():
            raise StartError(
                f"{proc.name} exited with code {proc.popen.returncode} before it was ready; "
                f"log {proc.log_path}:\n{proc.log_tail()}"
            )
        if ready():
            return
        if stop is not None:
            stop.wait(0.1)
        else:
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

    def wait(self, stop: StopSignal | None = None) -> ServerProcess:
        """The running server; a server that fails to start is stopped before StartError.
        On StartCancelledError the caller still owns the server and must stop it."""
        try:
            wait_until_ready(self.proc, self.ready, self.timeout, stop=stop)
        except StartError:
            self.proc.stop()
            raise
        return self.proc


def _reap_children(child: int, codes: dict[int, int]) -> None:
    """Collect every dead child of this process (it adopts orphans), without blocking;
    the exit code of `child` goes to `codes`."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid == child:
            codes[pid] = os.waitstatus_to_exitcode(status)


def _supervise(argv: list[str], parent: int) -> int:
    """Run `argv` and take all its processes down on SIGTERM/SIGINT, when `parent` dies,
    or when it exits itself."""
    me = os.getpid()
    sessions = {os.getsid(0)}
    codes: dict[int, int] = {}
    child = -1
    stopping = False

    def mine(table: ProcessTable) -> set[int]:
        return table.tree(me, sessions) - {me}

    def take_down(grace: float) -> None:
        terminate([mine], grace, reap=lambda: _reap_children(child, codes))

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        take_down(SUPERVISOR_GRACE)
        sys.exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if not _die_with_parent(parent):
        return 128 + signal.SIGTERM
    # Orphans of the server (the node agent's pods when it dies) become our children.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    popen = subprocess.Popen(argv)
    child = popen.pid
    while child not in codes:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if pid == child:
            codes[pid] = os.waitstatus_to_exitcode(status)
    popen.returncode = code = codes.get(child, 0)
    if not stopping:
        # The server exited on its own: take down whatever it left behind.
        take_down(0)
    return code


if __name__ == "__main__":
    if len(sys.argv) < 4 or not sys.argv[1].isdigit() or sys.argv[2] != "--":
        sys.exit("usage: procs.py PARENT_PID -- COMMAND [ARG...]")
    sys.exit(_supervise(sys.argv[3:], int(sys.argv[1])))
