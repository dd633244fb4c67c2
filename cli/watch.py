"""Waiting for jobs to end: a live line, each status change as it happens, and the log
as it grows (the API has no stream: `/logs` is polled and only what is new printed)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from cli.client import Api
from cli.errors import ApiError, CliError
from cli.jobs import FINAL

POLL_SECONDS = 1.0
TRANSIENT_SECONDS = 60.0  # how long polls may fail (API restarting, a 503) before giving up
UNSAVED_PATIENCE = 10.0  # seconds a final job's log may be "not saved" before we believe it
OVERLAP = 1024  # characters of the printed log looked for in a log that was cut since
# The API's words about a log it cannot give yet, e.g. "(The job has not started yet.)".
NOTICE = re.compile(r"\A\([^\n]*\)\n?\Z")


class LogFollower:
    """What is new in a job's log since the last poll."""

    def __init__(self, api: Api, job_id: str) -> None:
        self.api, self.job_id = api, job_id
        self.seen = ""
        self.complete = False
        self.notice = ""
        self.unsaved_since: float | None = None

    def poll(self) -> str:
        view = self.api.log(self.job_id)
        text, self.complete = str(view.get("log", "")), bool(view.get("complete"))
        if NOTICE.match(text):
            self.notice = text.strip()
            if self.complete and "could not be saved" in text:
                # A job's status is written before its log is saved: ask again a while.
                now = time.monotonic()
                self.unsaved_since = self.unsaved_since or now
                self.complete = now - self.unsaved_since > UNSAVED_PATIENCE
            return ""
        if text.startswith(self.seen):
            new = text[len(self.seen) :]
        else:  # the saved log was cut at its start: go on after what was printed last
            tail = self.seen[-OVERLAP:]
            at = text.rfind(tail) if tail else -1
            new = text[at + len(tail) :] if at >= 0 else ""
        self.seen = text
        return new


class Waiter:
    """Polls jobs until each is final; `on_log` gets (job, new text) when following logs."""

    def __init__(
        self,
        api: Api,
        console: Console,
        *,
        follow_logs: bool = False,
        on_log: Callable[[dict[str, Any], str], None] | None = None,
        quiet: bool = False,
    ) -> None:
        self.api, self.console, self.quiet = api, console, quiet
        self.follow_logs, self.on_log = follow_logs, on_log
        self.started = time.monotonic()

    def wait(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = {}
        followers = {job_id: LogFollower(self.api, job_id) for job_id in job_ids}
        done: set[str] = set()
        failing_since: float | None = None
        with self.console.status("", spinner="dots") as live:
            while len(done) < len(job_ids):
                try:
                    for job_id in job_ids:
                        if job_id in done:
                            continue
                        job = self.api.job(job_id)
                        before = jobs.get(job_id)
                        jobs[job_id] = job
                        if before is None or before["status"] != job["status"]:
                            self._transition(job, before is None)
                        if self.follow_logs:
                            self._logs(job, followers[job_id])
                        if job["status"] in FINAL and (
                            not self.follow_logs or followers[job_id].complete
                        ):
                            done.add(job_id)
                    failing_since = None
                except ApiError as error:
                    if error.status < 500:
                        raise
                    failing_since = self._tolerate(error, failing_since)
                except CliError as error:
                    failing_since = self._tolerate(error, failing_since)
                live.update(self._live_line(jobs))
                if len(done) < len(job_ids):
                    time.sleep(POLL_SECONDS)
        return jobs

    def _tolerate(self, error: CliError, since: float | None) -> float:
        now = time.monotonic()
        since = now if since is None else since
        if now - since > TRANSIENT_SECONDS:
            raise CliError(f"Gave up waiting after {TRANSIENT_SECONDS:g} s of errors: {error}")
        return since

    def _logs(self, job: dict[str, Any], follower: LogFollower) -> None:
        new = follower.poll()
        if new and self.on_log is not None:
            self.on_log(job, new)

    def elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def _transition(self, job: dict[str, Any], first: bool) -> None:
        if self.quiet:
            return
        detail = ""
        if job["status"] == "failed":
            detail = f" ({job.get('reason', '?')})"
        self.console.print(
            f"[dim]{self.elapsed()}[/] {escape(job['name'])} [bold]{job['status']}[/]"
            f"{escape(detail)}",
            highlight=False,
        )

    def _live_line(self, jobs: dict[str, dict[str, Any]]) -> str:
        if len(jobs) == 1:
            job = next(iter(jobs.values()))
            return f"{escape(job['name'])}: {job['status']}, {self.elapsed().strip()}"
        counts: dict[str, int] = {}
        for job in jobs.values():
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        return f"{len(jobs)} jobs: {summary}, {self.elapsed().strip()}"


def log_tail(api: Api, job_id: str, lines: int = 20, patience: float = UNSAVED_PATIENCE) -> str:
    """The end of a finished job's log. Its status is written before its log is saved:
    a notice that no log was saved yet is asked again for a few seconds."""
    deadline = time.monotonic() + patience
    while True:
        text = str(api.log(job_id, tail=lines).get("log", ""))
        if not (NOTICE.match(text) and "No log was saved" in text) or time.monotonic() > deadline:
            return text
        time.sleep(0.5)
