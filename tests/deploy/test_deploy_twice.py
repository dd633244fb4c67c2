"""`make deploy` run twice in a row: the second run creates nothing and changes nothing.

The plan is carried out by the real runner; gcloud and kubectl are the stand-ins of
fake_cli.py (Google Cloud is out of reach here) and Cloud Scheduler is the local stand-in
driven through the real client library."""

from __future__ import annotations

import copy
import io
import json
import os
import sys
from pathlib import Path

import pytest

from infra.deploy.config import DeployConfig
from infra.deploy.plan import build_plan
from infra.deploy.runner import DeployError, Runner
from tests.deploy import fake_cli
from tests.deploy.fake_scheduler import fake_scheduler
from tests.deploy.test_plan import EXAMPLE
from tests.deploy.test_scheduler import client_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tools(tmp_path, firestore_emulator) -> dict[str, str]:
    """A PATH whose gcloud and kubectl are the stand-ins, and their state file; Firestore is
    the emulator (the deploy reads the accounts there)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcloud", "kubectl"):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake_cli.__file__}" {tool} "$@"\n')
        script.chmod(0o755)
    state = tmp_path / "cloud.json"
    state.write_text(
        json.dumps({"accounts": [], "indexes": [], "bindings": [], "functions": {}, "calls": []})
    )
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_CLOUD_STATE": str(state)}


def deploy(env: dict[str, str], build: Path, endpoint: str) -> tuple[dict, str]:
    config = DeployConfig.load({}, EXAMPLE)
    out = io.StringIO()
    runner = Runner(
        out=out, env=env, scheduler_client=lambda: client_for(endpoint), retries=(), cwd=ROOT
    )
    runner.run(build_plan(config, build))
    state = json.loads(Path(env["FAKE_CLOUD_STATE"]).read_text())
    return state, out.getvalue()


def test_a_second_deploy_changes_nothing(tools, tmp_path):
    build = tmp_path / "build"
    with fake_scheduler() as (endpoint, scheduler_state):
        first, first_out = deploy(tools, build, endpoint)
        job_after_first = copy.deepcopy(scheduler_state.jobs)
        second, second_out = deploy(tools, build, endpoint)

    assert len(first["accounts"]) == 6  # api, sync, finalize, scheduler, callbacks, events
    assert not [a for a in first["accounts"] if "stager" in a]
    assert (
        len(first["indexes"]) == 3
    )  # by status, by status and account, an account's jobs newest first
    assert first["ttls"] == {"batch_jobs_requests/expires_at": True}
    assert len(first["functions"]) == 10
    # The sink's filter is set again, to the same text: nothing changes.
    assert list(first["sinks"]) == ["task-runner-cluster-events"]
    assert first["topics"] == ["task-runner-job-events", "task-runner-cluster-events"]
    assert "# scheduler job created" in first_out
    # the second run: same cloud, nothing created, the scheduler job left alone
    for key in ("accounts", "indexes", "ttls", "bindings", "applied", "topics"):
        assert second[key] == first[key], key
    assert {name: f["env"] for name, f in second["functions"].items()} == {
        name: f["env"] for name, f in first["functions"].items()
    }
    second_calls = second["calls"][len(first["calls"]) :]
    assert not [c for c in second_calls if c[1:4] == ["iam", "service-accounts", "create"]]
    # 6 accounts, the two topics and the cluster events' sink
    assert second_out.count("# exists: nothing to do") == 9
    assert second_out.count("# already exists: nothing to do") == 3  # the three indexes
    assert "# scheduler job unchanged" in second_out
    assert scheduler_state.jobs == job_after_first


def test_the_functions_get_the_looked_up_cluster(tools, tmp_path):
    with fake_scheduler() as (endpoint, scheduler_state):
        state, _ = deploy(tools, tmp_path / "build", endpoint)
    env = state["functions"]["get-job"]["env"]
    assert f'KUBERNETES_API_URL: "https://{fake_cli.ENDPOINT}"' in env
    assert f'KUBERNETES_CA_DATA: "{fake_cli.CA.decode()}"' in env
    assert "${" not in env
    trigger = state["functions"]["publish-job-events"]["args"]
    assert f"--trigger-location={fake_cli.FIRESTORE_LOCATION}" in trigger
    (job,) = scheduler_state.jobs.values()
    assert job["httpTarget"]["uri"] == fake_cli.SYNC_URL
    assert job["httpTarget"]["oidcToken"]["audience"] == fake_cli.SYNC_URL
    assert "kind: RoleBinding" in state["applied"]["k8s.yaml"]
    kueue = state["applied"]["kueue.yaml"]  # Kueue's install, with the generated CRDs
    assert "name: workloads.kueue.x-k8s.io" in kueue and "image: registry.k8s.io/kueue" in kueue


def test_nothing_deployed_gives_a_pod_a_google_identity(tools, tmp_path):
    """No stager account, no Workload Identity binding or annotation, and the cluster's
    Workload Identity is never asked about: the deploy works on a cluster without it."""
    with fake_scheduler() as (endpoint, _):
        state, _ = deploy(tools, tmp_path / "build", endpoint)
    assert not [a for a in state["accounts"] if "stager" in a]
    for binding in state["bindings"]:
        assert "workloadIdentityUser" not in binding and "svc.id.goog" not in binding
    calls = [" ".join(call) for call in state["calls"]]
    assert not [call for call in calls if "workloadIdentity" in call]
    applied = state["applied"]["k8s.yaml"]
    assert "iam.gke.io" not in applied and "STAGER" not in applied
    for function in state["functions"].values():
        assert "STAGER_SERVICE_ACCOUNT" not in function["env"]
        assert "GC_CREDENTIALS_FILE_PATH" not in function["env"]


def test_a_cluster_that_cannot_be_read_stops_before_any_change(tools, tmp_path):
    path = Path(tools["FAKE_CLOUD_STATE"])
    state = json.loads(path.read_text())
    state["endpoint"] = ""  # no such cluster, or no endpoint yet
    path.write_text(json.dumps(state))
    with fake_scheduler() as (endpoint, _), pytest.raises(DeployError, match="CLUSTER_ENDPOINT"):
        deploy(tools, tmp_path / "build", endpoint)
    after = json.loads(path.read_text())
    assert after["accounts"] == [] and after["bindings"] == [] and after["functions"] == {}


def test_each_accounts_submitters_may_write_in_its_folder_alone(tools, tmp_path):
    """The deploy reads the accounts from Firestore and sets the bucket's policy: one
    conditional binding per account, for its submitters and admins; a member who left loses
    it at the next deploy; a binding that is not the deploy's is kept."""
    from google.cloud import firestore

    from infra.deploy import iam
    from shared.model.access import Account, Role

    config = DeployConfig.load({"ACCOUNTS_COLLECTION": f"accounts-{tmp_path.name}"}, EXAMPLE)
    accounts = firestore.Client(project=config.project).collection(config.accounts_collection)
    team = Account("team-a", {"ana@a.test": Role.ADMIN, "bo@a.test": Role.SUBMITTER,
                              "cy@a.test": Role.VIEWER})  # fmt: skip
    robot = "ci@my-project.iam.gserviceaccount.com"
    other = Account("team-b", {robot: Role.SUBMITTER})
    for account in (team, other):
        accounts.document(account.account_id).set(account.to_document())
    state_file = Path(tools["FAKE_CLOUD_STATE"])
    state = json.loads(state_file.read_text())
    theirs = {"role": "roles/storage.legacyBucketReader", "members": ["user:x@y.test"]}
    state["bucket_policy"] = {"bindings": [theirs], "etag": "e0", "version": 1}
    state_file.write_text(json.dumps(state))

    def run() -> tuple[dict, str]:
        out = io.StringIO()
        Runner(out=out, env=tools, retries=(), cwd=ROOT).run([iam.submission_grants(config)])
        return json.loads(state_file.read_text())["bucket_policy"], out.getvalue()

    policy, out = run()
    folder = f"projects/_/buckets/{config.bucket}/objects/submissions"
    assert policy["version"] == 3
    assert policy["bindings"] == [
        theirs,
        {
            "role": "roles/storage.objectCreator",
            "members": ["user:ana@a.test", "user:bo@a.test"],
            "condition": {
                "title": "submissions/team-a/ by its submitters",
                "expression": f'resource.name.startsWith("{folder}/team-a/")',
            },
        },
        {
            "role": "roles/storage.objectCreator",
            "members": [f"serviceAccount:{robot}"],
            "condition": {
                "title": "submissions/team-b/ by its submitters",
                "expression": f'resource.name.startsWith("{folder}/team-b/")',
            },
        },
    ]
    assert "+ user:bo@a.test: submissions/team-a/ by its submitters" in out
    assert run()[1].count("nothing to change") == 1

    team.members["bo@a.test"] = Role.VIEWER
    accounts.document("team-a").set(team.to_document())
    policy, out = run()
    assert "- user:bo@a.test: submissions/team-a/ by its submitters" in out
    assert policy["bindings"][1]["members"] == ["user:ana@a.test"]
    for account_id in ("team-a", "team-b"):
        accounts.document(account_id).delete()
    policy, _ = run()
    assert policy["bindings"] == [theirs]
