"""`python -m infra.local.prereqs`: one clear line and exit 1 if the local cloud cannot run.

`make run` and `make test` call it first. It installs bubblewrap, which kubesim runs the
stand-in images' commands in, when it is missing and this is root on a Debian-like host
(`apt-get update`, then `apt-get install -y bubblewrap`); once installed it costs a stat.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra.local.emulators import MissingPrerequisiteError, check_prerequisites, fake_gcs_binary
from infra.local.kubesim.sandbox import BWRAP

INSTALL = (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "bubblewrap"])


def ensure_bubblewrap(bwrap: Path = BWRAP) -> None:
    """Install bubblewrap when `bwrap` is missing, or say how to."""
    if bwrap.exists():
        return
    how = "install it with `apt-get install bubblewrap`"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingPrerequisiteError(f"missing prerequisite: bubblewrap ({bwrap}); {how}")
    print("installing bubblewrap (kubesim's sandbox)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in INSTALL:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingPrerequisiteError(
                f"missing prerequisite: bubblewrap; `{' '.join(argv)}` failed: {last}"
            )
    if not bwrap.exists():
        raise MissingPrerequisiteError(f"missing prerequisite: bubblewrap ({bwrap}); {how}")


def main() -> int:
    try:
        check_prerequisites()
        fake_gcs_binary()
        ensure_bubblewrap()
    except MissingPrerequisiteError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
