"""Benchmark of `stager stage-out`: peak RSS and throughput on a large output tree zipped
through a resumable upload session (as the functions open it), against the floor of
`zip -r` plus a plain upload of that zip, both to a fake-gcs-server.

    .venv/bin/python -m tests.bench.bench_stager [--size-mib 1024]

Targets: peak RSS <= 150 MB whatever the size; stager time <= 1.5 x (zip + upload).
The peak RSS is the child's VmHWM, which its exec resets (ru_maxrss would count the
forking benchmark process too).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from infra.local.emulators import fake_gcs_binary
from infra.local.procs import ServerProcess, free_port, http_ok, spawn, wait_until_ready
from tests.bench.results import record, table

if TYPE_CHECKING:
    from google.cloud.storage import Client

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
BUCKET = "bench-stager"
WORDS = "job output result value error warning step batch file line data model run".split()


def _text_block(size: int) -> bytes:
    """Log-like lines: compress about 3:1 with deflate, like real text output."""
    rng = random.Random(42)
    lines = []
    total = 0
    while total < size:
        line = (
            f"{rng.randrange(10**9):09d} {' '.join(rng.choices(WORDS, k=8))} {rng.random():.6f}\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _write(path: Path, size: int, text: bytes | None) -> None:
    """`size` bytes of random data, or of `text` repeated, written 1 MiB at a time."""
    with path.open("wb") as out:
        left = size
        while left:
            n = min(left, MIB)
            out.write(os.urandom(n) if text is None else text[:n])
            left -= n


def make_tree(root: Path, size: int) -> int:
    """About `size` bytes: a few large random and text files, and many small files (20%)."""
    text = _text_block(MIB)
    files = 0
    big = root / "big"
    big.mkdir(parents=True)
    for i in range(4):
        _write(big / f"random-{i}.bin", size * 15 // 100, None)
        files += 1
    for i in range(2):
        _write(big / f"log-{i}.txt", size * 10 // 100, text)
        files += 1
    small_budget = size - 4 * (size * 15 // 100) - 2 * (size * 10 // 100)
    rng = random.Random(7)
    written = 0
    while written < small_budget:
        folder = root / "small" / f"d{files // 200:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        n = min(rng.randrange(4 * 1024, 64 * 1024), small_budget - written)
        _write(folder / f"f{files:05d}.dat", n, None if files % 2 else text)
        written += n
        files += 1
    (root / "empty-dir").mkdir()
    (root / "lost+found").mkdir()
    return files


def start_server(state: Path) -> tuple[ServerProcess, str]:
    port = free_port()
    server = spawn(
        "fake-gcs-server-bench",
        [str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
        + ["-backend", "filesystem", "-filesystem-root", str(state / "gcs"), "-log-level", "warn"],
        log_dir=state,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(server, http_ok(f"{url}/storage/v1/b"), 30)
    except Exception:
        server.stop()
        raise
    return server, url


def client(url: str) -> Client:
    """A storage client of this process, for the bucket and the floor's upload."""
    os.environ["STORAGE_EMULATOR_HOST"] = url
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="bench", credentials=AnonymousCredentials())


# Runs stage-out, then prints its VmHWM (peak RSS since the exec) on stderr's last line.
PEAK_RSS = (
    "import sys; from shared.stager.cli import main; code = main(); "
    "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr); "
    "sys.exit(code)"
)


def open_session(url: str, name: str) -> str:
    """What the functions hand stage-out: a session that may only create `name`, a zip."""
    blob = client(url).bucket(BUCKET).blob(name)
    blob.metadata = {"job-id": "bench"}
    session: str = blob.create_resumable_upload_session(
        content_type="application/zip", if_generation_match=0
    )
    return session


def run_stager(tree: Path, session: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one stage-out child process."""
    env = {**os.environ, "OUTPUT_UPLOAD_URL": session, "STAGER_DIR": str(tree)}
    env.update(STAGER_JOB_ID="bench", LOG_LEVEL="WARNING")
    start = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "stage-out"],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"stage-out failed with exit code {child.returncode}: {child.stderr}")
    peak_kib = int(child.stderr.split()[-2])  # "VmHWM:   123456 kB"
    return seconds, peak_kib * 1024 / 1e6


def run_floor(tree: Path, zip_path: Path, url: str) -> tuple[float, float]:
    """(zip -r seconds, upload seconds) for the same tree."""
    start = time.perf_counter()
    subprocess.run(["zip", "-r", "-q", str(zip_path), "."], cwd=tree, check=True)
    zipped = time.perf_counter() - start
    start = time.perf_counter()
    client(url).bucket(BUCKET).blob("floor.zip").upload_from_filename(str(zip_path))
    return zipped, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="output tree size (1024)")
    args = parser.parse_args()
    if shutil.which("zip") is None:
        raise SystemExit("`zip` is not installed (apt-get install -y zip): it sets the floor")
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="bench-stager-"))
    server = None
    try:
        started = time.perf_counter()
        files = make_tree(work / "output", size)
        print(f"tree: {files} files, {args.size_mib} MiB in {time.perf_counter() - started:.1f} s")
        server, url = start_server(work)
        bucket = client(url).create_bucket(BUCKET)
        session = open_session(url, "bench-output.zip")
        stager_s, peak_mb = run_stager(work / "output", session)
        zip_s, upload_s = run_floor(work / "output", work / "floor.zip", url)
        stored = bucket.get_blob("bench-output.zip")
        if (stored.content_type, stored.metadata) != ("application/zip", {"job-id": "bench"}):
            raise SystemExit(f"unexpected object: {stored.content_type} {stored.metadata}")
        stager_size = stored.size
        floor_size = (work / "floor.zip").stat().st_size
        print(f"  stager stage-out      {stager_s:7.1f} s  {stager_size / MIB:8.1f} MiB zip")
        print(f"  zip -r + upload       {zip_s + upload_s:7.1f} s  {floor_size / MIB:8.1f} MiB zip")
        print(f"    (zip {zip_s:.1f} s, upload {upload_s:.1f} s)")
        figures = {
            "stager_out_peak_rss_mb": peak_mb,
            "stager_out_mb_per_s": args.size_mib / stager_s,
            "stager_out_ratio": stager_s / (zip_s + upload_s),
        }
        print(table(figures))
        record(figures)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
