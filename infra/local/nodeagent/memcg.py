"""A sandboxed container's memory limit: a memory cgroup of its own, as the kubelet gives
every container (resources.limits.memory becomes memory.max on cgroup v2,
memory.limit_in_bytes on v1). The kernel's OOM killer then SIGKILLs the process (exit 137)
and counts the kill (oom_kill in memory.events, or memory.oom_control on v1), which is how
the runtime tells OOMKilled from another SIGKILL.

The cgroup is a child of the node agent's own, so it must be able to write there (root on
a host or a privileged container). When it cannot, `create` answers None and the runtime
falls back to `prlimit --as`, a limit on address space rather than resident memory.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
REMOVE_SECONDS = 2.0  # a killed cgroup's last tasks may take a moment to leave
_names = itertools.count()


@dataclass(frozen=True)
class Cgroup:
    path: Path
    version: int  # 1 or 2

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside this cgroup: a shell joins it, then execs argv."""
        join = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["/bin/sh", "-c", join, str(self.path), *argv]

    def oom_kills(self) -> int:
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            lines = (self.path / name).read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        deadline = time.monotonic() + REMOVE_SECONDS
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.02)


def _own_paths() -> dict[str, str]:
    """The node agent's cgroup by hierarchy: "" for the v2 one, controller names for v1."""
    paths: dict[str, str] = {}
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_parent(own: dict[str, str]) -> Path | None:
    if "" not in own:
        return None
    for mount in (CGROUP_ROOT, CGROUP_ROOT / "unified"):
        parent = mount / own[""].lstrip("/")
        try:
            if "memory" not in (mount / "cgroup.controllers").read_text().split():
                continue
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                (parent / "cgroup.subtree_control").write_text("+memory")
            return parent
        except OSError:
            continue
    return None


def _v1_parent(own: dict[str, str]) -> Path | None:
    if "memory" not in own:
        return None
    parent = CGROUP_ROOT / "memory" / own["memory"].lstrip("/")
    return parent if (parent / "memory.limit_in_bytes").exists() else None


def _limit(path: Path, version: int, limit: int) -> None:
    if version == 2:
        (path / "memory.max").write_text(str(limit))
        with contextlib.suppress(OSError):
            (path / "memory.swap.max").write_text("0")
        return
    (path / "memory.limit_in_bytes").write_text(str(limit))
    with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
        (path / "memory.memsw.limit_in_bytes").write_text(str(limit))


def create(limit: int) -> Cgroup | None:
    """A new memory cgroup limited to `limit` bytes, or None where the agent cannot make one."""
    own = _own_paths()
    for version, parent in ((2, _v2_parent(own)), (1, _v1_parent(own))):
        if parent is None:
            continue
        path = parent / f"nodeagent-{os.getpid()}-{next(_names)}"
        try:
            path.mkdir()
        except OSError:
            continue
        try:
            _limit(path, version, limit)
        except OSError:
            Cgroup(path, version).remove()
            continue
        return Cgroup(path, version)
    return None


def prlimit(argv: list[str], limit: int) -> list[str]:
    """The fallback: argv with its address space capped at `limit` bytes."""
    return ["prlimit", f"--as={limit}", "--", *argv]
