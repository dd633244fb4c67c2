"""Benchmark of the status notifications on the Pub/Sub emulator, beside its floor.

    .venv/bin/python -m tests.bench.bench_events [--samples 200]

- notify_latency_ms_p50: from the end of a status write (JobStore.transition returned: the
  API shows the new status) to the message received by a streaming pull subscriber of
  JOB_EVENTS_TOPIC, through the write's trigger: the local stand-in of Eventarc's Firestore
  trigger (a listener, infra/local/firestore_trigger.py) POSTs the write to
  publish_job_events (functions-framework, its own process), which publishes;
  notify_latency_ms_p99 too.
- notify_floor_ms_p50: the same subscriber, a raw publish of the same message made with
  a PublisherClient in this process (publish called -> message received).
- notify_from_write_start_ms_p50: from the start of the status write (its Firestore round
  trip included) to the message received.

Both paths use the same emulator, subscriber and process, interleaved sample by sample.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.bench.cloud import EVENTS_TOPIC, PROJECT, REPO_ROOT, local_cloud
from tests.bench.results import record, table


class Arrivals:
    """A streaming pull on a fresh subscription: the monotonic time each key arrived."""

    def __init__(self) -> None:
        from google.cloud import pubsub_v1

        from infra.local.pubsub import ensure_topic_and_subscription

        path = ensure_topic_and_subscription(
            PROJECT, EVENTS_TOPIC, f"bench-{uuid.uuid4().hex[:8]}", ordered=True
        )
        self.subscriber = pubsub_v1.SubscriberClient()
        self.seen: dict[tuple[str, str], float] = {}
        self.cond = threading.Condition()
        self.future = self.subscriber.subscribe(path, self._received)

    def _received(self, message: Any) -> None:
        at = time.monotonic()
        message.ack()
        key = (message.attributes.get("job_id", ""), message.attributes.get("status", ""))
        with self.cond:
            self.seen.setdefault(key, at)
            self.cond.notify_all()

    def wait(self, key: tuple[str, str], timeout: float = 30) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.seen, timeout):
                raise SystemExit(f"no message for {key} in {timeout} s")
            return self.seen[key]

    def close(self) -> None:
        """Cancel the pull and wait for its threads to stop, then close the client: closed
        first, its channel would be gone under a last acknowledgement."""
        self.future.cancel()
        with contextlib.suppress(Exception):
            self.future.result(timeout=30)
        self.subscriber.close()


@contextlib.contextmanager
def write_trigger() -> Iterator[None]:
    """publish_job_events in a functions-framework process, and the trigger's stand-in
    (in this process) POSTing it every write of the jobs collection."""
    from infra.local.firestore_trigger import FirestoreTrigger
    from infra.local.procs import free_port, spawn, tcp_open, wait_until_ready
    from infra.local.relay import RetryPolicy

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-events-") as logs:
        function = spawn(
            "publish-job-events",
            [sys.executable, "-m", "functions_framework", "--target=publish_job_events",
             f"--source={REPO_ROOT / 'functions' / 'main.py'}", "--host=127.0.0.1",
             f"--port={port}"],
            log_dir=Path(logs),
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
        )  # fmt: skip
        try:
            wait_until_ready(function, tcp_open(port), timeout=60)
            trigger = FirestoreTrigger(
                PROJECT, os.environ["FIRESTORE_COLLECTION"], f"http://127.0.0.1:{port}/",
                RetryPolicy(),
            )  # fmt: skip
            trigger.start()
            try:
                yield
            finally:
                trigger.stop()
        finally:
            function.stop()


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with local_cloud(), write_trigger():
        from google.cloud import pubsub_v1

        from shared.cloud.backends import default_backends
        from shared.logs import configure
        from shared.model.job import Job, Status, now_ms

        configure("WARNING")
        backends = default_backends()
        store = backends.store
        arrivals = Arrivals()
        raw = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002),
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
        )
        topic = raw.topic_path(PROJECT, EVENTS_TOPIC)
        product, floor, whole = [], [], []
        try:
            for number in range(args.samples + 10):
                job = Job(
                    id=str(uuid.uuid4()),
                    name=f"bench-{number}",
                    status=Status.CREATED,
                    created=now_ms(),
                    job_parameters={"docker_image": "alpine:3"},
                    account_id="bench",
                )
                written = store.create(job)
                arrivals.wait((job.id, "created"))
                started = time.monotonic()
                store.transition(job.id, Status.RUNNING, reason="bench", known=written)
                done = time.monotonic()
                arrived = arrivals.wait((job.id, "running"))
                data = job.to_api()
                key = f"raw-{job.id}"
                published = time.monotonic()
                raw.publish(topic, str(data).encode(), ordering_key=key, job_id=key, status="x")
                raw_arrived = arrivals.wait((key, "x"))
                if number >= 10:  # the first few warm the clients and connections
                    product.append(arrived - done)
                    whole.append(arrived - started)
                    floor.append(raw_arrived - published)
        finally:
            arrivals.close()
    figures = {
        "notify_latency_ms_p50": statistics.median(product) * 1000,
        "notify_latency_ms_p99": percentile_ms(product, 0.99),
        "notify_floor_ms_p50": statistics.median(floor) * 1000,
        "notify_from_write_start_ms_p50": statistics.median(whole) * 1000,
    }
    print(table(figures))
    record(figures)


if __name__ == "__main__":
    main()
