"""How jobs look on a terminal, and errors on stderr."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cli.errors import ApiError, CliError
from cli.jobs import option_of

# Piped, a table is not cut to 80 columns: each row stays one line for grep and awk.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)
err = Console(stderr=True, highlight=False)


def json_line(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


def when(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def error(problem: CliError, as_json: bool) -> None:
    """One line naming the error, then one per field at fault (with its option)."""
    if as_json:
        json_line(problem.as_json())
    click.echo(f"ktr: {problem.message}", err=True)
    if isinstance(problem, ApiError):
        for field, why in problem.fields.items():
            option = option_of(field)
            named = f"{field} ({option})" if option else field
            click.echo(f"  {named}: {why}", err=True)


def job_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "CREATED", "ACCOUNT", "IMAGE"):
        table.add_column(column, overflow="fold", no_wrap=column in ("ID", "STATUS", "CREATED"))
    for job in jobs:
        table.add_row(
            job.get("id", ""),
            job.get("name", ""),
            shown_status(job),
            when(job.get("created")),
            job.get("account_id", "-"),
            (job.get("job_parameters") or {}).get("docker_image", ""),
        )
    return table


def account_table(accounts: list[dict[str, Any]], me: str | None) -> Table:
    """One row an account: its id, the members, and the role of `me` in it."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ACCOUNT", "MEMBERS", "YOUR ROLE", "WEIGHT"):
        table.add_column(column, overflow="fold")
    for account in accounts:
        members = account.get("members") or {}
        weight = account.get("fair_share_weight")
        table.add_row(
            account.get("account_id", ""),
            str(len(members)),
            members.get(me or "", "-"),
            f"{weight:g}" if isinstance(weight, int | float) else "-",
        )
    return table


def account_detail(account: dict[str, Any]) -> None:
    out.print(f"[bold]{account.get('account_id')}[/]")
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("MEMBER", overflow="fold")
    table.add_column("ROLE")
    for email, role in sorted((account.get("members") or {}).items()):
        table.add_row(email, role)
    out.print(table)
    quota = account.get("quota") or {}
    if quota:
        shares = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("QUOTA", "CPU", "MEMORY", "PODS"):
            shares.add_column(column)
        for flavor, resources in quota.items():
            shares.add_row(flavor, *(str(resources.get(r, "-")) for r in ("cpu", "memory", "pods")))
        out.print(shares)
    if "fair_share_weight" in account:
        out.print(f"fair-sharing weight: {account['fair_share_weight']:g}")


def timeline(job: dict[str, Any]) -> list[tuple[Any, str]]:
    """The job's steps: its recorded transitions when the API gives them, else what its
    times say (created, started, ended)."""
    steps: list[tuple[Any, str]] = [(job.get("created"), "created")]
    recorded = job.get("transitions")
    if isinstance(recorded, list) and recorded:
        for step in recorded:
            why = f" ({step['reason']})" if step.get("reason") else ""
            steps.append((step.get("at"), f"{step.get('from') or '-'} -> {step.get('to')}{why}"))
        if job.get("admitted"):
            steps.append((job["admitted"], "admitted by Kueue"))
        if job.get("start_time"):
            steps.append((job["start_time"], "container started"))
        return sorted(steps, key=lambda step: step[0] or 0)
    if job.get("scheduled_for"):
        steps.append((job["scheduled_for"], "scheduled start"))
    if job.get("admitted"):
        steps.append((job["admitted"], "admitted by Kueue"))
    if job.get("start_time"):
        steps.append((job["start_time"], "container started"))
    if job.get("stop_time"):
        steps.append((job["stop_time"], str(job.get("status"))))
    return steps


def shown_status(job: dict[str, Any]) -> str:
    """The status, or "waiting (#N)" for a running job that Kueue has not admitted yet."""
    queued = job.get("queued")
    if job.get("status") == "running" and isinstance(queued, dict):
        position = queued.get("position")
        return f"waiting (#{position})" if position else "waiting"
    return str(job.get("status", ""))


def queue_rows(job: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where the job waits for quota, why, and since when; or when it was admitted."""
    queued = job.get("queued")
    if isinstance(queued, dict):
        place = f", #{queued['position']} in line" if queued.get("position") else ""
        return [
            ("queue", f"{queued.get('queue')}{place}"),
            ("waiting", f"since {when(queued.get('since'))}: {queued.get('reason')}"),
        ]
    return [
        ("queue", job.get("queue")),
        ("admitted", when(job["admitted"]) if job.get("admitted") else None),
    ]


def job_detail(job: dict[str, Any]) -> None:
    params = job.get("job_parameters") or {}
    rows: list[tuple[str, Any]] = [
        ("id", job.get("id")),
        ("name", job.get("name")),
        ("status", shown_status(job)),
        *queue_rows(job),
        ("account", job.get("account_id")),
        ("created by", job.get("created_by")),
        ("killed by", job.get("killed_by")),
        ("image", params.get("docker_image")),
        ("command", " ".join(params.get("command") or []) or None),
        ("args", " ".join(params.get("args") or []) or None),
        ("reason", job.get("reason")),
        ("message", job.get("message")),
        ("exit code", job.get("exit_code")),
        ("disruptions", job.get("disruptions")),
        ("output", job.get("output_file_url")),
    ]
    tasks = job.get("tasks")
    if isinstance(tasks, dict):
        rows.append(("tasks", ", ".join(f"{value} {key}" for key, value in tasks.items())))
    for failed in job.get("failed_tasks") or []:
        code = failed.get("exit_code")
        detail = f"{failed.get('reason')}" + (f", exit code {code}" if code is not None else "")
        rows.append((f"task {failed.get('index')}", f"failed: {detail}"))
    end = job.get("end_time") or job.get("stop_time")  # the container's own end, if known
    if job.get("start_time") and end:
        rows.append(("ran for", duration(end - job["start_time"])))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        if value is not None and value != "":
            table.add_row(key, str(value))
    out.print(table)
    out.print()
    out.print("[bold]timeline[/]")
    for at, what in timeline(job):
        out.print(f"  {when(at)}  {what}", soft_wrap=True)


def failure(job: dict[str, Any], log_tail: str | None) -> None:
    """dstat's status-detail: why it failed, its exit code and the end of its log."""
    line = f"{job.get('name')} failed: {job.get('reason', 'unknown reason')}"
    if job.get("message"):
        line += f": {job['message']}"
    click.echo(line, err=True)
    if job.get("exit_code") is not None:
        click.echo(f"exit code {job['exit_code']}", err=True)
    for failed in job.get("failed_tasks") or []:  # an array job's
        code = failed.get("exit_code")
        exit_code = f" (exit code {code})" if code is not None else ""
        click.echo(f"task {failed.get('index')}: {failed.get('message')}{exit_code}", err=True)
    if log_tail:
        click.echo("last lines of the log:", err=True)
        sys.stderr.write("".join(f"  {line}\n" for line in log_tail.rstrip("\n").split("\n")))
