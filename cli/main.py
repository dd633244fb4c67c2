"""The `ktr` commands: a verb each, `--json` for scripts, exit codes that mean something
(0 done, 1 the job failed, 2 killed, 3 usage or API errors), never a traceback."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TransferSpeedColumn,
)

from cli import archive, config, jobs, render
from cli import auth as auth_tokens
from cli.client import Api
from cli.errors import EXIT_ERROR, CliError
from cli.params import JobSpec, read_rows, sweep
from cli.watch import POLL_SECONDS, LogFollower, Waiter, log_tail

F = TypeVar("F", bound=Callable[..., Any])
INLINE_BYTES = 1 << 20  # a zip up to this goes in the create itself (the API takes 20 MiB)
LIST_PAGE = 50  # jobs a `ktr list` shows without --all
ALL_PAGE = 1000  # the API's largest page


def common(command: F) -> F:
    """--api and --json, on every command."""
    command = click.option(
        "--api",
        metavar="URL",
        help="The API's address (else KTR_API_URL, else API_URL in .local-cloud/env).",
    )(command)
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(command)


AS_EMAIL = "ktr.as"  # where `ktr --as EMAIL` keeps the email, in the context's meta


def connect(api: str | None) -> Api:
    """The API, called as `--as` (on the local cloud) or as the user."""
    return Api(config.api_url(api), click.get_current_context().meta.get(AS_EMAIL))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubernetes-task-runner", prog_name="ktr")
@click.option(
    "--as",
    "as_email",
    metavar="EMAIL",
    help="Call the local cloud as EMAIL (default operator@local); a deployed API knows "
    "you by your Google credentials.",
)
@click.pass_context
def app(ctx: click.Context, as_email: str | None) -> None:
    """Run containers as jobs on the task runner.

    \b
    Example:
      ktr submit ./data --image python:3.11 --wait --fetch out -- python job.py
    """
    ctx.meta[AS_EMAIL] = as_email
    command = (ctx.obj or {}).get("command")
    if command and ctx.invoked_subcommand != "submit":
        raise click.UsageError("Only `ktr submit` takes a command after --")


# -- submit ------------------------------------------------------------------------------


@app.command(
    epilog="""\b
Examples:
  ktr submit ./in --image python:3.11 --wait --fetch out -- python -c "print(1)"
  ktr submit in.zip --image alpine:3 --env MODE=fast --cpu 500m --memory 256Mi -- sh run.sh
  ktr submit --params rows.csv --image alpine:3 --wait -- sh -c 'echo "$sample"'
  ktr submit --params rows.csv --image python:3.11 -- python train.py --lr {lr}"""
)
@click.argument("source", required=False, type=click.Path(path_type=Path))
@click.option("--image", required=True, help="The container image, e.g. python:3.11.")
@click.option("--name", help="The job's name (lowercase letters, digits and -).")
@click.option("--env", "env", multiple=True, metavar="K=V", help="An environment variable.")
@click.option("--cpu", help="CPU limit, a Kubernetes quantity (500m, 2).")
@click.option("--memory", help="Memory limit, a Kubernetes quantity (256Mi, 2Gi).")
@click.option("--timeout", type=int, metavar="S", help="Seconds the job may run.")
@click.option("--retries", type=int, metavar="R", help="Times the job's code is run again.")
@click.option("--spot", is_flag=True, help="Run on Spot capacity.")
@click.option("--start-after", metavar="T", help="RFC 3339 time or epoch ms to start at.")
@click.option("--account", help="The account the job belongs to.")
@click.option(
    "--params",
    "params_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A CSV: one array job, a task per row. Each column is a variable of its task "
    '(read it as "$column"); an argument that is exactly {column} is the row\'s value, and '
    "so is {column} in an --env value. Never inside a program: values are data.",
)
@click.option(
    "--wait", is_flag=True, help="Wait for the end: exit 0 succeeded, 1 failed, 2 killed."
)
@click.option(
    "--fetch",
    type=click.Path(path_type=Path),
    metavar="OUT",
    help="Then unzip the output into OUT.",
)
@click.option("--logs", is_flag=True, help="Print the log as it grows while waiting.")
@common
@click.pass_context
def submit(
    ctx: click.Context,
    source: Path | None,
    image: str,
    name: str | None,
    env: tuple[str, ...],
    cpu: str | None,
    memory: str | None,
    timeout: int | None,
    retries: int | None,
    spot: bool,
    start_after: str | None,
    account: str | None,
    params_file: Path | None,
    wait: bool,
    fetch: Path | None,
    logs: bool,
    api: str | None,
    as_json: bool,
) -> None:
    """Submit a job: SOURCE (a directory, zipped here, or a zip) becomes its /input, and
    what follows -- its command. Prints the job's id."""
    spec = JobSpec(
        image=image,
        name=name,
        command=tuple((ctx.obj or {}).get("command") or ()),
        env=tuple(_env_pair(item) for item in env),
        cpu=cpu,
        memory=memory,
        timeout=timeout,
        retries=retries,
        spot=spot,
        start_after=start_after,
        account=account,
    )
    specs = [spec]
    if params_file is not None:
        specs = [sweep(spec, read_rows(params_file))]
    client = connect(api)
    zipped = archive.input_zip(source) if source is not None else None
    created = [_create(client, one, zipped, as_json) for one in specs]
    if not (wait or fetch or logs):
        return
    sys.exit(_wait_and_report(client, created, logs=logs, fetch=fetch, as_json=as_json))


def _env_pair(item: str, option: str = "--env") -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key:
        raise click.BadParameter(f"{item!r} is not K=V", param_hint=option)
    return key, value


def _create(client: Api, spec: JobSpec, zipped: IO[bytes] | None, as_json: bool) -> dict[str, Any]:
    size = archive.size_of(zipped) if zipped is not None else 0
    upload = zipped is not None and size > INLINE_BYTES
    inline = None
    if zipped is not None and not upload:
        zipped.seek(0)
        inline = base64.b64encode(zipped.read()).decode()
    envelope = client.create(jobs.create_body(spec, input_zip=inline, upload=upload))
    job: dict[str, Any] = envelope["data"]
    if upload and zipped is not None:
        _upload(client, str(job["input_upload_url"]), zipped, size)
    if as_json:
        render.json_line(job)
    else:
        click.echo(job["id"])
        render.err.print(f"{job['name']}: {job['status']}", highlight=False)
    return job


class _Reading:
    """A file read for an upload, advancing a progress bar as it goes."""

    def __init__(self, handle: IO[bytes], size: int, advance: Callable[[int], None]) -> None:
        self.handle, self.size, self.advance = handle, size, advance

    def read(self, amount: int = -1) -> bytes:
        chunk = self.handle.read(amount)
        self.advance(len(chunk))
        return chunk

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Any:
        return iter(lambda: self.read(1 << 20), b"")


def _transfer_bar() -> Progress:
    return Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=render.err,
        transient=True,
    )


def _upload(client: Api, url: str, zipped: IO[bytes], size: int) -> None:
    zipped.seek(0)
    with _transfer_bar() as bar:
        task = bar.add_task("upload", total=size)
        reading = _Reading(zipped, size, lambda n: bar.advance(task, n))
        client.put(url, reading, size)  # type: ignore[arg-type]


def _wait_and_report(
    client: Api,
    created: list[dict[str, Any]],
    *,
    logs: bool = False,
    fetch: Path | None = None,
    as_json: bool = False,
) -> int:
    several = len(created) > 1

    def print_log(job: dict[str, Any], text: str) -> None:
        if several:
            text = "".join(f"[{job['name']}] {line}\n" for line in text.splitlines())
        sys.stdout.write(text)
        sys.stdout.flush()

    waiter = Waiter(client, render.err, follow_logs=logs, on_log=print_log)
    try:
        final = waiter.wait([job["id"] for job in created])
    except KeyboardInterrupt:
        ids = " ".join(job["id"] for job in created)
        click.echo(f"ktr: stopped waiting; the job goes on (ktr wait {ids})", err=True)
        return 130
    codes = []
    for job in final.values():
        codes.append(jobs.exit_code(job))
        if as_json:
            render.json_line(job)
        if job["status"] == "failed":
            render.failure(job, None if logs else log_tail(client, job["id"]))
        elif job["status"] == "killed":
            click.echo(f"{job['name']} was killed: {job.get('message') or ''}".rstrip(), err=True)
        elif job["status"] == "succeeded" and fetch is not None:
            _fetch(client, job, fetch / job["name"] if several else fetch, as_json=False)
    return jobs.worst(codes)


# -- the other verbs ---------------------------------------------------------------------


@app.command(
    epilog="\b\nExamples:\n  ktr status sweep-1\n  ktr status 0f2b8c1e-4a8e-4c5e-9a57-1c2d3e4f5a6b"
)
@click.argument("job_id", metavar="ID|NAME")
@common
def status(job_id: str, api: str | None, as_json: bool) -> None:
    """A job's record, with its timeline."""
    client = connect(api)
    job = client.job(client.resolve(job_id))
    if as_json:
        render.json_line(job)
    else:
        render.job_detail(job)


@app.command(
    name="list",
    epilog="\b\nExamples:\n  ktr list\n  ktr list --status failed --account acct-1\n"
    "  ktr list --status succeeded --all --json | jq -r .id",
)
@click.option(
    "--status",
    "status_",
    default="any",
    show_default=True,
    help="One status (oldest first), or any (every status, newest first).",
    type=click.Choice(["any", "created", "running", "cleaning", "succeeded", "failed", "killed"]),
)
@click.option("--account", help="Only this account's jobs.")
@click.option("--all", "every_page", is_flag=True, help="Every page, not only the first.")
@common
def list_(
    status_: str, account: str | None, every_page: bool, api: str | None, as_json: bool
) -> None:
    """Your recent jobs, newest first, or those in one status, oldest first: a table, or
    one JSON object a line."""
    client = connect(api)
    size = ALL_PAGE if every_page else LIST_PAGE
    shown: list[dict[str, Any]] = []
    more = ""
    for page, token in client.pages(status_, account, size, every_page):
        more = token
        if as_json:
            for job in page:
                render.json_line(job)
        shown.extend(page)
    if not as_json:
        if shown:
            render.out.print(render.job_table(shown))
        else:
            click.echo(f"No {_jobs_in(status_)}.", err=True)
    if more:
        click.echo(f"(more {_jobs_in(status_)}: add --all to see every page)", err=True)


def _jobs_in(status: str) -> str:
    return "jobs" if status == "any" else f"{status} jobs"


@app.command(epilog="\b\nExamples:\n  ktr logs ID --tail 50\n  ktr logs ID -f")
@click.argument("job_id", metavar="ID|NAME")
@click.option("-f", "--follow", is_flag=True, help="Keep printing what is new until the job ends.")
@click.option("--tail", type=click.IntRange(1, 100_000), metavar="N", help="Only the last N lines.")
@common
def logs(job_id: str, follow: bool, tail: int | None, api: str | None, as_json: bool) -> None:
    """The log of a job's container (while it runs, and saved after)."""
    client = connect(api)
    job_id = client.resolve(job_id)
    if not follow:
        view = client.log(job_id, tail=tail)
        if as_json:
            render.json_line(view)
        else:
            sys.stdout.write(str(view.get("log", "")))
        return
    follower = LogFollower(client, job_id)
    try:
        while True:
            new = follower.poll()
            if new:
                if as_json:
                    render.json_line({"log": new})
                else:
                    sys.stdout.write(new)
                    sys.stdout.flush()
            if follower.complete:
                break
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return
    if not follower.seen and follower.notice:
        click.echo(follower.notice, err=True)


@app.command(epilog="\b\nExample:\n  ktr fetch ID ./out")
@click.argument("job_id", metavar="ID|NAME")
@click.argument("out", type=click.Path(path_type=Path))
@common
def fetch(job_id: str, out: Path, api: str | None, as_json: bool) -> None:
    """Download a succeeded job's output and unzip it into OUT."""
    client = connect(api)
    job = client.job(client.resolve(job_id))
    if job["status"] != "succeeded" or not job.get("output_file_url"):
        problem = CliError(f"{job['name']} is {job['status']}: it has no output to fetch")
        problem.exit_code = jobs.exit_code(job) if job["status"] in jobs.FINAL else EXIT_ERROR
        raise problem
    _fetch(client, job, out, as_json=as_json)


def _fetch(client: Api, job: dict[str, Any], out: Path, *, as_json: bool) -> None:
    """The output unzipped into `out`; an array job's, each task's into `out/<index>/`."""
    urls = job.get("task_output_urls")
    if urls is None and job.get("tasks"):  # too many tasks to list on the record
        count = int(job["tasks"]["count"])
        urls = [client.task_output_url(str(job["id"]), index) for index in range(count)]
    if urls is None:
        _fetch_one(client, job, str(job["output_file_url"]), out, as_json=as_json)
        return
    for index, url in enumerate(urls):
        if url is not None:
            _fetch_one(client, job, url, out / str(index), as_json=as_json)


def _fetch_one(client: Api, job: dict[str, Any], url: str, out: Path, *, as_json: bool) -> None:
    with tempfile.TemporaryFile() as handle, _transfer_bar() as bar:
        task = bar.add_task("download", total=None)

        def progress(total: int | None = None, advance: int = 0) -> None:
            if total is not None:
                bar.update(task, total=total)
            bar.advance(task, advance)

        client.download(url, handle, progress)
        handle.seek(0)
        names = archive.unzip(handle, out)
    if as_json:
        render.json_line({"id": job["id"], "out": str(out), "files": names})
    else:
        click.echo(f"{job['name']}: {len(names)} files in {out}", err=True)


@app.command(epilog="\b\nExample:\n  ktr kill ID")
@click.argument("job_id", metavar="ID|NAME")
@common
def kill(job_id: str, api: str | None, as_json: bool) -> None:
    """Kill a running job, or one waiting for its start time or its upload."""
    client = connect(api)
    envelope = client.kill(client.resolve(job_id))
    job = envelope["data"]
    if as_json:
        render.json_line(job)
    else:
        click.echo(
            f"{job['name']}: {job['status']}"
            + (f" ({envelope['msg']})" if envelope.get("msg") else "")
        )


@app.command(
    epilog="\b\nExample:\n  ktr wait ID1 ID2 && echo all succeeded",
)
@click.argument("job_ids", metavar="ID|NAME...", nargs=-1, required=True)
@common
def wait(job_ids: tuple[str, ...], api: str | None, as_json: bool) -> None:
    """Wait for jobs to end. Exit 0 if all succeeded, else the worst: 3 a job could not be
    read, 1 one failed, 2 one was killed."""
    client = connect(api)
    created = [client.job(client.resolve(job_id)) for job_id in job_ids]
    sys.exit(_wait_and_report(client, created, as_json=as_json))


# -- callers and accounts ----------------------------------------------------------------


@app.group()
def auth() -> None:
    """Identity tokens."""


@auth.command(epilog="\b\nExamples:\n  ktr auth token\n  ktr --as ana@example.com auth token")
@click.option("--api", metavar="URL", help="The API the token is for (its audience).")
def token(api: str | None) -> None:
    """Print the identity token ktr sends: for `--as` on the local cloud (else
    operator@local), or the user's Google one for a deployed API."""
    found = connect(api).token()
    if found is None:
        raise CliError(
            f"No issuer key for a local token: run ktr inside the checkout where `make run` "
            f"is up, or set {config.ISSUER_KEY_VARIABLE}"
        )
    click.echo(found)


@app.command(epilog="\b\nExamples:\n  ktr ui\n  ktr --as ana@example.com ui")
@click.option("--api", metavar="URL", help="The API whose page it is.")
def ui(api: str | None) -> None:
    """Print the status page's link, signed in as you (the token in it lasts an hour, and
    the page keeps it for its tab only)."""
    client = connect(api)
    found = client.token()
    click.echo(f"{client.url}/ui/" + (f"#token={found}" if found else ""))


@app.group(
    epilog="\b\nExamples:\n  ktr accounts list\n  ktr accounts create team-a "
    "--member ana@example.com=admin\n  ktr accounts set team-a bo@example.com submitter"
)
def accounts() -> None:
    """Accounts and their members: viewer (see), submitter (also create and kill), admin
    (also manage the members)."""


@accounts.command(name="list")
@common
def accounts_list(api: str | None, as_json: bool) -> None:
    """Your accounts (every account, for an operator)."""
    client = connect(api)
    found = client.accounts()
    if as_json:
        for account in found:
            render.json_line(account)
    elif found:
        render.out.print(render.account_table(found, client.as_email or _me(client)))
    else:
        click.echo("No accounts.", err=True)


@accounts.command(name="show")
@click.argument("account_id")
@common
def accounts_show(account_id: str, api: str | None, as_json: bool) -> None:
    """An account's members and their roles."""
    _print_account(connect(api).account(account_id), as_json)


@accounts.command(name="create")
@click.argument("account_id")
@click.option("--member", "members", multiple=True, metavar="EMAIL=ROLE", help="A member.")
@common
def accounts_create(
    account_id: str, members: tuple[str, ...], api: str | None, as_json: bool
) -> None:
    """Create an account (operators only)."""
    given = dict(_env_pair(member, "--member") for member in members)
    _print_account(connect(api).create_account(account_id, given), as_json)


@accounts.command(name="set")
@click.argument("account_id")
@click.argument("email")
@click.argument("role", type=click.Choice(["viewer", "submitter", "admin"]))
@common
def accounts_set(account_id: str, email: str, role: str, api: str | None, as_json: bool) -> None:
    """Add a member, or give one another role (the account's admins, operators)."""
    _print_account(connect(api).set_member(account_id, email, role)["data"], as_json)


@accounts.command(name="quota")
@click.argument("account_id")
@click.option(
    "--on-demand",
    "on_demand",
    metavar="cpu=N,memory=Q,pods=N",
    help="The quota of on-demand capacity (any of the three).",
)
@click.option("--spot", metavar="cpu=N,memory=Q,pods=N", help="The quota of Spot capacity.")
@click.option("--weight", type=float, help="The account's fair-sharing weight (1 by default).")
@common
def accounts_quota(
    account_id: str,
    on_demand: str | None,
    spot: str | None,
    weight: float | None,
    api: str | None,
    as_json: bool,
) -> None:
    """Set an account's share of the cluster (operators only): its quota per flavor, and
    its weight when the accounts share what is idle.

    \b
    Example:
      ktr accounts quota team-a --spot cpu=64,memory=256Gi,pods=200 --weight 2"""
    body: dict[str, Any] = {}
    quota = {
        name: _resources(text, flag)
        for name, text, flag in (("on-demand", on_demand, "--on-demand"), ("spot", spot, "--spot"))
        if text
    }
    if quota:
        body["quota"] = quota
    if weight is not None:
        body["fair_share_weight"] = weight
    if not body:
        raise click.UsageError("give --on-demand, --spot or --weight")
    _print_account(connect(api).change_account(account_id, body), as_json)


def _resources(text: str, flag: str) -> dict[str, str]:
    """`cpu=8,memory=32Gi,pods=20` (any of them) as the API takes a flavor's quota."""
    return dict(_env_pair(pair.strip(), flag) for pair in text.split(",") if pair.strip())


@accounts.command(name="remove")
@click.argument("account_id")
@click.argument("email")
@common
def accounts_remove(account_id: str, email: str, api: str | None, as_json: bool) -> None:
    """Take a member out (the account's admins, operators; anyone may leave)."""
    _print_account(connect(api).set_member(account_id, email, None)["data"], as_json)


def _print_account(account: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.json_line(account)
    else:
        render.account_detail(account)


def _me(client: Api) -> str | None:
    return None if auth_tokens.needs_token(client.url) else auth_tokens.LOCAL_CALLER


# -- the entry point ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """`ktr`: what follows the first `--` is the job's command, never an option of ktr."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, command = args[:at], args[at + 1 :]
    as_json = "--json" in args
    try:
        code = app.main(args=args, prog_name="ktr", obj={"command": command}, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ktr: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as problem:  # usage errors: exit 3, not click's 2
        problem.show()
        sys.exit(EXIT_ERROR)
    except CliError as problem:
        render.error(problem, as_json)
        sys.exit(problem.exit_code)
    except KeyboardInterrupt:
        click.echo("ktr: interrupted", err=True)
        sys.exit(130)
    except Exception as problem:  # never a traceback: one line, and the details on demand
        if os.environ.get("KTR_DEBUG"):
            raise
        click.echo(f"ktr: unexpected error: {type(problem).__name__}: {problem}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
