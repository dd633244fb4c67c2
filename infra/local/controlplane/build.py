"""The local control plane's binaries: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler of one Kubernetes release, built from the Go module proxy once per machine.

    .venv/bin/python -m infra.local.controlplane.build   # prints the folder that has them

They are cached outside the checkout, in a folder named by the release and a hash of what
they are built from (this folder's go.mod, go.sum and cmd/), so only the first `make run` or
`make test` on a machine builds them (minutes; it says how far it is), and a clone of the
same commit reuses them. KUBE_BINARIES_DIR names a folder that already holds the four
binaries of this release: it is used as it is, nothing is built.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent
RELEASE = "v1.36.3"  # infra/local/controlplane/pin.py pins go.mod to it
# binary name -> the package it is built from (the controller manager is this folder's own
# main: the release's, with a shorter Job back-off)
COMMANDS = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "./cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
}
PROGRESS_SECONDS = 30.0
GO_MISSING = (
    "missing prerequisite: go (Go 1.26 with the Go module proxy), which builds the local "
    "control plane; or set KUBE_BINARIES_DIR to a folder with its binaries"
)


class BuildError(RuntimeError):
    """The binaries could not be built, or are not where a setting says."""


def cache_root() -> Path:
    """KTR_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /kubernetes-task-runner."""
    if explicit := os.environ.get("KTR_CACHE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubernetes-task-runner"


def source_hash() -> str:
    """What the binaries are built from: go.mod, go.sum and the project's own mains."""
    digest = hashlib.sha256()
    sources = [HERE / "go.mod", HERE / "go.sum", *sorted((HERE / "cmd").rglob("*.go"))]
    for path in sources:
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def check_go() -> None:
    """BuildError unless Go is on the PATH or KUBE_BINARIES_DIR says where the binaries are."""
    if shutil.which("go") is None and not os.environ.get("KUBE_BINARIES_DIR"):
        raise BuildError(GO_MISSING)


def binaries_dir() -> Path:
    """The folder holding the four binaries: KUBE_BINARIES_DIR, or the cache's, built now
    if it is not there yet. Go is a prerequisite either way, but for KUBE_BINARIES_DIR."""
    if given := os.environ.get("KUBE_BINARIES_DIR"):
        folder = Path(given)
        missing = [name for name in COMMANDS if not (folder / name).is_file()]
        if missing:
            raise BuildError(f"KUBE_BINARIES_DIR={folder} lacks {', '.join(missing)}")
        return folder
    check_go()
    folder = cache_root() / "control-plane" / f"{RELEASE}-{source_hash()}"
    if _complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time on a machine: another waits for it, then finds its binaries.
    with (folder.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _complete(folder):
            build(folder)
    return folder


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in COMMANDS)


def _ldflags() -> str:
    """The version the binaries report (/version, kubectl version): the release's."""
    major, minor = RELEASE.removeprefix("v").split(".")[:2]
    values = {"gitVersion": RELEASE, "gitMajor": major, "gitMinor": minor}
    values["gitTreeState"] = "clean"
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in values.items()]
    return " ".join(flags)


def build(folder: Path) -> None:
    """Build the four binaries into `folder` (whole or not at all), saying how far it is."""
    print(
        f"building the local control plane (Kubernetes {RELEASE}, etcd) into {folder}: "
        "once per machine, several minutes",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".building-"))
    try:
        for number, (name, package) in enumerate(COMMANDS.items(), start=1):
            _build_one(name, package, staging, f"{number}/{len(COMMANDS)}", started)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.chmod(0o755)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    print(f"built in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def _build_one(name: str, package: str, staging: Path, step: str, started: float) -> None:
    argv = ["go", "build", "-trimpath", "-ldflags", _ldflags(), "-o", str(staging / name)]
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
            [*argv, package], cwd=HERE, env=env, capture_output=True, text=True, check=False
        )
    finally:
        done.set()
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise BuildError(f"building {name} failed:\n{tail}")


def main() -> int:
    try:
        print(binaries_dir())
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
