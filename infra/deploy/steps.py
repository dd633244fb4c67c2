"""What a deploy plan is made of. Each step prints as what it does (a shell line, a file's
contents, an API request with its body) and the runner carries it out exactly so.

Values only known while deploying (the cluster's endpoint, the sync function's URL) are
read by `Lookup` steps into `${NAME}`, which later steps use: the printed plan shows the
lookup and the placeholder, the run substitutes the value.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


WIDTH = 100  # longer commands print one flag a line


def shell_word(word: str) -> str:
    """Quote one word for the printed plan: `${NAME}` stays expandable in double quotes."""
    if PLACEHOLDER.search(word) and not re.search(r'["\\`]|\$(?!\{)', word):
        return f'"{word}"'
    return shlex.quote(word)


def shell_line(argv: tuple[str, ...], indent: str = "") -> str:
    """The command as one shell line, or continued over lines, one flag each, when long."""
    words = [shell_word(word) for word in argv]
    line = indent + " ".join(words)
    if len(line) <= WIDTH:
        return line
    first = next((i for i, word in enumerate(argv) if word.startswith("-")), len(argv))
    head = indent + " ".join(words[:first])
    return " \\\n".join([head, *(f"{indent}    {word}" for word in words[first:])])


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace each `${NAME}` by its looked-up value; an unknown name is a bug in the plan."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"${{{name}}} is used before any step looks it up")
        return values[name]

    return PLACEHOLDER.sub(value, text)


@dataclass(frozen=True)
class Run:
    """A command. `unless` is a read that, when it succeeds, shows the step is already done;
    `exists_ok` counts an "already exists" failure as done (creates with no describe)."""

    argv: tuple[str, ...]
    unless: tuple[str, ...] | None = None
    exists_ok: bool = False

    def render(self) -> str:
        if self.unless:
            check = shell_line(self.unless)
            return f"{check} >/dev/null 2>&1 ||\n{shell_line(self.argv, '  ')}"
        if self.exists_ok:
            return f"# 'already exists' counts as done:\n{shell_line(self.argv)}"
        return shell_line(self.argv)


@dataclass(frozen=True)
class Lookup:
    """Read one value into `${name}`; an empty answer stops the deploy."""

    name: str
    argv: tuple[str, ...]

    def render(self) -> str:
        return f"{self.name}=$({shell_line(self.argv)})"


@dataclass(frozen=True)
class WriteFile:
    """A file the next commands read (rendered manifests, the functions' environment)."""

    path: Path
    content: str

    def render(self) -> str:
        return f"cat > {shlex.quote(str(self.path))} <<EOF\n{self.content.rstrip()}\nEOF"


@dataclass(frozen=True)
class SchedulerJob:
    """Create the Cloud Scheduler job, or update it when it differs (google-cloud-scheduler).
    `body` is the job in the API's JSON form; `${NAME}` placeholders are filled in."""

    parent: str  # projects/P/locations/R
    body: dict[str, Any]

    def render(self) -> str:
        url = f"https://cloudscheduler.googleapis.com/v1/{self.parent}/jobs"
        return (
            f"# GET {url}/{self.body['name'].rsplit('/', 1)[-1]}: missing -> POST, different -> "
            "PATCH, equal -> nothing\n"
            f"POST {url}\n{json.dumps(self.body, indent=2)}"
        )


@dataclass(frozen=True)
class SubmissionGrants:
    """Each account's submitters and admins may create objects under
    `submissions/<account_id>/` of the bucket, through an IAM condition on the object's
    name, and no one else holds such a grant. The accounts are read from Firestore while
    deploying; the bucket's policy is then set in one write (its etag guards it)."""

    project: str
    database: str
    collection: str  # the accounts
    bucket: str
    role: str

    def condition(self, account_id: str) -> dict[str, str]:
        name = f"projects/_/buckets/{self.bucket}/objects/submissions/{account_id}/"
        return {
            "title": f"submissions/{account_id}/ by its submitters",
            "expression": f'resource.name.startsWith("{name}")',
        }

    def render(self) -> str:
        example = self.condition("<account_id>")
        lines = [
            f"# for each account in Firestore {self.collection}, each of its submitters and "
            "admins M:",
            f"#   {self.role} on gs://{self.bucket} for M, on condition",
            f"#   {example['expression']}",
            "# and such grants of anyone no longer there removed:",
            f"gcloud storage buckets get-iam-policy gs://{self.bucket} --format=json",
            f"gcloud storage buckets set-iam-policy gs://{self.bucket} POLICY.json",
        ]
        return "\n".join(lines)


Action = Run | Lookup | WriteFile | SchedulerJob | SubmissionGrants


@dataclass(frozen=True)
class Step:
    """One numbered step of the plan: why it is there, and what it does."""

    title: str
    why: str
    actions: tuple[Action, ...] = field(default_factory=tuple)
