"""The contract between the job API and the pod's program (shared/contract) is standard
library only, as is everything else the stager image copies: it installs nothing. Read
from the sources, so that an import on a path no test runs is caught too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What infra/images/stager/Dockerfile copies (tests/stager/test_cli.py runs that copy with
# `python -S`), and so all the stager may import.
IMAGE_FILES = ["shared/__init__.py", "shared/logs.py", "shared/contract", "shared/stager"]
IMAGE_PACKAGES = ("shared.contract", "shared.stager", "shared.logs")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _sources() -> list[Path]:
    paths = [ROOT / name for name in IMAGE_FILES]
    return [file for path in paths for file in ([path] if path.is_file() else path.rglob("*.py"))]


@pytest.mark.parametrize("path", _sources(), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_stager_image_needs_nothing_but_the_standard_library(path: Path) -> None:
    outside = {
        name
        for name in _imports(path)
        if name.partition(".")[0] not in sys.stdlib_module_names
        and name != "shared"
        and not name.startswith(IMAGE_PACKAGES)
    }
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"
