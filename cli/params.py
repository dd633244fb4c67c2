"""`--params FILE.csv`: one job per row, kubeque style. `{column}` in the command, its
arguments and the environment's values takes the row's value; each name gets the row's
number. Array jobs will take this over: keep the expansion in `expand`."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

from cli.errors import CliError

MAX_NAME = 55  # the API's limit on a job's name
ROW_SUFFIX = 7  # "-" and up to six digits of a row number
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


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


def default_base_name(image: str, now_ms: int) -> str:
    """As the API names a job without a name: the image's slug and the time, cut to leave
    room for the row number."""
    slug = re.sub(r"[^a-z0-9]+", "-", image.lower()).strip("-") or "job"
    stamp = str(now_ms)
    return f"{slug[: MAX_NAME - len(stamp) - 1 - ROW_SUFFIX].rstrip('-')}-{stamp}"


def expand(spec: JobSpec, rows: list[dict[str, str]], base_name: str) -> list[JobSpec]:
    """One spec per row, named `<base_name>-<row number>` (from 1)."""
    return [
        replace(
            spec,
            name=f"{base_name}-{number}",
            command=tuple(substitute(part, row) for part in spec.command),
            env=tuple((key, substitute(value, row)) for key, value in spec.env),
        )
        for number, row in enumerate(rows, start=1)
    ]
