"""Kueue's manager and controller-gen of one release, built from the Go module proxy once
per machine (infra/gobuild.py), and the manifests controller-gen makes from Kueue's Go
types: its CRDs (crd/), webhook configurations (webhook/) and ClusterRole (rbac/), as
Kueue's own `make manifests` makes them.

    .venv/bin/python -m infra.kueue.build   # prints the folder that has them

KUEUE_BINARIES_DIR names a folder that already holds all of it: used as it is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra import gobuild
from infra.gobuild import BuildError

HERE = Path(__file__).resolve().parent
RELEASE = "v0.17.0"  # go.mod requires sigs.k8s.io/kueue at this version
CONTROLLER_TOOLS = "v0.20.1"  # the controller-tools release of the same Kubernetes minor
COMMANDS = {
    "kueue": "sigs.k8s.io/kueue/cmd/kueue",
    "controller-gen": "sigs.k8s.io/controller-tools/cmd/controller-gen",
}
CRDS, WEBHOOKS, RBAC = "crd", "webhook", "rbac"
# Kueue's Makefile `manifests` target, with its packages by import path.
GENERATE = (
    [
        "crd:generateEmbeddedObjectMeta=true",
        f"output:crd:artifacts:config={{folder}}/{CRDS}",
        "paths=sigs.k8s.io/kueue/apis/...",
    ],
    [
        "rbac:roleName=manager-role",
        f"output:rbac:artifacts:config={{folder}}/{RBAC}",
        "webhook",
        f"output:webhook:artifacts:config={{folder}}/{WEBHOOKS}",
        "paths="
        + ";".join(
            f"sigs.k8s.io/kueue/pkg/{package}/..."
            for package in ("controller", "webhooks", "util/cert", "visibility")
        ),
    ],
)


def generate(folder: Path) -> None:
    """The manifests, by the controller-gen just built into `folder`."""
    for arguments in GENERATE:
        argv = [str(folder / "controller-gen"), *(a.format(folder=folder) for a in arguments)]
        done = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-20:])
            raise BuildError(f"controller-gen failed:\n{tail}")


TOOLSET = gobuild.Toolset(
    name="kueue",
    module=HERE,
    release=RELEASE,
    commands=COMMANDS,
    ldflags=f"-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion={RELEASE}",
    given_env="KUEUE_BINARIES_DIR",
    generate=generate,
    generated=(CRDS, f"{WEBHOOKS}/manifests.yaml", f"{RBAC}/role.yaml"),
)


def binaries_dir() -> Path:
    """The folder with Kueue's manager, controller-gen and the generated manifests."""
    return gobuild.binaries_dir(TOOLSET)


if __name__ == "__main__":
    sys.exit(gobuild.main(TOOLSET))
