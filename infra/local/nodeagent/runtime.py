"""Running one container: the stager image as a host process, an image the local cloud
stands in for in a bubblewrap sandbox, or a simulation driven by its KUBESIM_* environment.

- The stager image (and KUBESIM_SH in a container of another image) runs as a host
  process: the container's mount paths are rewritten to host directories wherever they
  appear in its arguments and environment.
- python, alpine, busybox, debian, ubuntu and bash images (any registry or tag:
  commands.stand_in) run their real command in a sandbox (sandbox.py) whose root is a
  tmpfs holding the host's /usr and /etc read-only and the pod's volumes at their real
  mount paths, so nothing is rewritten. What runs is the Kubernetes meaning of command
  and args (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/#notes):
  command replaces the image's ENTRYPOINT, args its CMD, `$(VAR)` expanded
  (commands.argv); KUBESIM_SH, when set, runs as `/bin/sh -c` instead. With neither and
  only KUBESIM_* simulation variables, the container is simulated as before.
  resources.limits.memory is a memory cgroup's limit (memcg.py: a kernel OOM kill is
  OOMKilled, 137), or where no cgroup can be made, `prlimit --as` (then a SIGKILL or an
  out-of-memory message in the log is OOMKilled). SIGTERM goes to the command, not to
  bwrap, which would take the sandbox down at once.
- An image whose container sets a KUBESIM_* variable, or that the local cloud lists as
  simulated (LOCAL_SIMULATED_IMAGES), is simulated: KUBESIM_LOG, KUBESIM_RUN_SECONDS,
  KUBESIM_EXIT_CODE, KUBESIM_IGNORE_SIGTERM; KUBESIM_OOMKILLED=1 makes any container end
  OOMKilled. Any other image cannot be pulled (`pullable`; pods.py reports ErrImagePull).

Real processes are what let data actually flow through the pipeline in tests; their
output (stdout and stderr) becomes the container log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from infra.local.nodeagent import commands, memcg, sandbox
from infra.local.nodeagent.clock import Clock

REPO_ROOT = Path(__file__).resolve().parents[3]
POLL_SECONDS = 0.02
CANNOT_RUN = 128  # the exit code a runtime reports for a container it could not start
# What a process says when an address-space limit (prlimit --as) refuses it memory.
OUT_OF_MEMORY = (b"MemoryError", b"Cannot allocate memory", b"out of memory")


@dataclass
class Stopper:
    """Shared by the containers of one pod: set when the pod must stop, with the moment
    (time.monotonic) at which SIGTERM turns into SIGKILL."""

    event: threading.Event = field(default_factory=threading.Event)
    kill_at: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, kill_at: float) -> None:
        with self.lock:
            self.kill_at = min(self.kill_at, kill_at)
        self.event.set()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()


@dataclass(frozen=True)
class Result:
    exit_code: int
    reason: str  # Completed, Error, OOMKilled

    @staticmethod
    def of(code: int) -> Result:
        return Result(code, "Completed" if code == 0 else "Error")


def image_repository(image: str) -> str:
    """`registry/name` without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def is_stager(image: str, stager_image: str | None) -> bool:
    if not stager_image:
        return False
    return image == stager_image or image_repository(image) == image_repository(stager_image)


def map_paths(text: str, mounts: list[tuple[str, Path]]) -> str:
    """Replace each mount path (longest first) by its host directory, as a whole path part."""
    for mount_path, host in sorted(mounts, key=lambda m: len(m[0]), reverse=True):
        mount_path = mount_path.rstrip("/") or "/"
        pattern = r"(?<![\w.-])" + re.escape(mount_path) + r"(?![\w.-])"
        replacement = str(host).replace("\\", "\\\\")
        text = re.sub(pattern, replacement, text)
    return text


@dataclass
class Container:
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: dict[str, str]  # the container's own variables, resolved
    mounts: list[tuple[str, Path]]  # (mountPath, host directory)
    log_path: Path
    work_dir: Path  # on the host: where a host process runs
    read_only: frozenset[str] = frozenset()  # mount paths mounted read-only
    working_dir: str = ""  # the container's workingDir, in the sandbox
    memory_limit: int | None = None  # resources.limits.memory, bytes


class Runtime:
    def __init__(
        self, clock: Clock, stager_image: str | None, simulated_images: tuple[str, ...] = ()
    ) -> None:
        self.clock = clock
        self.stager_image = stager_image
        self.simulated = {image_repository(image) for image in simulated_images}

    def pullable(self, image: str, env: dict[str, str]) -> bool:
        """Whether the image is one this node has: the stager, a stand-in, one listed as
        simulated, or one its container asks to simulate (a KUBESIM_* variable). Any other
        image, a misspelled one included, cannot be pulled, as on GKE."""
        repository = image_repository(image)
        return (
            is_stager(image, self.stager_image)
            or commands.stand_in(repository) is not None
            or repository in self.simulated
            or any(name.startswith(commands.SIMULATION_PREFIX) for name in env)
        )

    def run(self, container: Container, stopper: Stopper) -> Result:
        env = container.env
        image = commands.stand_in(image_repository(container.image))
        if is_stager(container.image, self.stager_image) and (container.command or container.args):
            argv = [map_paths(a, container.mounts) for a in container.command + container.args]
            if argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            result = self._process(
                argv, container, stopper, cwd=REPO_ROOT, env=_host_env(container)
            )
        elif image is not None and not commands.simulated(container.command, container.args, env):
            result = self._sandboxed(container, image, stopper)
        elif "KUBESIM_SH" in env:
            script = map_paths(env["KUBESIM_SH"], container.mounts)
            argv = ["/bin/sh", "-c", script]
            result = self._process(
                argv, container, stopper, cwd=container.work_dir, env=_host_env(container)
            )
        else:
            result = self._simulate(container, stopper)
        if env.get("KUBESIM_OOMKILLED") == "1":
            return Result(137, "OOMKilled")
        return result

    def _simulate(self, container: Container, stopper: Stopper) -> Result:
        env = container.env
        with container.log_path.open("a") as log:
            if env.get("KUBESIM_LOG"):
                text = env["KUBESIM_LOG"]
                log.write(text if text.endswith("\n") else text + "\n")
        try:
            seconds = float(env.get("KUBESIM_RUN_SECONDS", "1"))
            code = int(env.get("KUBESIM_EXIT_CODE", "0"))
        except ValueError:
            seconds, code = 1.0, 0
        if not stopper.event.wait(self.clock.wall(seconds)):
            return Result.of(code)
        if env.get("KUBESIM_IGNORE_SIGTERM") != "1":
            return Result.of(143)
        while time.monotonic() < stopper.kill_at:
            time.sleep(min(POLL_SECONDS, max(0.0, stopper.kill_at - time.monotonic())))
        return Result.of(137)

    def _sandboxed(self, container: Container, image: commands.Image, stopper: Stopper) -> Result:
        """A stand-in image's command in a bubblewrap sandbox, its memory limited by a
        cgroup (or, failing that, prlimit --as)."""
        if not sandbox.BWRAP.exists():
            _log_line(container, f"cannot run {container.image}: {sandbox.BWRAP} is missing")
            return Result(CANNOT_RUN, "ContainerCannotRun")
        limit = container.memory_limit
        cgroup = memcg.create(limit) if limit else None
        start = _size(container.log_path)
        with tempfile.TemporaryFile() as status:
            argv = _sandbox_argv(container, image, status.fileno())
            if cgroup is not None:
                argv = cgroup.wrap(argv)
            elif limit:
                argv = memcg.prlimit(argv, limit)
            env = sandbox.environment(image.env, container.env)
            fds = (status.fileno(),)
            try:
                result = self._process(
                    argv,
                    container,
                    stopper,
                    cwd=Path("/"),
                    env=env,
                    term=_term_command,
                    pass_fds=fds,
                )
                oom_kills = cgroup.oom_kills() if cgroup is not None else 0
            finally:
                if cgroup is not None:
                    cgroup.remove()
            started = _ran(status)
        if result.reason == "ContainerCannotRun":
            return result
        if not started and result.exit_code == 1:
            return Result(CANNOT_RUN, "ContainerCannotRun")  # bwrap's reason is in the log
        if result.exit_code != 0 and oom_kills:
            return Result(result.exit_code, "OOMKilled")
        if limit and cgroup is None and result.exit_code != 0:
            killed = result.exit_code == 137 and not stopper.stopping
            if killed or _said_out_of_memory(container.log_path, start):
                return Result(137, "OOMKilled")
        return result

    def _process(
        self,
        argv: list[str],
        container: Container,
        stopper: Stopper,
        *,
        cwd: Path,
        env: dict[str, str],
        term: Callable[[int], bool] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> Result:
        """Run argv to its end: SIGTERM (to the process group, or through `term`) once the
        pod stops, SIGKILL to the group at the stopper's kill_at."""
        term = term or _term_group
        container.work_dir.mkdir(parents=True, exist_ok=True)
        with container.log_path.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    pass_fds=pass_fds,
                )
            except OSError as error:
                log.write(f"nodeagent: cannot start {argv[0]}: {error}\n".encode())
                return Result(CANNOT_RUN, "ContainerCannotRun")
            termed = False
            while proc.poll() is None:
                if stopper.stopping and not termed:
                    termed = term(proc.pid)
                if stopper.stopping and time.monotonic() >= stopper.kill_at:
                    _signal_group(proc.pid, signal.SIGKILL)
                time.sleep(POLL_SECONDS)
            _signal_group(proc.pid, signal.SIGKILL)  # whatever it left running
        code = proc.returncode
        return Result.of(128 - code if code < 0 else code)


def _sandbox_argv(container: Container, image: commands.Image, status_fd: int) -> list[str]:
    options = sandbox.bwrap_args(
        container.mounts,
        container.read_only,
        container.working_dir or "/",
        python=image.name == "python",
        status_fd=status_fd,
    )
    return options + commands.argv(image, container.command, container.args, container.env)


def _host_env(container: Container) -> dict[str, str]:
    """A host process's environment: the node agent's, then the container's with paths rewritten."""
    mapped = {k: map_paths(v, container.mounts) for k, v in container.env.items()}
    return {**os.environ, **mapped}


def _log_line(container: Container, text: str) -> None:
    with container.log_path.open("a") as log:
        log.write(f"nodeagent: {text}\n")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _ran(status: IO[bytes]) -> bool:
    """Whether bwrap reported its command's exit (--json-status-fd): it does not when it
    could not set the sandbox up or exec the command."""
    status.seek(0)
    return b'"exit-code"' in status.read()


def _said_out_of_memory(log_path: Path, start: int) -> bool:
    try:
        with log_path.open("rb") as log:
            log.seek(start)
            text = log.read()
    except OSError:
        return False
    return any(sign in text for sign in OUT_OF_MEMORY)


def _term_group(pgid: int) -> bool:
    _signal_group(pgid, signal.SIGTERM)
    return True


def _term_command(pid: int) -> bool:
    """SIGTERM to a sandbox's command: the children of bwrap's PID 1, itself bwrap's
    child. Not bwrap itself, which would die of it and take the sandbox down at once.
    False while the command has not started."""
    commands_ = [c for init in _children(pid) for c in _children(init)]
    for child in commands_:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGTERM)
    return bool(commands_)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
