"""The plan `DRY_RUN=1 make deploy` prints, checked the way a reviewer would read it."""

from __future__ import annotations

import ast
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.deploy import iam, scheduler
from infra.deploy.cluster import render_manifests
from infra.deploy.config import DeployConfig, DeploySettingsError, read_env_file
from infra.deploy.plan import build_plan
from infra.deploy.runner import Runner
from infra.deploy.steps import Lookup, Run, SchedulerJob, Step, WriteFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "deploy.example.env"
BUILD = Path("build/deploy")


@pytest.fixture(scope="module")
def config() -> DeployConfig:
    return DeployConfig.load({}, EXAMPLE)


@pytest.fixture(scope="module")
def plan(config) -> list[Step]:
    return build_plan(config, BUILD)


def actions(plan: list[Step], kind: type) -> list:
    return [action for step in plan for action in step.actions if isinstance(action, kind)]


def commands(plan: list[Step], *prefix: str) -> list[tuple[str, ...]]:
    return [run.argv for run in actions(plan, Run) if run.argv[: len(prefix)] == prefix]


def flags(argv: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for word in argv:
        if word.startswith("--"):
            name, _, value = word.partition("=")
            found.setdefault(name, []).append(value)
    return found


def deploy_flags(plan: list[Step], entry_point: str) -> dict[str, list[str]]:
    """The flags of the one `gcloud functions deploy` of this entry point."""
    (argv,) = [
        argv
        for argv in commands(plan, "gcloud", "functions", "deploy")
        if f"--entry-point={entry_point}" in argv
    ]
    return flags(argv)


def entry_points() -> set[str]:
    """The functions functions/main.py declares with a functions_framework decorator."""
    tree = ast.parse((ROOT / "functions" / "main.py").read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("functions_framework" in ast.unparse(d) for d in node.decorator_list)
    }


def test_every_entry_point_is_deployed_once_from_the_bundle(plan, config):
    deploys = commands(plan, "gcloud", "functions", "deploy")
    deployed = [flags(argv)["--entry-point"][0] for argv in deploys]
    assert sorted(deployed) == sorted(entry_points())
    for argv in deploys:
        given = flags(argv)
        assert "--gen2" in given
        assert given["--runtime"] == ["python312"]
        assert given["--source"] == [str(BUILD / "bundle")]
        assert given["--region"] == [config.region]
        assert given["--env-vars-file"] == [str(BUILD / "functions.env.yaml")]
        assert given["--memory"] and given["--timeout"]


def test_no_function_allows_unauthenticated_calls(plan):
    for argv in commands(plan, "gcloud", "functions", "deploy"):
        given = flags(argv)
        assert "--allow-unauthenticated" not in given
        if "--trigger-http" in given:
            assert "--no-allow-unauthenticated" in given
    bindings = commands(plan, "gcloud", "functions", "add-invoker-policy-binding")
    invokers = [flags(argv)["--member"][0] for argv in bindings]
    assert not [m for m in invokers if m.startswith("all")]  # allUsers, allAuthenticatedUsers


def test_the_finalize_function_is_an_eventarc_trigger_on_the_bucket(plan, config):
    (finalize,) = [
        argv
        for argv in commands(plan, "gcloud", "functions", "deploy")
        if "--trigger-http" not in argv and "--entry-point=on_output_finalized" in argv
    ]
    given = flags(finalize)
    assert given["--entry-point"] == ["on_output_finalized"]
    assert sorted(given["--trigger-event-filters"]) == [
        f"bucket={config.bucket}",
        "type=google.cloud.storage.object.v1.finalized",
    ]
    assert "--retry" in given
    assert given["--trigger-location"] == [config.bucket_location]
    assert given["--trigger-service-account"] == [config.email(config.finalize_account)]


def test_each_function_runs_as_its_own_account(plan, config):
    accounts = {
        flags(argv)["--entry-point"][0]: flags(argv)["--service-account"][0]
        for argv in commands(plan, "gcloud", "functions", "deploy")
    }
    assert accounts.pop("synchronize_batch_jobs") == config.email(config.sync_account)
    # It reconciles one job as a sync pass does: the sync's account and cluster user.
    assert accounts.pop("on_cluster_event") == config.email(config.sync_account)
    assert accounts.pop("on_output_finalized") == config.email(config.finalize_account)
    assert accounts.pop("deliver_callbacks") == config.email(config.callbacks_account)
    assert accounts.pop("publish_job_events") == config.email(config.events_account)
    assert set(accounts.values()) == {config.email(config.api_account)}


def test_the_functions_get_the_cluster_endpoint_read_while_deploying(plan, config):
    lookups = {lookup.name: lookup for lookup in actions(plan, Lookup)}
    (env_file,) = [w for w in actions(plan, WriteFile) if w.path.name == "functions.env.yaml"]
    env = yaml.safe_load(env_file.content)
    assert env["KUBERNETES_API_URL"] == "https://${CLUSTER_ENDPOINT}"
    assert env["KUBERNETES_CA_DATA"] == "${CLUSTER_CA}"
    assert env["KUBERNETES_AUTH"] == "gke"
    assert env["KUBERNETES_NAMESPACE"] == config.namespace
    assert env["GC_BUCKET_NAME"] == config.bucket
    assert env["SYNC_PASSES_PER_CALL"] == "2"  # every 30 s, called once a minute
    assert "--format=value(endpoint)" in lookups["CLUSTER_ENDPOINT"].argv
    assert env["JOB_EVENTS_TOPIC"] == config.events_topic
    assert "CALLBACK_SECRET" not in env  # the callbacks function's alone, from Secret Manager
    assert set(lookups) == {
        "CLUSTER_ENDPOINT",
        "CLUSTER_CA",
        "STORAGE_AGENT",
        "SYNC_URL",
        "CALLBACK_SECRET_VERSION",
        "FIRESTORE_LOCATION",
        "SINK_WRITER",
    }


def test_the_scheduler_calls_the_sync_url_with_an_oidc_token(plan, config):
    (job,) = actions(plan, SchedulerJob)
    (sync_url,) = [lookup for lookup in actions(plan, Lookup) if lookup.name == "SYNC_URL"]
    assert sync_url.argv[:4] == ("gcloud", "functions", "describe", "synchronize-batch-jobs")
    assert "--format=value(serviceConfig.uri)" in sync_url.argv
    target = job.body["httpTarget"]
    assert target["uri"] == "${SYNC_URL}"
    assert target["httpMethod"] == "POST"
    assert target["oidcToken"] == {
        "serviceAccountEmail": config.email(config.scheduler_account),
        "audience": "${SYNC_URL}",
    }
    assert job.body["retryConfig"]["retryCount"] >= 1
    assert job.body["name"] == (
        f"projects/{config.project}/locations/{config.region}/jobs/{config.scheduler_job}"
    )
    # the lookup comes after the sync is deployed, the job after the lookup
    order = [a for step in plan for a in step.actions]
    deploy_sync = next(
        i
        for i, a in enumerate(order)
        if isinstance(a, Run) and "--entry-point=synchronize_batch_jobs" in a.argv
    )
    assert deploy_sync < order.index(sync_url) < order.index(job)
    invoker = [
        argv
        for argv in commands(plan, "gcloud", "functions", "add-invoker-policy-binding")
        if argv[3] == "synchronize-batch-jobs"
    ]
    assert [flags(argv)["--member"] for argv in invoker] == [
        [f"serviceAccount:{config.email(config.scheduler_account)}"]
    ]


@pytest.mark.parametrize(
    ("interval", "cron", "passes"),
    [(5, "* * * * *", 12), (30, "* * * * *", 2), (45, "* * * * *", 1), (60, "*/1 * * * *", 1),
     (300, "*/5 * * * *", 1), (7200, "0 */2 * * *", 1), (86400, "0 0 * * *", 1)],
)  # fmt: skip
def test_schedule_from_the_interval(interval, cron, passes):
    assert scheduler.cadence(interval) == (cron, passes)


def manifests(config: DeployConfig) -> list[dict]:
    return list(yaml.safe_load_all(render_manifests(config)))


CLUSTER_WIDE = ("Namespace", "ClusterRole", "ClusterRoleBinding", "ResourceFlavor")


def test_rbac_is_one_role_in_one_namespace_and_one_for_the_queues(config):
    documents = manifests(config)
    kinds = sorted(document["kind"] for document in documents)
    assert kinds == sorted(
        ["Namespace", "Role", "RoleBinding", "ServiceAccount", "ClusterRole",
         "ClusterRoleBinding", "ResourceFlavor", "ResourceFlavor"]
    )  # fmt: skip
    for document in documents:
        if document["kind"] not in CLUSTER_WIDE:
            assert document["metadata"]["namespace"] == config.namespace
    (queues_role,) = [d for d in documents if d["kind"] == "ClusterRole"]
    assert queues_role["rules"] == [
        {
            "apiGroups": ["kueue.x-k8s.io"],
            "resources": ["clusterqueues"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"],
        },
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]},
    ]
    (role,) = [d for d in documents if d["kind"] == "Role"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == {
        ("batch", "jobs"): {"create", "get", "list", "watch", "patch", "delete"},
        ("", "pods"): {"get", "list", "watch"},  # the Job's deletion takes its pods
        ("", "pods/log"): {"get"},  # the log is saved to the bucket before the pod goes
        ("", "persistentvolumeclaims"): {"list", "delete"},  # the sweep of leftovers only
        ("kueue.x-k8s.io", "localqueues"): {"get", "list", "watch", "create", "patch", "update"},
        ("kueue.x-k8s.io", "workloads"): {"get", "list", "watch"},  # why one waits
        ("visibility.kueue.x-k8s.io", "localqueues/pendingworkloads"): {"get"},  # where
    }
    assert not [key for key in granted if key[1] == "secrets"]
    (binding,) = [d for d in documents if d["kind"] == "RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert sorted(s["name"] for s in binding["subjects"]) == sorted(
        config.email(a) for a in (config.api_account, config.sync_account, config.finalize_account)
    )


def test_job_pods_hold_no_google_identity(config):
    (account,) = [d for d in manifests(config) if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == config.job_ksa
    assert "annotations" not in account["metadata"]
    assert account["automountServiceAccountToken"] is False
    assert "iam.gke.io" not in render_manifests(config)


def printed(plan: list[Step]) -> str:
    out = io.StringIO()
    Runner(out=out, env={}).print_plan(plan)
    return out.getvalue()


def test_the_plan_has_no_stager_identity(plan, config):
    text = printed(plan)
    for absent in (
        "STAGER_SERVICE_ACCOUNT",
        "STAGER_GOOGLE_SERVICE_ACCOUNT",
        "task-runner-stager",
        "iam.gke.io",
        "roles/iam.workloadIdentityUser",
        "GC_CREDENTIALS_FILE_PATH",
    ):
        assert absent not in text, absent
    # Workload Identity is neither bound nor checked (the plan's text only explains it)
    done = [" ".join(a.argv) for a in actions(plan, Run) + actions(plan, Lookup)]
    done += [w.content for w in actions(plan, WriteFile)]
    assert not [d for d in done if "svc.id.goog" in d or "workloadIdentity" in d]
    keys = ["api", "sync", "finalize", "scheduler", "callbacks", "events"]
    assert [a.key for a in iam.accounts(config)] == keys
    created = [argv[4] for argv in commands(plan, "gcloud", "iam", "service-accounts", "create")]
    assert created == [a.id for a in iam.accounts(config)]
    members = {
        member for argv in actions(plan, Run) for member in flags(argv.argv).get("--member", [])
    }
    functions = {config.api_account, config.sync_account, config.finalize_account}
    functions |= {config.scheduler_account, config.callbacks_account, config.events_account}
    assert members <= {
        *(f"serviceAccount:{config.email(a)}" for a in functions),
        "serviceAccount:${STORAGE_AGENT}",
        "${SINK_WRITER}",  # the cluster events' log sink, on its topic only
        *config.invokers,
    }


def test_no_key_file_reaches_the_functions_or_the_cluster():
    env = read_env_file(EXAMPLE) | {"GC_CREDENTIALS_FILE_PATH": "/keys/signer.json"}
    config = DeployConfig.load(env)
    text = printed(build_plan(config, BUILD))
    assert "GC_CREDENTIALS_FILE_PATH" not in text and "/keys/signer.json" not in text
    assert "kind: Secret" not in render_manifests(config)


def bucket_grants(plan: list[Step]) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for argv in commands(plan, "gcloud", "storage", "buckets", "add-iam-policy-binding"):
        given = flags(argv)
        grants.setdefault(given["--member"][0], set()).add(given["--role"][0])
    return grants


def test_bucket_roles_are_on_this_bucket_only(plan, config):
    project_roles = {flags(argv)["--role"][0] for argv in commands(plan, "gcloud", "projects")}
    assert not {role for role in project_roles if role.startswith("roles/storage.")}
    assert not project_roles & {"roles/owner", "roles/editor", "roles/container.developer"}
    assert not {role for role in project_roles if role.startswith("roles/iam.")}
    for argv in commands(plan, "gcloud", "storage", "buckets", "add-iam-policy-binding"):
        assert argv[4] == f"gs://{config.bucket}"


def test_each_function_account_gets_only_the_bucket_rights_it_uses(plan, config):
    def sa(account: str) -> str:
        return f"serviceAccount:{config.email(account)}"

    assert bucket_grants(plan) == {
        # creates the input and opens the output's upload session (ifGenerationMatch=0),
        # reads metadata, signs URLs, deletes the input of a create that failed
        sa(config.api_account): {"roles/storage.objectUser"},
        # read metadata and sign the output URL; save logs as new objects, never replace one
        sa(config.sync_account): {"roles/storage.objectViewer", "roles/storage.objectCreator"},
        # and, under submissions/ only, replace and delete the outcome objects it writes
        sa(config.finalize_account): {
            "roles/storage.objectViewer",
            "roles/storage.objectCreator",
            "roles/storage.objectUser",
        },
    }


def test_the_finalize_account_may_replace_objects_under_submissions_only(plan, config):
    conditioned = [
        (flags(argv)["--member"][0], flags(argv)["--role"][0], flags(argv)["--condition"][0])
        for argv in commands(plan, "gcloud", "storage", "buckets", "add-iam-policy-binding")
        if "--condition" in flags(argv)
    ]
    prefix = f"projects/_/buckets/{config.bucket}/objects/submissions/"
    assert conditioned == [
        (
            f"serviceAccount:{config.email(config.finalize_account)}",
            "roles/storage.objectUser",
            f'expression=resource.name.startsWith("{prefix}"),title=only submissions/',
        )
    ]


def test_each_function_account_may_sign_only_as_itself(plan, config):
    signers = [
        (argv[4], flags(argv)["--member"][0], flags(argv)["--role"][0])
        for argv in commands(plan, "gcloud", "iam", "service-accounts", "add-iam-policy-binding")
    ]
    functions = (config.api_account, config.sync_account, config.finalize_account)
    assert sorted(signers) == sorted(
        (
            config.email(account),
            f"serviceAccount:{config.email(account)}",
            "roles/iam.serviceAccountTokenCreator",
        )
        for account in functions
    )


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path):
    build = tmp_path / "build"
    done = subprocess.run(
        [sys.executable, "-m", "infra.deploy", "--env-file", str(EXAMPLE), "--build", str(build)],
        cwd=ROOT,
        env={"PATH": "/nonexistent", "DRY_RUN": "1"},  # no gcloud or kubectl to call
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not build.exists()
    out = done.stdout.replace(" \\\n    ", " ")  # long commands continue over lines
    assert out.count("gcloud functions deploy") == len(entry_points())
    assert "kubectl --kubeconfig=" in out and " apply -f " in out
    assert "POST https://cloudscheduler.googleapis.com/v1/projects/my-project/" in out
    body = out[out.index("{", out.index("POST https://cloudscheduler")) :]
    assert json.loads(body)["httpTarget"]["oidcToken"]["audience"] == "${SYNC_URL}"
    numbered = [line for line in out.splitlines() if line.startswith("# == ")]
    assert [line.split(".")[0] for line in numbered] == [
        f"# == {n}" for n in range(1, len(numbered) + 1)
    ]


# -- status notifications and callbacks ------------------------------------------------------


def test_the_events_topic_is_created_before_anyone_is_granted_on_it(plan, config):
    text = [" ".join(run.argv) for run in actions(plan, Run)]
    for topic in (config.events_topic, config.cluster_events_topic):
        created = text.index(f"gcloud pubsub topics create {topic} --project={config.project}")
        granted = [
            i
            for i, t in enumerate(text)
            if t.startswith(f"gcloud pubsub topics add-iam-policy-binding {topic} ")
        ]
        assert granted and created < min(granted)
    creates = [r for r in actions(plan, Run) if r.argv[1:4] == ("pubsub", "topics", "create")]
    assert len(creates) == 2
    assert all(create.unless is not None and "describe" in create.unless for create in creates)


def test_only_the_events_account_may_publish_and_only_on_the_topic(plan, config):
    publishers: dict[tuple[str, ...], set[str]] = {}
    for argv in commands(plan, "gcloud"):
        given = flags(argv)
        if given.get("--role") == [iam.PUBLISHER]:
            publishers.setdefault(argv[1:3], set()).update(given["--member"])
    # The functions that write jobs never publish: the write's trigger does. The cluster
    # events' log sink publishes as its own writer identity, on its own topic.
    assert publishers[("pubsub", "topics")] == {
        f"serviceAccount:{config.email(config.events_account)}",
        "${SINK_WRITER}",
    }
    # Project-wide, the storage agent alone publishes (the bucket's Eventarc events).
    assert publishers[("projects", "add-iam-policy-binding")] == {"serviceAccount:${STORAGE_AGENT}"}
    for argv in commands(plan, "gcloud", "pubsub", "topics", "add-iam-policy-binding"):
        sink = flags(argv)["--member"] == ["${SINK_WRITER}"]
        assert argv[4] == (config.cluster_events_topic if sink else config.events_topic)


def test_the_cluster_events_sink_routes_what_ends_a_job_to_its_trigger(plan, config):
    """The sink's filter names this cluster and namespace and the events that end a job;
    the filter is set again on every deploy; on-cluster-event is that topic's trigger."""
    (create,) = commands(plan, "gcloud", "logging", "sinks", "create")
    (update,) = commands(plan, "gcloud", "logging", "sinks", "update")
    destination = f"pubsub.googleapis.com/projects/{config.project}/topics/"
    assert create[4:6] == (config.cluster_events_sink, destination + config.cluster_events_topic)
    assert flags(create)["--log-filter"] == flags(update)["--log-filter"]
    (text,) = flags(create)["--log-filter"]
    assert f'resource.labels.cluster_name="{config.cluster}"' in text
    assert f'jsonPayload.involvedObject.namespace="{config.namespace}"' in text
    assert '"BackoffLimitExceeded"' in text and 'jsonPayload.source.component="kubelet"' in text
    given = deploy_flags(plan, "on_cluster_event")
    assert given["--trigger-topic"] == [config.cluster_events_topic]
    assert "--retry" in given
    assert given["--trigger-service-account"] == [config.email(config.sync_account)]
    invoked = [
        flags(argv)["--member"]
        for argv in commands(plan, "gcloud", "functions", "add-invoker-policy-binding")
        if argv[3] == "on-cluster-event"
    ]
    assert invoked == [[f"serviceAccount:{config.email(config.sync_account)}"]]


def test_the_callbacks_function_is_a_pubsub_trigger_with_retry_and_its_own_secret(plan, config):
    given = deploy_flags(plan, "deliver_callbacks")
    assert given["--trigger-topic"] == [config.events_topic]
    assert "--retry" in given
    assert given["--trigger-service-account"] == [config.email(config.callbacks_account)]
    assert given["--set-secrets"] == [f"CALLBACK_SECRET={config.callback_secret}:latest"]
    deploys = commands(plan, "gcloud", "functions", "deploy")
    others = [a for a in deploys if "--entry-point=deliver_callbacks" not in a]
    assert not [a for a in others if "--set-secrets" in flags(a)]
    member = f"serviceAccount:{config.email(config.callbacks_account)}"
    roles = {
        (argv[1], flags(argv)["--role"][0])
        for argv in commands(plan, "gcloud")
        if member in flags(argv).get("--member", []) and "--role" in flags(argv)
    }
    assert roles == {
        ("projects", iam.FIRESTORE),
        ("projects", iam.EVENT_RECEIVER),
        ("secrets", iam.SECRET_READER),
    }
    (secret,) = commands(plan, "gcloud", "secrets", "add-iam-policy-binding")
    assert secret[3] == config.callback_secret and flags(secret)["--member"] == [member]
    invoked = [
        argv[3]
        for argv in commands(plan, "gcloud", "functions", "add-invoker-policy-binding")
        if flags(argv)["--member"] == [member]
    ]
    assert invoked == ["deliver-callbacks"]


def test_a_missing_secret_stops_the_deploy_before_any_change(plan, config):
    steps = [step.title for step in plan]
    first_change = next(
        i
        for i, step in enumerate(plan)
        if any(isinstance(a, Run) for a in step.actions) and step.title != "Google APIs"
    )
    assert steps.index("Callback secret") < first_change
    (lookup,) = [a for a in actions(plan, Lookup) if a.name == "CALLBACK_SECRET_VERSION"]
    assert f"--secret={config.callback_secret}" in lookup.argv


def test_the_secret_and_private_callbacks_are_refused_as_deploy_settings():
    env = read_env_file(EXAMPLE) | {"CALLBACK_SECRET": "s3cret", "ALLOW_PRIVATE_CALLBACKS": "1"}
    with pytest.raises(DeploySettingsError) as raised:
        DeployConfig.load(env)
    problems = "\n".join(raised.value.problems)
    assert "CALLBACK_SECRET is not read by the deploy" in problems
    assert "ALLOW_PRIVATE_CALLBACKS is for the local cloud only" in problems
    assert "s3cret" not in problems


def test_the_events_function_is_a_firestore_write_trigger_on_the_jobs_collection(plan, config):
    given = deploy_flags(plan, "publish_job_events")
    assert "--trigger-http" not in given
    assert sorted(given["--trigger-event-filters"]) == [
        f"database={config.firestore_database}",
        "type=google.cloud.firestore.document.v1.written",
    ]
    assert given["--trigger-event-filters-path-pattern"] == [
        f"document={config.collection}/{{job_id}}"
    ]
    assert "--retry" in given
    assert given["--trigger-location"] == ["${FIRESTORE_LOCATION}"]
    (location,) = [a for a in actions(plan, Lookup) if a.name == "FIRESTORE_LOCATION"]
    assert location.argv[1:4] == ("firestore", "databases", "describe")
    assert f"--database={config.firestore_database}" in location.argv
    steps = [step.title for step in plan]  # read before any change but enabling the APIs
    assert steps.index("Read the Firestore database's location") < steps.index("Service accounts")
    member = f"serviceAccount:{config.email(config.events_account)}"
    assert given["--service-account"] == [config.email(config.events_account)]
    assert given["--trigger-service-account"] == [config.email(config.events_account)]
    roles = {
        (argv[1], flags(argv)["--role"][0])
        for argv in commands(plan, "gcloud")
        if member in flags(argv).get("--member", []) and "--role" in flags(argv)
    }
    # Publish on the topic, receive Eventarc's events; nothing else (no Firestore: the
    # event carries the document).
    assert roles == {("pubsub", iam.PUBLISHER), ("projects", iam.EVENT_RECEIVER)}
    invoked = [
        argv[3]
        for argv in commands(plan, "gcloud", "functions", "add-invoker-policy-binding")
        if flags(argv)["--member"] == [member]
    ]
    assert invoked == ["publish-job-events"]  # roles/run.invoker, on its function only


def test_the_functions_verify_callers_against_their_own_urls(plan, config):
    (env_file,) = [w for w in actions(plan, WriteFile) if w.path.name == "functions.env.yaml"]
    env = yaml.safe_load(env_file.content)
    assert env["ACCESS_CONTROL"] == "on"
    audiences = env["AUTH_AUDIENCES"].split(",")
    base = f"https://{config.region}-{config.project}.cloudfunctions.net"
    assert audiences == [
        f"{base}/{name}" for name in ("batch-api", "create-job", "get-job", "list-jobs", "kill-job")
    ]
    assert env["OPERATORS"] == ",".join(config.operators) and config.operators
    assert "AUTH_CERTS_URL" not in env  # Google's certificates, the settings' default


def test_access_control_off_is_one_setting():
    from infra.deploy.functions import function_env

    config = DeployConfig.load({"ACCESS_CONTROL": "off", "OPERATORS": ""}, EXAMPLE)
    env = function_env(config, 1)
    assert env["ACCESS_CONTROL"] == "off" and "AUTH_AUDIENCES" not in env
