"""`python -m infra.local.prereqs [--tests]`: one clear line and exit 1 if the local cloud
cannot run.

`make run` and `make test` call it first. It installs the Debian packages the local cloud
needs when they are missing and this is root on a Debian-like host (`apt-get update` once,
then `apt-get install -y` of the missing ones): bubblewrap, which the node agent runs the stand-in
images' commands in, and with `--tests` (`make test`) chromium, the headless browser of the
status page's tests. Once installed it costs a stat each. Go must be there, and the
control plane's and Kueue's binaries: Go builds them on a machine's first run (infra/gobuild.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.kueue import build as kueue_build
from infra.local.controlplane import build
from infra.local.emulators import MissingPrerequisiteError, check_prerequisites, fake_gcs_binary
from infra.local.nodeagent.sandbox import BWRAP

CHROMIUM = Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Package:
    """A Debian package, known by a file it installs, and what it is for here."""

    name: str
    installs: Path
    purpose: str


BUBBLEWRAP = Package("bubblewrap", BWRAP, "the node agent's sandbox")
CHROMIUM_PACKAGE = Package("chromium", CHROMIUM, "the status page's browser tests")
# What the README's runnable examples call (tests/local/test_readme.py).
README_PACKAGES = [
    Package(name, Path(f"/usr/bin/{name}"), "the README's examples")
    for name in ("curl", "jq", "zip", "unzip")
]


def ensure_packages(packages: list[Package]) -> None:
    """Install those of `packages` that are missing, or say how to."""
    missing = [package for package in packages if not package.installs.exists()]
    if not missing:
        return
    names = " ".join(package.name for package in missing)
    what = ", ".join(f"{package.name} ({package.installs})" for package in missing)
    how = f"install it with `apt-get install {names}`"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise MissingPrerequisiteError(f"missing prerequisite: {what}; {how}")
    for package in missing:
        print(f"installing {package.name} ({package.purpose})", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *(package.name for package in missing)]
    for argv in (["apt-get", "update", "-qq"], install):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingPrerequisiteError(
                f"missing prerequisite: {names}; `{' '.join(argv)}` failed: {last}"
            )
    still = [package for package in missing if not package.installs.exists()]
    if still:
        what = ", ".join(f"{package.name} ({package.installs})" for package in still)
        raise MissingPrerequisiteError(f"missing prerequisite: {what}; {how}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--tests"]):
        print("usage: python -m infra.local.prereqs [--tests]", file=sys.stderr)
        return 2
    packages = [BUBBLEWRAP, *([CHROMIUM_PACKAGE, *README_PACKAGES] if args else [])]
    try:
        check_prerequisites()
        fake_gcs_binary()
        ensure_packages(packages)
        build.check_go()
        build.binaries_dir()  # the control plane's, built on a machine's first run
        kueue_build.binaries_dir()  # Kueue's manager and manifests, the same way
    except (MissingPrerequisiteError, build.BuildError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
