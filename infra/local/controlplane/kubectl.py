"""kubectl apply --server-side, as `make deploy` applies to GKE."""

from __future__ import annotations

import subprocess
from pathlib import Path


def apply(kubeconfig: Path, manifests: str, what: str) -> None:
    """Apply `manifests` (YAML) as the user of `kubeconfig`; RuntimeError naming `what`."""
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "--server-side", "-f", "-"],
        input=manifests,
        text=True,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kubectl apply of {what} failed: {done.stderr.strip()}")
