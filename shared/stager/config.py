"""The stager's settings, built once from the command line and the environment set by the
job manifest. Only the standard library: `--help` and usage errors stay fast."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.stager.errors import UsageError

MIB = 1024 * 1024
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise UsageError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Limits:
    """Bounds on an input zip, shared by the API's upload check and the stager."""

    max_files: int = 10_000  # MAX_INPUT_FILES: entries (files and directories)
    max_uncompressed_bytes: int = 1024 * MIB  # MAX_INPUT_UNCOMPRESSED_BYTES: all entries, B
    max_compression_ratio: float = 100.0  # MAX_INPUT_COMPRESSION_RATIO: per entry

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(
            max_files=_int(env, "MAX_INPUT_FILES", cls.max_files, 1),
            max_uncompressed_bytes=_int(
                env, "MAX_INPUT_UNCOMPRESSED_BYTES", cls.max_uncompressed_bytes, 0
            ),
            max_compression_ratio=_float(
                env, "MAX_INPUT_COMPRESSION_RATIO", cls.max_compression_ratio, 1.0
            ),
        )


@dataclass(frozen=True)
class Credentials:
    """Where the storage client's identity comes from, in order of precedence."""

    emulator_host: str | None  # STORAGE_EMULATOR_HOST: anonymous, for fake-gcs-server
    key_file: str | None  # GC_CREDENTIALS_FILE_PATH: a service-account key from a Secret
    project: str | None  # GOOGLE_CLOUD_PROJECT: None = the credentials' own project
    # Neither set: Application Default Credentials (Workload Identity on GKE).


@dataclass(frozen=True)
class StagerConfig:
    command: str  # stage-in or stage-out
    # Stage-in reads its input from `input_url` when set, else from bucket/object_name.
    input_url: str | None  # --url / INPUT_URL: a signed URL; stage-in needs no identity
    bucket: str | None  # --bucket / STAGER_BUCKET / GC_BUCKET_NAME
    object_name: str | None  # --object / STAGER_OBJECT: e.g. <job_name>-input.zip
    directory: Path  # --dir / STAGER_DIR: the volume's mount path, /input or /output
    job_id: str | None  # --job-id / STAGER_JOB_ID: required by stage-out (object metadata)
    credentials: Credentials
    limits: Limits = field(default_factory=Limits)
    chunk_size: int = 24 * MIB  # STAGER_CHUNK_MIB (24): resumable upload chunk, bounds RAM
    compress_level: int = 6  # STAGER_COMPRESS_LEVEL (6): deflate level of compressible files
    retry_deadline: float = 120.0  # STAGER_RETRY_SECONDS (120): in-process retries, s
    max_download_bytes: int = 20 * MIB  # MAX_INPUT_BYTES (20 MiB): the input zip itself


def build_config(
    command: str,
    *,
    bucket: str | None = None,
    object_name: str | None = None,
    directory: str | None = None,
    job_id: str | None = None,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> StagerConfig:
    """Arguments win over the environment; a missing required value names both."""
    env = os.environ if env is None else env

    def pick(value: str | None, *names: str) -> str | None:
        if value and value.strip():
            return value.strip()
        for name in names:
            if env.get(name, "").strip():
                return env[name].strip()
        return None

    def need(value: str | None, flag: str, *names: str) -> str:
        found = pick(value, *names)
        if found is None:
            raise UsageError(f"{command}: {flag} is required (or set {' or '.join(names)})")
        return found

    input_url = pick(url, "INPUT_URL") if command == STAGE_IN else None
    if input_url is not None and not input_url.startswith(("https://", "http://")):
        raise UsageError(f"{command}: --url must be an http(s) URL")

    def locate(value: str | None, flag: str, *names: str) -> str | None:
        """With a URL, stage-in needs no bucket or object: they only name the input."""
        return pick(value, *names) if input_url else need(value, flag, *names)

    chosen_bucket = locate(bucket, "--bucket", "STAGER_BUCKET", "GC_BUCKET_NAME")
    chosen_object = locate(object_name, "--object", "STAGER_OBJECT")
    chosen_job_id = pick(job_id, "STAGER_JOB_ID")
    if command == STAGE_OUT and chosen_job_id is None:
        raise UsageError(f"{command}: --job-id is required (or set STAGER_JOB_ID)")
    level = _int(env, "STAGER_COMPRESS_LEVEL", 6, 0)
    if level > 9:
        raise UsageError(f"STAGER_COMPRESS_LEVEL must be 0-9, got {level}")
    chunk_mib = _int(env, "STAGER_CHUNK_MIB", 24, 1)
    return StagerConfig(
        command=command,
        input_url=input_url,
        bucket=chosen_bucket,
        object_name=chosen_object,
        directory=Path(need(directory, "--dir", "STAGER_DIR")),
        job_id=chosen_job_id,
        credentials=Credentials(
            emulator_host=pick(None, "STORAGE_EMULATOR_HOST"),
            key_file=pick(None, "GC_CREDENTIALS_FILE_PATH"),
            project=pick(None, "GOOGLE_CLOUD_PROJECT"),
        ),
        limits=Limits.from_env(env),
        chunk_size=chunk_mib * MIB,  # a multiple of 256 KiB, as resumable uploads require
        compress_level=level,
        retry_deadline=_float(env, "STAGER_RETRY_SECONDS", 120.0, 0.0),
        max_download_bytes=_int(env, "MAX_INPUT_BYTES", 20 * MIB, 1),
    )
