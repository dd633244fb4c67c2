"""Where the API is: `--api`, then `KTR_API_URL`, then `API_URL` in the `.local-cloud/env`
that `make run` writes, looked up from the working directory upwards. The local cloud's
issuer key is found the same way: `LOCAL_ISSUER_KEY`, then that file's."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from cli.errors import CliError

ENV_VARIABLE = "KTR_API_URL"
LOCAL_ENV = Path(".local-cloud") / "env"


def find_local_env(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / LOCAL_ENV
        if candidate.is_file():
            return candidate
    return None


ISSUER_KEY_VARIABLE = "LOCAL_ISSUER_KEY"


def read_variable(env_file: Path, wanted: str) -> str | None:
    """A variable of an env file of `export NAME=value` lines (values shell-quoted)."""
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name.strip() == wanted and value:
            try:
                words = shlex.split(value)
            except ValueError:
                return None
            return words[0] if words else None
    return None


def read_api_url(env_file: Path) -> str | None:
    return read_variable(env_file, "API_URL")


def issuer_key(cwd: Path | None = None) -> Path | None:
    """The local cloud's issuer key file, if this shell or checkout has one."""
    if os.environ.get(ISSUER_KEY_VARIABLE):
        return Path(os.environ[ISSUER_KEY_VARIABLE])
    env_file = find_local_env(cwd or Path.cwd())
    found = read_variable(env_file, ISSUER_KEY_VARIABLE) if env_file is not None else None
    return Path(found) if found else None


def api_url(option: str | None, cwd: Path | None = None) -> str:
    if option:
        return _checked(option, "--api")
    if os.environ.get(ENV_VARIABLE):
        return _checked(os.environ[ENV_VARIABLE], ENV_VARIABLE)
    env_file = find_local_env(cwd or Path.cwd())
    if env_file is not None and (url := read_api_url(env_file)):
        return _checked(url, str(env_file))
    raise CliError(
        "No API address: pass --api URL, set KTR_API_URL, "
        "or run ktr inside a checkout where `make run` is up"
    )


def _checked(url: str, source: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{source}: {url!r} is not an http:// or https:// URL")
    return url
