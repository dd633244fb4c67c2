"""Print a plan (DRY_RUN=1) or carry it out, step by step, stopping at the first failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from infra.deploy import scheduler, submitters
from infra.deploy.steps import (
    WIDTH,
    Action,
    Lookup,
    Run,
    SchedulerJob,
    Step,
    SubmissionGrants,
    WriteFile,
    substitute,
)

if TYPE_CHECKING:
    from google.cloud.scheduler_v1 import CloudSchedulerClient

QUIET = {"CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}  # gcloud never waits for an answer
ALREADY_EXISTS = ("already exists", "ALREADY_EXISTS")
RETRIES = (5.0, 15.0)  # a grant right after creating its account can fail until IAM catches up


class DeployError(Exception):
    pass


def _default_scheduler() -> CloudSchedulerClient:
    from google.cloud.scheduler_v1 import CloudSchedulerClient

    return CloudSchedulerClient()


class Runner:
    def __init__(
        self,
        *,
        out: TextIO = sys.stdout,
        env: Mapping[str, str] | None = None,
        scheduler_client: Callable[[], CloudSchedulerClient] = _default_scheduler,
        retries: tuple[float, ...] = RETRIES,
        cwd: Path | None = None,
    ) -> None:
        """`cwd`: where the plan's relative paths are (the repository, for make deploy)."""
        self.out = out
        self.cwd = cwd
        self.env = {**(os.environ if env is None else env), **QUIET}
        self.scheduler_client = scheduler_client
        self.retries = retries
        self.values: dict[str, str] = {}

    def header(self, title: str) -> None:
        print(f"# {title}", file=self.out)
        for name, value in QUIET.items():
            print(f"export {name}={value}", file=self.out)

    def show(self, number: int, step: Step) -> None:
        print(f"\n# == {number}. {step.title}", file=self.out)
        for paragraph in step.why.splitlines():
            lines = textwrap.wrap(
                paragraph, WIDTH - 2, subsequent_indent="  ", break_on_hyphens=False
            )
            for line in lines:
                print(f"# {line}", file=self.out)

    def print_plan(self, steps: list[Step]) -> None:
        for number, step in enumerate(steps, 1):
            self.show(number, step)
            for action in step.actions:
                print(action.render(), file=self.out)

    def run(self, steps: list[Step]) -> None:
        for number, step in enumerate(steps, 1):
            self.show(number, step)
            for action in step.actions:
                print(action.render(), file=self.out, flush=True)
                try:
                    self._do(action)
                except DeployError as error:
                    raise DeployError(f"step {number} ({step.title}): {error}") from error

    def _do(self, action: Action) -> None:
        if isinstance(action, Run):
            self._run(action)
        elif isinstance(action, Lookup):
            self._lookup(action)
        elif isinstance(action, WriteFile):
            path = action.path if self.cwd is None else self.cwd / action.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(substitute(action.content, self.values))
        elif isinstance(action, SchedulerJob):
            body: dict[str, Any] = json.loads(substitute(json.dumps(action.body), self.values))
            outcome = scheduler.ensure(self.scheduler_client(), action.parent, body)
            print(f"# scheduler job {outcome}", file=self.out)
        elif isinstance(action, SubmissionGrants):
            self._submission_grants(action)

    def _submission_grants(self, action: SubmissionGrants) -> None:
        """Read the accounts and the bucket's policy; write the policy if it must change."""
        accounts = submitters.read_accounts(action)
        bucket = f"gs://{action.bucket}"
        read = self._gcloud("storage", "buckets", "get-iam-policy", bucket, "--format=json")
        before = json.loads(read)
        after = submitters.policy_with(before, action, accounts)
        lines = submitters.changes(before, after, action.role)
        if not lines:
            print("# submission grants: nothing to change", file=self.out)
            return
        print("\n".join(f"# {line}" for line in lines), file=self.out)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as policy:
            json.dump(after, policy)
        try:
            self._gcloud(
                "storage", "buckets", "set-iam-policy", bucket, policy.name, "--format=none"
            )
        finally:
            Path(policy.name).unlink(missing_ok=True)

    def _gcloud(self, *args: str) -> str:
        done = subprocess.run(
            ["gcloud", *args], env=self.env, cwd=self.cwd, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise DeployError(f"gcloud {' '.join(args[:3])}: {done.stderr.strip()}")
        return done.stdout

    def _argv(self, argv: tuple[str, ...]) -> list[str]:
        words = [substitute(word, self.values) for word in argv]
        return [sys.executable, *words[1:]] if words[0] == "python" else words

    def _run(self, action: Run) -> None:
        if action.unless is not None:
            check = subprocess.run(
                self._argv(action.unless), env=self.env, cwd=self.cwd, capture_output=True
            )
            if check.returncode == 0:
                print("# exists: nothing to do", file=self.out)
                return
        for delay in (*self.retries, None):
            done = subprocess.run(
                self._argv(action.argv), env=self.env, cwd=self.cwd, capture_output=True, text=True
            )
            self.out.write(done.stdout)
            sys.stderr.write(done.stderr)
            if done.returncode == 0:
                return
            if action.exists_ok and any(marker in done.stderr for marker in ALREADY_EXISTS):
                print("# already exists: nothing to do", file=self.out)
                return
            if delay is None:
                tool = next(w for w in action.argv if w != "env" and "=" not in w)
                raise DeployError(f"{tool} exited with {done.returncode}")
            print(f"# failed; trying again in {delay:g} s", file=self.out, flush=True)
            time.sleep(delay)

    def _lookup(self, action: Lookup) -> None:
        done = subprocess.run(
            self._argv(action.argv), env=self.env, cwd=self.cwd, capture_output=True, text=True
        )
        value = done.stdout.strip()
        if done.returncode != 0 or not value:
            sys.stderr.write(done.stderr)
            raise DeployError(f"could not read {action.name}")
        self.values[action.name] = value
