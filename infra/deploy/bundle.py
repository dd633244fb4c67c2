"""The functions' source bundle: what Cloud Functions needs at the root of its upload.

    main.py            functions/main.py, the entry points
    shared/            the package with the logic, without the stager (the job pods'
                       program, which the functions never import)
    requirements.txt   the runtime dependencies, pinned (no test or deploy tooling)
    .gcloudignore      keeps caches out of the upload

Every function is deployed from this one directory with its own --entry-point.
Usage: python -m infra.deploy.bundle OUT_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GCLOUDIGNORE = """\
# Uploaded: main.py, shared/ (without its stager), requirements.txt
.gcloudignore
__pycache__/
*.py[cod]
.mypy_cache/
.ruff_cache/
"""
_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".mypy_cache", ".ruff_cache")


def _uploaded(directory: str, names: list[str]) -> set[str]:
    """What copytree leaves out of shared/: caches, and the stager."""
    left_out = set(_CACHES(directory, names))
    if Path(directory).name == "shared":
        left_out |= {"stager"} & set(names)
    return left_out


class BundleError(Exception):
    pass


def build(out: Path, root: Path = ROOT) -> Path:
    """Write the bundle to `out`, replacing an earlier bundle there (never anything else)."""
    if out.exists():
        if any(out.iterdir()) and not (out / ".gcloudignore").is_file():
            raise BundleError(f"{out} is not empty and holds no bundle; not replacing it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(root / "functions" / "main.py", out / "main.py")
    shutil.copytree(root / "shared", out / "shared", ignore=_uploaded)
    shutil.copy2(root / "requirements.txt", out / "requirements.txt")
    (out / ".gcloudignore").write_text(GCLOUDIGNORE)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m infra.deploy.bundle OUT_DIR", file=sys.stderr)
        return 2
    try:
        out = build(Path(args[0]))
    except BundleError as error:
        print(f"bundle: {error}", file=sys.stderr)
        return 1
    print(f"bundle: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
