"""The local Cloud Scheduler: calls the sync function over HTTP every N seconds.

Like Cloud Scheduler, it fires on a fixed schedule whether or not the previous call has
finished (so two syncs may overlap, which the sync must tolerate), sends a POST with the
`X-CloudScheduler*` headers, and only logs a failed call: the next tick is the retry.

    python -m infra.local.scheduler --target URL [--interval SECONDS]
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from datetime import UTC, datetime

import requests

from infra.local.procs import StopSignal
from shared import logs

log = logging.getLogger("cloud-scheduler")

DEFAULT_INTERVAL = 30.0  # seconds, JOB_SYNCHRONIZATION_INTERVAL's default, as before
ATTEMPT_DEADLINE = 180.0  # seconds, Cloud Scheduler's default attempt deadline for HTTP


def call(target: str, job_name: str, session: requests.Session) -> None:
    scheduled = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        "User-Agent": "Google-Cloud-Scheduler",
        "X-CloudScheduler": "true",
        "X-CloudScheduler-JobName": job_name,
        "X-CloudScheduler-ScheduleTime": scheduled,
        "Content-Type": "application/octet-stream",
    }
    started = time.monotonic()
    try:
        response = session.post(target, headers=headers, data=b"", timeout=ATTEMPT_DEADLINE)
    except requests.RequestException as error:
        log.warning("scheduled call failed: %s", type(error).__name__, extra={"target": target})
        return
    elapsed = round(time.monotonic() - started, 3)
    level = logging.INFO if response.ok else logging.WARNING
    log.log(
        level,
        "scheduled call answered %d",
        response.status_code,
        extra={"target": target, "seconds": elapsed},
    )


def run(target: str, interval: float, stop: StopSignal, job_name: str) -> None:
    """Fire `call` every `interval` seconds on a fixed-rate schedule until `stop` is set."""
    session = requests.Session()
    log.info("calling the sync on schedule", extra={"target": target, "interval": interval})
    next_tick = time.monotonic() + interval
    while not stop.wait(max(0.0, next_tick - time.monotonic())):
        threading.Thread(target=call, args=(target, job_name, session), daemon=True).start()
        next_tick += interval
        # A stalled machine skips missed ticks instead of firing them in a burst.
        next_tick = max(next_tick, time.monotonic())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="URL of the sync function")
    parser.add_argument(
        "--interval",
        type=float,
        default=float(os.environ.get("JOB_SYNCHRONIZATION_INTERVAL", DEFAULT_INTERVAL)),
        help="seconds between calls (default: JOB_SYNCHRONIZATION_INTERVAL or 30)",
    )
    parser.add_argument("--job-name", default="local/synchronize-batch-jobs")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be a positive number of seconds")
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    # Calls in flight run on daemon threads: a stop does not wait for them.
    stop = StopSignal().install()
    run(args.target, args.interval, stop, args.job_name)


if __name__ == "__main__":
    main()
