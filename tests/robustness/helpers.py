"""Small helpers shared by the robustness tests."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.cloud.backends import Backends, default_backends
from shared.model.job import FINAL, Status
from shared.settings import get_settings
from tests.fixtures.api import Functions
from tests.fixtures.waiting import DEADLINE


def reconfigure(monkeypatch: pytest.MonkeyPatch, **env: str) -> Backends:
    """Change settings for the rest of the test: the functions read them afresh."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    default_backends.cache_clear()
    return default_backends()


def create(fn: Functions, name: str | None = None, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"job_parameters": {"docker_image": "alpine:3", **params}}
    if name:
        body["name"] = name
    status, response = fn.api("POST", "/batch/", json=body)
    assert status == 200, response
    return response["data"]


def env(**values: Any) -> dict[str, Any]:
    return {"environment_variables": {key: str(value) for key, value in values.items()}}


def sync_until_final(fn: Functions, job_ids: list[str], timeout: float = DEADLINE) -> None:
    """Sync until every job is final (each sync lets the cluster move on in between)."""
    deadline = time.monotonic() + timeout
    while True:
        fn.sync()
        pending = [i for i in job_ids if Status(fn.job(i)["status"]) not in FINAL]
        if not pending:
            return
        assert time.monotonic() < deadline, f"not final: {[fn.job(i) for i in pending]}"
        time.sleep(0.1)
