"""Running one container: a real host process (the stager image, or KUBESIM_SH) or a
simulation driven by the container's KUBESIM_* environment.

Real processes are what let data actually flow through the pipeline in tests: the
container's mount paths are rewritten to host directories wherever they appear in its
arguments and environment, and its output becomes the container log.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.kubesim.clock import Clock

REPO_ROOT = Path(__file__).resolve().parents[3]
POLL_SECONDS = 0.02


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
    work_dir: Path


class Runtime:
    def __init__(self, clock: Clock, stager_image: str | None) -> None:
        self.clock = clock
        self.stager_image = stager_image

    def run(self, container: Container, stopper: Stopper) -> Result:
        env = container.env
        if is_stager(container.image, self.stager_image) and (container.command or container.args):
            argv = [map_paths(a, container.mounts) for a in container.command + container.args]
            if argv and argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            result = self._process(argv, container, stopper, cwd=REPO_ROOT)
        elif "KUBESIM_SH" in env:
            script = map_paths(env["KUBESIM_SH"], container.mounts)
            result = self._process(
                ["/bin/sh", "-c", script], container, stopper, cwd=container.work_dir
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

    def _process(
        self, argv: list[str], container: Container, stopper: Stopper, *, cwd: Path
    ) -> Result:
        env = {
            **os.environ,
            **{k: map_paths(v, container.mounts) for k, v in container.env.items()},
        }
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
                )
            except OSError as error:
                log.write(f"kubesim: cannot start {argv[0]}: {error}\n".encode())
                return Result(128, "ContainerCannotRun")
            termed = False
            while proc.poll() is None:
                if stopper.stopping and not termed:
                    _signal_group(proc.pid, signal.SIGTERM)
                    termed = True
                if termed and time.monotonic() >= stopper.kill_at:
                    _signal_group(proc.pid, signal.SIGKILL)
                time.sleep(POLL_SECONDS)
            _signal_group(proc.pid, signal.SIGKILL)  # whatever it left running
        code = proc.returncode
        return Result.of(128 - code if code < 0 else code)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
