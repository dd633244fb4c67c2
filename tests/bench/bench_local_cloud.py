"""Benchmark of the local cloud itself: how long `make run` takes to come up, and how long
a finalized object takes to reach a CloudEvent endpoint through Pub/Sub and the relay.

    .venv/bin/python -m tests.bench.bench_local_cloud [--events 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from cli.auth import LOCAL_CALLER, local_token
from infra.local.config import isolated_env
from infra.local.procs import spawn
from infra.local.pubsub import ensure_topic_and_subscription
from infra.local.stack import GCS_TOPIC, read_env_file
from tests.bench.results import record, table
from tests.local.httpcapture import capture_server

REPO_ROOT = Path(__file__).resolve().parents[2]


def start_stack(state: Path, **overrides: str) -> tuple[subprocess.Popen[bytes], float]:
    """`make run`'s stack in its own session, with `overrides` in its environment."""
    env = isolated_env(
        state, GOOGLE_CLOUD_PROJECT="bench", GC_BUCKET_NAME="bench-bucket", **overrides
    )
    started = time.monotonic()
    stack = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while not (state / "env").exists():
        if stack.poll() is not None:
            raise SystemExit("the local cloud exited before it was up")
        if time.monotonic() - started > 180:
            raise SystemExit("the local cloud was not up after 180 s")
        time.sleep(0.05)
    took = time.monotonic() - started
    cloud = read_env_file(state / "env")
    token = local_token(Path(cloud["LOCAL_ISSUER_KEY"]), LOCAL_CALLER, cloud["API_URL"], 6 * 3600)
    os.environ[AUTHORIZATION] = f"Bearer {token}"
    return stack, took


AUTHORIZATION = "BENCH_AUTHORIZATION"  # the operator's header for the stack's API


def auth_headers() -> dict[str, str]:
    """The `Authorization` of the operator on the stack start_stack started."""
    return {"Authorization": os.environ[AUTHORIZATION]}


def stop_stack(stack: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the stack's session, as make sends it; then SIGKILL to whatever of it is
    left."""
    from tests.local.test_stack import descendants

    spawned = descendants(stack.pid)
    os.killpg(stack.pid, signal.SIGTERM)
    stack.wait(timeout=60)
    for pid in spawned:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def relay_latencies(state: Path, events: int) -> list[float]:
    cloud = read_env_file(state / "env")
    os.environ.update(cloud)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    project = cloud["GOOGLE_CLOUD_PROJECT"]
    subscription = ensure_topic_and_subscription(
        project, GCS_TOPIC, f"bench-{uuid.uuid4().hex[:6]}"
    )
    bucket = storage.Client(project=project, credentials=AnonymousCredentials()).bucket(
        cloud["GC_BUCKET_NAME"]
    )
    latencies = []
    with capture_server() as capture:
        relay = spawn(
            "bench-relay",
            [
                sys.executable,
                "-m",
                "infra.local.relay",
                f"--subscription={subscription}",
                f"--target={capture.url}",
            ],
            log_dir=state / "logs",
            cwd=REPO_ROOT,
        )
        try:
            for index in range(events):
                bucket.blob(f"bench/{index}.zip").upload_from_string(b"x" * 100)
                uploaded = time.monotonic()
                capture.wait_for(lambda requests: len(requests) > index, timeout=30)  # noqa: B023
                latencies.append(capture.requests[index].at - uploaded)
        finally:
            relay.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        stack, start_seconds = start_stack(state)
        try:
            latencies = relay_latencies(state, args.events)
        finally:
            stack.send_signal(signal.SIGTERM)
            stack.wait(timeout=60)
    figures = {
        "local_cloud_start_seconds": start_seconds,
        "relay_latency_ms_p50": statistics.median(latencies) * 1000,
        "relay_latency_ms_max": max(latencies) * 1000,
    }
    print(f"local cloud ({os.cpu_count()} cores):\n{table(figures)}")
    record(figures)


if __name__ == "__main__":
    main()
