"""The deployed functions: name, entry point in functions/main.py, identity, size and trigger.

Sizes: a 2nd-gen function's CPU follows its memory unless set, and 256Mi gets a sixth of a
CPU, which makes a cold start (mostly imports) several times slower. The request-serving
functions get one CPU so that a cold request costs what the imports cost on a full core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infra.deploy.config import DeployConfig
from infra.deploy.steps import Run

RUNTIME = "python312"
FINALIZED = "google.cloud.storage.object.v1.finalized"
WRITTEN = "google.cloud.firestore.document.v1.written"
SECRET_VARIABLE = "CALLBACK_SECRET"


@dataclass(frozen=True)
class Function:
    name: str  # the deployed name (Cloud Run service names take no underscores)
    entry_point: str  # the function in functions/main.py
    role: str  # its part: api, sync, cluster-events, finalize, callbacks or events (the
    #   service account is the role's own, but cluster-events runs as the sync's)
    memory: str
    cpu: str | None  # None: what the memory gets by default
    timeout: int  # seconds
    sizing: str  # why this memory and timeout
    event: bool = False  # an Eventarc trigger (finalize, callbacks, events); others are HTTP

    @property
    def http(self) -> bool:
        return not self.event


FUNCTIONS = (
    Function(
        name="batch-api", entry_point="batch_api", role="api",
        memory="512Mi", cpu="1", timeout=120,
        sizing="the earlier REST API; a create holds its body (MAX_REQUEST_BYTES, 32 MiB) "
        "and the decoded zip in memory while it uploads, then opens the output's upload "
        "session",
    ),
    Function(
        name="create-job", entry_point="create_job", role="api",
        memory="512Mi", cpu="1", timeout=120,
        sizing="as batch-api's create: the body and the decoded zip in memory, then the upload",
    ),
    Function(
        name="get-job", entry_point="get_job", role="api",
        memory="256Mi", cpu="1", timeout=30,
        sizing="one Firestore read",
    ),
    Function(
        name="list-jobs", entry_point="list_jobs", role="api",
        memory="512Mi", cpu="1", timeout=60,
        sizing="one query; 10,000 records are some tens of MB as objects and JSON",
    ),
    Function(
        name="kill-job", entry_point="kill_job", role="api",
        memory="256Mi", cpu="1", timeout=60,
        sizing="a Firestore transaction, the job's log (at most MAX_LOG_BYTES) saved to the "
        "bucket, and the job deleted",
    ),
    Function(
        name="synchronize-batch-jobs", entry_point="synchronize_batch_jobs", role="sync",
        memory="1Gi", cpu="1", timeout=180,
        sizing="holds every unfinished job and the cluster's Jobs and pods at once (10,000 "
        "jobs are a few hundred MB of JSON), and a finished job's log (at most "
        "MAX_LOG_BYTES) while it saves it; a call starts no pass after "
        "SYNC_TIME_BUDGET_SECONDS, so 180 s leaves room for one slow pass",
    ),
    Function(
        name="on-cluster-event", entry_point="on_cluster_event", role="cluster-events",
        memory="512Mi", cpu=None, timeout=60,
        sizing="one job reconciled as a sync pass reconciles it (its Job and pods read, a "
        "failed job's log of at most MAX_LOG_BYTES saved, its Job deleted); in the "
        "background, so its cold start keeps no user waiting",
        event=True,
    ),
    Function(
        name="on-output-finalized", entry_point="on_output_finalized", role="finalize",
        memory="256Mi", cpu=None, timeout=60,
        sizing="one Firestore transaction, the job's log (at most MAX_LOG_BYTES) saved and "
        "the job deleted, in the background: its cold start keeps no user waiting",
        event=True,
    ),
    Function(
        name="deliver-callbacks", entry_point="deliver_callbacks", role="callbacks",
        memory="256Mi", cpu=None, timeout=60,
        sizing="one status notification: a Firestore read and write, and one POST of at most "
        "a job's JSON with a 10 s timeout; in the background, so its cold start keeps no "
        "user waiting",
        event=True,
    ),
    Function(
        name="publish-job-events", entry_point="publish_job_events", role="events",
        memory="256Mi", cpu=None, timeout=60,
        sizing="one job document's write: its status steps published to JOB_EVENTS_TOPIC, "
        "waited for (at most a few messages of a job's JSON); in the background, so its "
        "cold start keeps no user waiting",
        event=True,
    ),
)  # fmt: skip


def function_env(config: DeployConfig, passes: int) -> dict[str, str]:
    """What every function reads (shared/settings.py); the cluster's endpoint and CA come
    from lookups made while deploying. No credentials: each function is its own service
    account, and signs URLs as it through IAM (so no GC_CREDENTIALS_FILE_PATH)."""
    env = {
        "GOOGLE_CLOUD_PROJECT": config.project,
        "GC_BUCKET_NAME": config.bucket,
        "FIRESTORE_DATABASE": config.firestore_database,
        "FIRESTORE_COLLECTION": config.collection,
        "ACCOUNTS_COLLECTION": config.accounts_collection,
        "KUBERNETES_API_URL": "https://${CLUSTER_ENDPOINT}",
        "KUBERNETES_CA_DATA": "${CLUSTER_CA}",
        "KUBERNETES_AUTH": "gke",
        "KUBERNETES_NAMESPACE": config.namespace,
        "STAGER_IMAGE": config.stager_image,
        "JOB_SERVICE_ACCOUNT": config.job_ksa,
        "JOB_SYNCHRONIZATION_INTERVAL": f"{config.sync_interval:g}",
        "SYNC_PASSES_PER_CALL": str(passes),
        "SYNC_TIME_BUDGET_SECONDS": "55",
        "JOB_EVENTS_TOPIC": config.events_topic,
        "LOG_LEVEL": "INFO",
        **access_env(config),
    }
    env.update(config.runtime)
    return env


def function_url(config: DeployConfig, function: Function) -> str:
    """A 2nd-gen function's cloudfunctions.net URL, known before it is deployed."""
    return f"https://{config.region}-{config.project}.cloudfunctions.net/{function.name}"


def access_env(config: DeployConfig) -> dict[str, str]:
    """How the functions verify callers: Google identity tokens whose audience is one of
    the HTTP functions' URLs (or AUTH_AUDIENCES), the operators, and IAP's audience."""
    if not config.access_control:
        return {"ACCESS_CONTROL": "off"}
    urls = [function_url(config, f) for f in FUNCTIONS if f.http and f.role == "api"]
    env = {
        "ACCESS_CONTROL": "on",
        "AUTH_AUDIENCES": ",".join([*urls, *config.audiences]),
        "OPERATORS": ",".join(config.operators),
    }
    if config.iap_audience:
        env["IAP_AUDIENCE"] = config.iap_audience
    return env


def env_yaml(env: dict[str, str]) -> str:
    """The --env-vars-file: YAML, each value a JSON string (a valid YAML scalar)."""
    return "".join(f"{name}: {json.dumps(value)}\n" for name, value in env.items())


def deploy_command(
    function: Function, config: DeployConfig, *, source: Path, env_file: Path, account: str
) -> Run:
    argv = [
        "gcloud", "functions", "deploy", function.name,
        "--gen2",
        f"--runtime={RUNTIME}",
        f"--project={config.project}",
        f"--region={config.region}",
        f"--source={source}",
        f"--entry-point={function.entry_point}",
        f"--service-account={account}",
        f"--env-vars-file={env_file}",
        f"--memory={function.memory}",
        f"--timeout={function.timeout}s",
    ]  # fmt: skip
    if function.cpu:
        argv.append(f"--cpu={function.cpu}")
    if function.http:
        argv += ["--trigger-http", "--no-allow-unauthenticated"]
    elif function.role == "callbacks":
        # Eventarc's Pub/Sub trigger, with retry: a failed delivery is raised, and the event
        # comes again with backoff. The secret is this function's alone.
        argv += [
            f"--trigger-topic={config.events_topic}",
            f"--trigger-service-account={account}",
            "--retry",
            f"--set-secrets={SECRET_VARIABLE}={config.callback_secret}:latest",
        ]
    elif function.role == "cluster-events":
        # Eventarc's Pub/Sub trigger on the topic the log sink routes the events that end
        # a job to, with retry: a transient failure is raised, and the event comes again.
        argv += [
            f"--trigger-topic={config.cluster_events_topic}",
            f"--trigger-service-account={account}",
            "--retry",
        ]
    elif function.role == "events":
        # Firestore's write trigger on the jobs collection, in the database's location, with
        # retry: a failed publish is raised, and the write's event comes again.
        argv += [
            f"--trigger-event-filters=type={WRITTEN}",
            f"--trigger-event-filters=database={config.firestore_database}",
            f"--trigger-event-filters-path-pattern=document={config.collection}/{{job_id}}",
            "--trigger-location=${FIRESTORE_LOCATION}",
            f"--trigger-service-account={account}",
            "--retry",
        ]
    else:
        argv += [
            f"--trigger-event-filters=type={FINALIZED}",
            f"--trigger-event-filters=bucket={config.bucket}",
            f"--trigger-location={config.bucket_location}",
            f"--trigger-service-account={account}",
            "--retry",
        ]
    return Run(tuple(argv))
