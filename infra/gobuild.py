"""Go programs built from the Go module proxy once per machine: the local control plane's
binaries (infra/local/controlplane/) and Kueue's (infra/kueue/).

A `Toolset` is a folder with a go.mod and go.sum naming the modules, the commands built from
them, and what else is made from those commands (Kueue's manifests, which its controller-gen
generates). They are cached outside the checkout, in a folder named by the toolset, its
release and a hash of what it is built from (go.mod, go.sum and its own Go sources), so only
the first `make run` or `make test` on a machine builds them (minutes; it says how far it
is), and a clone of the same commit reuses them. A setting (`given_env`) may name a folder
that already holds them: it is used as it is, nothing is built.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROGRESS_SECONDS = 30.0


class BuildError(RuntimeError):
    """The binaries could not be built, or are not where a setting says."""


@dataclass(frozen=True)
class Toolset:
    name: str  # the cache's folder: control-plane, kueue
    module: Path  # the folder with go.mod and go.sum
    release: str  # what the binaries are (their version), part of the cache's name
    commands: Mapping[str, str]  # binary name -> the package it is built from
    ldflags: str
    given_env: str  # names a folder that already has everything: used as it is
    # After the binaries: what is made with them, into the folder (it runs in `module`).
    generate: Callable[[Path], None] | None = None
    generated: tuple[str, ...] = field(default=())  # what `generate` makes, in the folder

    def source_hash(self) -> str:
        """What the binaries are built from: go.mod, go.sum and the module's own Go files."""
        digest = hashlib.sha256()
        own = sorted(self.module.rglob("*.go"))
        for path in [self.module / "go.mod", self.module / "go.sum", *own]:
            name = path.relative_to(self.module).as_posix().encode()
            digest.update(name + b"\0" + path.read_bytes())
        return digest.hexdigest()[:12]

    def cache_folder(self) -> Path:
        return cache_root() / self.name / f"{self.release}-{self.source_hash()}"

    def complete(self, folder: Path) -> bool:
        return all((folder / name).exists() for name in (*self.commands, *self.generated))

    def missing_go(self) -> str:
        return (
            f"missing prerequisite: go (Go 1.26 with the Go module proxy), which builds the "
            f"local cloud's {self.name}; or set {self.given_env} to a folder with its binaries"
        )


def cache_root() -> Path:
    """KTR_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /kubernetes-task-runner."""
    if explicit := os.environ.get("KTR_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubernetes-task-runner"


def check_go(toolset: Toolset) -> None:
    """BuildError unless Go is on the PATH or the toolset's setting names its folder."""
    if shutil.which("go") is None and not os.environ.get(toolset.given_env):
        raise BuildError(toolset.missing_go())


def binaries_dir(toolset: Toolset) -> Path:
    """The folder holding the toolset: the one its setting names, or the cache's, built now
    if it is not there yet."""
    if given := os.environ.get(toolset.given_env):
        folder = Path(given)
        missing = [n for n in (*toolset.commands, *toolset.generated) if not (folder / n).exists()]
        if missing:
            raise BuildError(f"{toolset.given_env}={folder} lacks {', '.join(missing)}")
        return folder
    check_go(toolset)
    folder = toolset.cache_folder()
    if toolset.complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time on a machine: another waits for it, then finds its binaries.
    with (folder.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not toolset.complete(folder):
            build(toolset, folder)
    return folder


def build(toolset: Toolset, folder: Path) -> None:
    """Build the toolset into `folder` (whole or not at all), saying how far it is."""
    print(
        f"building the local cloud's {toolset.name} ({toolset.release}) into {folder}: "
        "once per machine, several minutes",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    try:
        for number, (name, package) in enumerate(toolset.commands.items(), start=1):
            step = f"{number}/{len(toolset.commands)}"
            _build_one(toolset, name, package, staging, step, started)
        if toolset.generate is not None:
            toolset.generate(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def _build_one(
    toolset: Toolset, name: str, package: str, staging: Path, step: str, started: float
) -> None:
    argv = ["go", "build", "-trimpath", "-ldflags", toolset.ldflags, "-o", str(staging / name)]
    env = {**os.environ, "CGO_ENABLED": "0"}
    done = threading.Event()

    def report() -> None:
        while not done.wait(PROGRESS_SECONDS):
            elapsed = time.monotonic() - started
            print(f"  still building {name} ({step}), {elapsed:.0f} s so far", file=sys.stderr)

    print(f"  {step} {name}", file=sys.stderr, flush=True)
    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        result = subprocess.run(
            [*argv, package], cwd=toolset.module, env=env, capture_output=True, text=True
        )
    finally:
        done.set()
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise BuildError(f"building {name} failed:\n{tail}")


def main(toolset: Toolset) -> int:
    """`python -m <its build module>`: the folder with the toolset, built if need be."""
    try:
        print(binaries_dir(toolset))
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
