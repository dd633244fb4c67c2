"""Benchmark of refusing a zip whose central directory lists 2,000,000 entries (a 104 MB
submission of one small file), in a process that has loaded the functions' code, as
`on_output_finalized` reads a submission.

    .venv/bin/python -m tests.bench.bench_zip

Figures, each the peak RSS (VmHWM) of a fresh process:
- zip_refusal_peak_rss_mb: the zip refused by the product's check (target: under 150 MB),
  the larger of two shapes: its end record declaring all the entries it can (65,535), and
  declaring five (then the directory's size refuses it);
- zip_refusal_floor_rss_mb: the same process before it reads the zip (the floor);
- zip_unchecked_peak_rss_mb: `zipfile.ZipFile()` alone on the same zip, as before the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.results import record, table
from tests.fixtures.zips import write_directory_bomb

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRIES = 2_000_000

CHILD = """
import json, sys, zipfile
import functions_framework
from shared.contract.zips import Limits
from shared.contract.exits import InputRejected
from shared.contract.zips import inspect_zip

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

functions_framework.create_app("on_output_finalized", "functions/main.py")
floor = peak_mb()
path, mode = sys.argv[1], sys.argv[2]
with open(path, "rb") as file:
    if mode == "checked":
        try:
            inspect_zip(file, Limits())
            outcome = "accepted"
        except InputRejected as refused:
            outcome = str(refused)
    else:
        outcome = f"{len(zipfile.ZipFile(file).infolist())} entries built"
print(json.dumps({"floor": floor, "peak": peak_mb(), "outcome": outcome}))
"""


def measure(path: Path, mode: str) -> dict[str, float | str]:
    """The child's figures for the zip at `path`."""
    answer = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(answer.stdout.splitlines()[-1]))


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        full, five = Path(scratch) / "full.zip", Path(scratch) / "five.zip"
        with full.open("wb") as out:
            write_directory_bomb(out, ENTRIES)
        with five.open("wb") as out:
            write_directory_bomb(out, ENTRIES, declared=5)
        size_mb = full.stat().st_size / 1e6
        checked = [measure(full, "checked"), measure(five, "checked")]
        unchecked = measure(full, "unchecked")
    print(f"a {size_mb:.0f} MB zip listing {ENTRIES:,} entries")
    for shape, result in zip(("declaring 65,535", "declaring 5"), checked, strict=True):
        print(f"  checked, {shape}: {result['outcome']}")
    print(f"  unchecked: {unchecked['outcome']}")
    figures = {
        "zip_refusal_peak_rss_mb": max(float(result["peak"]) for result in checked),
        "zip_refusal_floor_rss_mb": min(float(result["floor"]) for result in checked),
        "zip_unchecked_peak_rss_mb": float(unchecked["peak"]),
    }
    print(table(figures))
    print("  target: zip_refusal_peak_rss_mb under 150")
    record(figures)


if __name__ == "__main__":
    main()
