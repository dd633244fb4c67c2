"""The local control plane's binaries: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler of one Kubernetes release, built from the Go module proxy once per machine
and cached (infra/gobuild.py).

    .venv/bin/python -m infra.local.controlplane.build   # prints the folder that has them

KUBE_BINARIES_DIR names a folder that already holds the four binaries of this release: it
is used as it is, nothing is built.
"""

from __future__ import annotations

import sys
from pathlib import Path

from infra import gobuild
from infra.gobuild import BuildError as BuildError

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


def _ldflags() -> str:
    """The version the binaries report (/version, kubectl version): the release's."""
    major, minor = RELEASE.removeprefix("v").split(".")[:2]
    values = {"gitVersion": RELEASE, "gitMajor": major, "gitMinor": minor}
    values["gitTreeState"] = "clean"
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in values.items()]
    return " ".join(flags)


TOOLSET = gobuild.Toolset(
    name="control-plane",
    module=HERE,
    release=RELEASE,
    commands=COMMANDS,
    ldflags=_ldflags(),
    given_env="KUBE_BINARIES_DIR",
)


def check_go() -> None:
    gobuild.check_go(TOOLSET)


def binaries_dir() -> Path:
    """The folder holding the four binaries: KUBE_BINARIES_DIR, or the cache's, built now
    if it is not there yet."""
    return gobuild.binaries_dir(TOOLSET)


if __name__ == "__main__":
    sys.exit(gobuild.main(TOOLSET))
