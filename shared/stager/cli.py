"""`python -m shared.stager stage-in|stage-out`: arguments, logging, and the one place that
turns an outcome into an exit code (errors.ExitCode)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from shared import logs
from shared.stager.config import STAGE_IN, STAGE_OUT, StagerConfig, build_config
from shared.stager.errors import ExitCode, StagerError, UsageError

log = logging.getLogger("shared.stager")


def container_command(
    command: str,
    *,
    bucket: str,
    object_name: str,
    directory: str,
    job_id: str,
) -> list[str]:
    """The container command a manifest should run, so the flags live in one place."""
    return [
        "python", "-m", "shared.stager", command,
        "--bucket", bucket, "--object", object_name, "--dir", directory, "--job-id", job_id,
    ]  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m shared.stager",
        description="Move a job's input and output between Cloud Storage and its volumes.",
        epilog="Exit codes: " + ", ".join(f"{int(code)} {code.name.lower()}" for code in ExitCode),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        STAGE_IN: "download the input zip and extract it safely into --dir",
        STAGE_OUT: "zip --dir and upload it as the output object, once",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--bucket", help="bucket (env STAGER_BUCKET, then GC_BUCKET_NAME)")
        sub.add_argument("--object", dest="object_name", help="object name (env STAGER_OBJECT)")
        sub.add_argument("--dir", dest="directory", help="volume directory (env STAGER_DIR)")
        sub.add_argument("--job-id", help="job id for logs and metadata (env STAGER_JOB_ID)")
    commands.choices[STAGE_IN].add_argument(
        "--url",
        help="read the input from this signed URL instead of --bucket/--object "
        "(env INPUT_URL): no storage identity needed",
    )
    return parser


def _run(config: StagerConfig) -> None:
    from shared.stager import commands

    if config.command == STAGE_IN and config.input_url:
        commands.stage_in_from_url(
            url=config.input_url,
            directory=config.directory,
            limits=config.limits,
            max_bytes=config.max_download_bytes,
            deadline=config.retry_deadline,
        )
        return
    from shared.stager import storage

    assert config.bucket is not None and config.object_name is not None  # build_config
    client = storage.make_client(config.credentials)
    retry = storage.retry_policy(config.retry_deadline)
    if config.command == STAGE_IN:
        commands.stage_in(
            client=client,
            bucket=config.bucket,
            object_name=config.object_name,
            directory=config.directory,
            limits=config.limits,
            retry=retry,
        )
    else:
        assert config.job_id is not None  # build_config requires it for stage-out
        commands.stage_out(
            client=client,
            bucket=config.bucket,
            object_name=config.object_name,
            directory=config.directory,
            job_id=config.job_id,
            retry=retry,
            chunk_size=config.chunk_size,
            compress_level=config.compress_level,
        )


def _refuse(error: StagerError) -> int:
    """The one-line message on stderr (what a user or `kubectl logs` reads) and a log line."""
    print(f"stager: {error.label}: {error}", file=sys.stderr, flush=True)
    log.error(f"{error.label}: {error}", extra={"exit_code": int(error.exit_code)})
    return int(error.exit_code)


def _configure_logs() -> None:
    level = os.environ.get("LOG_LEVEL", "").strip().upper() or "INFO"
    logs.configure(level if level in logging.getLevelNamesMapping() else "INFO")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code says how it went (see ExitCode)."""
    _configure_logs()
    try:
        args = _parser().parse_args(argv)
        config = build_config(
            args.command,
            bucket=args.bucket,
            object_name=args.object_name,
            directory=args.directory,
            job_id=args.job_id,
            url=getattr(args, "url", None),
        )
    except UsageError as error:
        return _refuse(error)
    with logs.log_context(job_id=config.job_id, command=config.command):
        try:
            _run(config)
        except StagerError as error:
            return _refuse(error)
        except Exception:
            log.exception("unexpected failure")
            print("stager: unexpected failure (see the log for the traceback)", file=sys.stderr)
            return int(ExitCode.FAILURE)
        log.info("done")
    return int(ExitCode.OK)
