"""`--params FILE.csv`: one array job, a task per row, kubeque style.

The rows become the tasks' `task_environments` (a variable per column), which the API sets
through `/bin/sh` before the command runs. A command reads them as variables (`"$sample"`
in a shell, `os.environ["sample"]` in Python). An argument that is exactly `{column}` is the
row's value as that argument: the command is sent as a `sh -c` script that reads
`"${column}"`, quoted. A value is never put inside another argument, since that argument may
be a program (`sh -c 'echo {sample}'` would run a row's `$(...)`); such a command is
refused, and so is `{column}` as the program of `-c` or `-e`. An --env value holding
`{column}` becomes a task variable with each row's text: a value, never run."""

from __future__ import annotations

import csv
import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cli.errors import CliError

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# The options after which an argument is a program: sh, bash, python, perl, ruby, node.
PROGRAM_OPTIONS = frozenset({"-c", "-e", "-E", "--command", "--eval", "-ec", "-xc", "-exc"})


@dataclass(frozen=True)
class JobSpec:
    """What `ktr submit` makes one job from, before its input."""

    image: str
    name: str | None = None
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cpu: str | None = None
    memory: str | None = None
    timeout: int | None = None
    retries: int | None = None
    spot: bool = False
    start_after: str | None = None
    account: str | None = None
    task_environments: tuple[dict[str, str], ...] = ()  # an array job's, one per task


def read_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CliError(f"--params {path}: {error}") from None
    if not rows:
        raise CliError(f"--params {path}: no rows under the header")
    return rows


def substitute(text: str, row: dict[str, str]) -> str:
    """`{column}` replaced by the row's value; other braces are left as they are."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in row:
            return match[0]
        return row[match[1]] or ""  # a short row's missing cells are None

    return PLACEHOLDER.sub(value, text)


def _script(command: tuple[str, ...], columns: set[str]) -> str:
    """The command as a `sh -c` script in which an argument `{column}` reads the task's
    variable, quoted, and every other argument is itself, quoted."""

    def word(part: str) -> str:
        match = PLACEHOLDER.fullmatch(part)
        return f'"${{{match[1]}}}"' if match and match[1] in columns else shlex.quote(part)

    return "exec " + " ".join(word(part) for part in command)


def _check_placeholders(command: tuple[str, ...], columns: set[str]) -> None:
    """Refuse a column's value inside an argument, or as a program."""
    for before, part in zip(("", *command), command, strict=False):
        named = [match[1] for match in PLACEHOLDER.finditer(part) if match[1] in columns]
        if not named:
            continue
        if not PLACEHOLDER.fullmatch(part):
            raise CliError(
                f"--params: {{{named[0]}}} must be a whole argument, not inside {part!r}: a "
                f"value put inside a program could run as code. Read the task's variable "
                f"instead, such as \"${named[0]}\" in sh or os.environ['{named[0]}'] in Python"
            )
        if before in PROGRAM_OPTIONS:
            raise CliError(
                f"--params: {{{named[0]}}} after {before} would run each row's value as a "
                "program: give the program, and read the task's variable in it"
            )


def sweep(spec: JobSpec, rows: list[dict[str, str]]) -> JobSpec:
    """One array job: a task per row, its columns as the task's variables."""
    if not spec.command:
        raise CliError("--params needs a command after --: the tasks' variables are set for it")
    columns = {column for column in rows[0] if column and PLACEHOLDER.fullmatch(f"{{{column}}}")}
    if not columns:
        raise CliError("--params: no column is a variable name (letters, digits, _)")
    templated = {key: value for key, value in spec.env if PLACEHOLDER.search(value)}
    tasks = tuple(
        {
            **{column: row.get(column) or "" for column in sorted(columns)},
            **{key: substitute(value, row) for key, value in templated.items()},
        }
        for row in rows
    )
    command = spec.command
    _check_placeholders(command, columns)
    if any((match := PLACEHOLDER.fullmatch(part)) and match[1] in columns for part in command):
        command = ("/bin/sh", "-c", _script(command, columns))
    env = tuple((key, value) for key, value in spec.env if key not in templated)
    return replace(spec, command=command, env=env, task_environments=tasks)


def task_environments(spec: JobSpec) -> dict[str, Any]:
    return {"task_environments": list(spec.task_environments)} if spec.task_environments else {}
