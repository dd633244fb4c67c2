"""The stager's settings, built once from the command line and the environment set by the
job manifest. Only the standard library: `--help` and usage errors stay fast."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.contract.env import EnvReader
from shared.contract.exits import UsageError
from shared.contract.zips import Limits

if TYPE_CHECKING:
    from shared.stager.tasks import UploadPlan

MIB = 1024 * 1024
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"
TASK_ENV = "task-env"


@dataclass(frozen=True)
class StagerConfig:
    command: str  # stage-in, stage-out or task-env
    url: str  # stage-in: --url / INPUT_URL; stage-out: --upload-url / OUTPUT_UPLOAD_URL, or
    #   the URL of OUTPUT_UPLOAD_PLAN; task-env: --url / TASKS_URL
    directory: Path  # --dir / STAGER_DIR: the volume's mount path, /input or /output
    job_id: str | None  # --job-id / STAGER_JOB_ID: labels the log lines
    limits: Limits = field(default_factory=Limits)
    chunk_size: int = 24 * MIB  # STAGER_CHUNK_MIB (24): upload request size, bounds memory
    compress_level: int = 6  # STAGER_COMPRESS_LEVEL (6): deflate level of compressible files
    retry_deadline: float = 120.0  # STAGER_RETRY_SECONDS (120): in-process retries, s
    max_download_bytes: int = 20 * MIB  # MAX_INPUT_BYTES (20 MiB): the input zip itself
    public_only: bool = False  # INPUT_URL_PUBLIC_ONLY=1: a user's URL, checked before each
    #   request and redirect (never loopback, link-local or private addresses)
    skip: tuple[str, ...] = ()  # --skip / STAGER_SKIP (comma-separated): files of the zip
    #   (relative paths) stage-in leaves out of the directory, such as a submission's job.json
    upload_plan: UploadPlan | None = None  # OUTPUT_UPLOAD_PLAN: an array job's tasks', read
    #   for this task
    task_index: int | None = None  # TASK_INDEX: an array job's task (stage-out, task-env)


# The URL each command reads or writes: its flag and environment variable. Both are
# capabilities (a signed URL, an upload session URI): see fetch.where() before logging one.
URL_SOURCES = {
    STAGE_IN: ("--url", "INPUT_URL"),
    STAGE_OUT: ("--upload-url", "OUTPUT_UPLOAD_URL"),
    TASK_ENV: ("--url", "TASKS_URL"),
}


def build_config(
    command: str,
    *,
    url: str | None = None,
    directory: str | None = None,
    job_id: str | None = None,
    skip: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> StagerConfig:
    """Arguments win over the environment; a missing required value names both."""
    env = os.environ if env is None else env

    def pick(value: str | None, name: str) -> str | None:
        if value and value.strip():
            return value.strip()
        if env.get(name, "").strip():
            return env[name].strip()
        return None

    def need(value: str | None, flag: str, name: str) -> str:
        found = pick(value, name)
        if found is None:
            raise UsageError(f"{command}: {flag} is required (or set {name})")
        return found

    flag, variable = URL_SOURCES[command]
    plan, index = None, None
    if command == TASK_ENV or (command == STAGE_OUT and pick(url, variable) is None):
        raw_plan = pick(None, "OUTPUT_UPLOAD_PLAN") if command == STAGE_OUT else None
        if command == TASK_ENV or raw_plan is not None:
            from shared.stager.tasks import read_plan, task_index

            index = task_index(env)
            plan = read_plan(raw_plan, index) if raw_plan is not None else None
    chosen_url = need(url, flag, variable) if plan is None else plan.url
    if not chosen_url.startswith(("https://", "http://")):
        raise UsageError(f"{command}: {flag} must be an http(s) URL")
    read = EnvReader(env, UsageError)
    level = read.integer("STAGER_COMPRESS_LEVEL", 6, maximum=9)
    chunk_mib = read.integer("STAGER_CHUNK_MIB", 24, minimum=1)
    return StagerConfig(
        command=command,
        url=chosen_url,
        directory=Path(need(directory, "--dir", "STAGER_DIR")),
        job_id=pick(job_id, "STAGER_JOB_ID"),
        limits=Limits.from_env(env),
        # Whole MiB: always a multiple of 256 KiB, as every upload request but the last must be.
        chunk_size=chunk_mib * MIB,
        compress_level=level,
        retry_deadline=read.number("STAGER_RETRY_SECONDS", 120.0),
        max_download_bytes=read.integer("MAX_INPUT_BYTES", 20 * MIB, minimum=1),
        public_only=env.get("INPUT_URL_PUBLIC_ONLY", "").strip() == "1",
        skip=_skip(skip or env.get("STAGER_SKIP", "").split(",")),
        upload_plan=plan,
        task_index=index,
    )


def _skip(names: Sequence[str]) -> tuple[str, ...]:
    """Relative paths, normalised as the zip's entry names are (`./a//b` is `a/b`)."""
    kept = []
    for name in names:
        parts = [part for part in name.strip().split("/") if part not in ("", ".")]
        if ".." in parts or name.strip().startswith("/"):
            raise UsageError(f"--skip / STAGER_SKIP takes relative paths, got {name.strip()!r}")
        if parts:
            kept.append("/".join(parts))
    return tuple(kept)
