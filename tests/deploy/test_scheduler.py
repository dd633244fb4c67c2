"""The scheduler job through the real google-cloud-scheduler client: created once, then left
alone when nothing changed, and updated when the interval changes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.scheduler_v1 import CloudSchedulerClient

from infra.deploy import scheduler
from infra.deploy.config import DeployConfig
from infra.deploy.steps import substitute
from tests.deploy.fake_scheduler import SchedulerState, fake_scheduler
from tests.deploy.test_plan import EXAMPLE

SYNC_URL = "https://synchronize-batch-jobs-abc123-ew.a.run.app"


def client_for(endpoint: str) -> CloudSchedulerClient:
    return CloudSchedulerClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


@pytest.fixture
def api() -> Iterator[tuple[CloudSchedulerClient, SchedulerState]]:
    with fake_scheduler() as (endpoint, state):
        yield client_for(endpoint), state


def body(interval: str = "30") -> tuple[str, dict]:
    config = DeployConfig.load({"JOB_SYNCHRONIZATION_INTERVAL": interval}, EXAMPLE)
    job = scheduler.job_body(config)
    return job.parent, json.loads(substitute(json.dumps(job.body), {"SYNC_URL": SYNC_URL}))


def test_created_then_unchanged_then_updated(api):
    client, state = api
    parent, job = body()
    assert scheduler.ensure(client, parent, job) == "created"
    (stored,) = state.jobs.values()
    assert stored["schedule"] == "* * * * *"
    assert stored["httpTarget"]["oidcToken"] == {
        "serviceAccountEmail": "task-runner-scheduler@my-project.iam.gserviceaccount.com",
        "audience": SYNC_URL,
    }
    assert stored["httpTarget"]["uri"] == SYNC_URL
    assert stored["attemptDeadline"] == "180s"

    state.requests.clear()
    assert scheduler.ensure(client, parent, job) == "unchanged"
    assert [method for method, _ in state.requests] == ["GET"]

    parent, slower = body("300")
    assert scheduler.ensure(client, parent, slower) == "updated"
    assert [method for method, _ in state.requests] == ["GET", "GET", "PATCH"]
    (stored,) = state.jobs.values()
    assert stored["schedule"] == "*/5 * * * *"
    assert "every 300 s" in stored["description"]
    assert scheduler.ensure(client, parent, slower) == "unchanged"


def test_a_new_sync_url_updates_the_target(api):
    client, state = api
    parent, job = body()
    scheduler.ensure(client, parent, job)
    job["httpTarget"]["uri"] = job["httpTarget"]["oidcToken"]["audience"] = SYNC_URL + "/v2"
    assert scheduler.ensure(client, parent, job) == "updated"
    (stored,) = state.jobs.values()
    assert stored["httpTarget"]["uri"] == SYNC_URL + "/v2"
    assert stored["httpTarget"]["oidcToken"]["audience"] == SYNC_URL + "/v2"
