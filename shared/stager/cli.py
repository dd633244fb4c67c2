"""`python -m shared.stager stage-in|stage-out`: arguments, logging, and the one place that
turns an outcome into an exit code (errors.ExitCode) and the one line a user reads."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from shared import logs
from shared.contract.exits import ExitCode, StagerError, UsageError
from shared.stager.config import STAGE_IN, STAGE_OUT, TASK_ENV, StagerConfig, build_config

log = logging.getLogger("shared.stager")

# Kubernetes' default terminationMessagePath: when it exists (in a pod), the failure line is
# written there too, so the container's termination message is that line and nothing else
# (FallbackToLogsOnError only reads the log tail when the file is empty).
TERMINATION_LOG = Path("/dev/termination-log")


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
    stage_in = commands.add_parser(
        STAGE_IN,
        help="download the input zip through a signed URL and extract it safely into --dir",
        description="Download the input zip through a signed URL and extract it into --dir.",
    )
    stage_in.add_argument("--url", help="signed GET URL of the input zip (env INPUT_URL)")
    stage_in.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PATH",
        help="a file of the zip not to extract, e.g. job.json; repeatable "
        "(env STAGER_SKIP, comma-separated)",
    )
    stage_out = commands.add_parser(
        STAGE_OUT,
        help="zip --dir into the output object through a resumable upload session",
        description="Zip --dir into the object of a resumable upload session, once.",
    )
    stage_out.add_argument(
        "--upload-url",
        dest="url",
        help="resumable upload session URI of the output object (env OUTPUT_UPLOAD_URL)",
    )
    task_env = commands.add_parser(
        TASK_ENV,
        help="write an array job's task's variables (TASK_INDEX) for its command to source",
        description="Write task TASK_INDEX's variables from the tasks' JSON into --dir.",
    )
    task_env.add_argument("--url", help="signed GET URL of the tasks' JSON (env TASKS_URL)")
    for sub in (stage_in, stage_out, task_env):
        sub.add_argument("--dir", dest="directory", help="volume directory (env STAGER_DIR)")
        sub.add_argument("--job-id", help="job id for the log lines (env STAGER_JOB_ID)")
    return parser


def _run(config: StagerConfig) -> None:
    from shared.stager import commands

    if config.command == TASK_ENV:
        from shared.stager.tasks import write_task_env

        assert config.task_index is not None
        write_task_env(
            url=config.url,
            directory=config.directory,
            index=config.task_index,
            deadline=config.retry_deadline,
        )
    elif config.command == STAGE_IN:
        commands.stage_in(
            url=config.url,
            directory=config.directory,
            limits=config.limits,
            max_bytes=config.max_download_bytes,
            deadline=config.retry_deadline,
            public_only=config.public_only,
            skip=config.skip,
        )
    else:
        commands.stage_out(
            upload_url=config.url,
            directory=config.directory,
            chunk_size=config.chunk_size,
            compress_level=config.compress_level,
            retry_seconds=config.retry_deadline,
            plan=config.upload_plan,
        )


def _say(line: str) -> None:
    """The last line of the container's output, and its termination message in a pod."""
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    try:
        if TERMINATION_LOG.is_file():
            TERMINATION_LOG.write_text(line + "\n")
    except OSError:
        pass  # not in a pod, or not writable: the log tail stands in for it


def _refuse(error: StagerError) -> int:
    """A log line, then the one plain line on stderr that a user reads."""
    log.error(f"{error.label}: {error}", extra={"exit_code": int(error.exit_code)})
    _say(f"stager: {error.label}: {error}")
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
            url=args.url,
            directory=args.directory,
            job_id=args.job_id,
            skip=getattr(args, "skip", ()),
        )
    except UsageError as error:
        return _refuse(error)
    with logs.log_context(job_id=config.job_id, command=config.command):
        try:
            _run(config)
        except StagerError as error:
            return _refuse(error)
        except Exception as error:
            log.exception("unexpected failure")
            _say(f"stager: unexpected failure: {type(error).__name__} (see the log)")
            return int(ExitCode.FAILURE)
        log.info("done")
    return int(ExitCode.OK)
