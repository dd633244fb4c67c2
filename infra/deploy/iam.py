"""Identities and what each may do: one service account per role, with only its roles.

| account   | used by                           | may                                         |
| --------- | --------------------------------- | ------------------------------------------- |
| api       | the five API functions            | Firestore; create, read and delete the      |
|           |                                   | bucket's objects; sign as itself; the       |
|           |                                   | namespace (through RBAC)                    |
| sync      | synchronize-batch-jobs            | Firestore; read the bucket's objects and    |
|           |                                   | create new ones, never replace or delete    |
|           |                                   | one; sign as itself; the namespace          |
| finalize  | on-output-finalized + its trigger | as sync, and receive Eventarc events        |
| scheduler | the Cloud Scheduler job           | invoke synchronize-batch-jobs, nothing else |
| callbacks | deliver-callbacks + its trigger   | Firestore; read CALLBACK_SECRET_NAME (that  |
|           |                                   | secret only); receive Eventarc events       |
| events    | publish-job-events + its trigger  | publish on JOB_EVENTS_TOPIC (that topic     |
|           |                                   | only); receive Eventarc events              |

Only the events account publishes the status notifications: roles/pubsub.publisher on
JOB_EVENTS_TOPIC only, not project-wide; it reads nothing (the Firestore event carries the
document). The functions that write jobs never publish. No account may subscribe to the
topic but Eventarc's own subscription (which the callbacks trigger makes).

No pod holds a Google identity: a job's pod reads its input through a URL the api account
signs, and writes `<name>-output.zip` through a resumable upload session the api account
opens with ifGenerationMatch=0. Cloud Storage checks the opener's storage.objects.create
when the session is opened; the session URI is then all the pod needs.

The bucket roles, on this bucket only (none project-wide):
- roles/storage.objectUser (api): storage.objects.create for the input, the output's
  upload session and the log a kill saves; get, for metadata and so that the URLs it signs
  can be used (a signed URL acts with its signer's rights); delete, to take back the input
  of a create that failed. It also holds update (object metadata), which nothing uses: no
  narrower predefined role has delete.
- roles/storage.objectViewer (sync, finalize): get and list, to read the output's metadata
  (whose job it is) and so that the output URLs they sign can be used.
- roles/storage.objectCreator (sync, finalize): storage.objects.create, to save a finished
  job's log as `<name>-logs.txt` (or open an upload session), with ifGenerationMatch=0:
  without delete they cannot replace an existing object (a 412 means it is already
  there), so a bug or a stolen token there can add objects but never destroy an output.
- roles/storage.objectUser (finalize), on `submissions/` only (an IAM condition on the
  object name): a submission's `.job.json` is written again on a redelivery, and its
  `.error.json` deleted once an upload is accepted.
- roles/storage.objectCreator (each account's submitters and admins, people or service
  accounts), on `submissions/<account_id>/` of their own account only: the folder is how
  a submission says whose it is (`submission_grants`, from the accounts in Firestore).
Signing is IAM signBlob as the account itself: roles/iam.serviceAccountTokenCreator on its
own service account, not project-wide.

Firestore's role is project-wide (IAM has no per-collection grant). GKE access is
roles/container.clusterViewer, which only lets the account sign in to the cluster; what it
may do there is the namespace's Role (infra/k8s/role.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.deploy.config import DeployConfig
from infra.deploy.steps import Lookup, Run, Step, SubmissionGrants
from shared.model import clusterevents

FIRESTORE = "roles/datastore.user"
CLUSTER_SIGN_IN = "roles/container.clusterViewer"
OBJECTS_READ_WRITE = "roles/storage.objectUser"  # objects only; not the bucket or its IAM
OBJECTS_READ = "roles/storage.objectViewer"  # get, list
SUBMISSIONS = "submissions/"  # where uploads create jobs (shared/jobs/start/submission.py)
OBJECTS_CREATE = "roles/storage.objectCreator"  # create only: no read, replace or delete
SIGN_OWN_URLS = "roles/iam.serviceAccountTokenCreator"  # signBlob for V4 URLs, on itself
EVENT_RECEIVER = "roles/eventarc.eventReceiver"
PUBLISHER = "roles/pubsub.publisher"
SECRET_READER = "roles/secretmanager.secretAccessor"

APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "cloudscheduler.googleapis.com",
    "firestore.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "storage.googleapis.com",
    "secretmanager.googleapis.com",
)


@dataclass(frozen=True)
class Account:
    key: str  # api, sync, finalize, scheduler
    id: str
    title: str


def accounts(config: DeployConfig) -> tuple[Account, ...]:
    return (
        Account("api", config.api_account, "task runner: API functions"),
        Account("sync", config.sync_account, "task runner: synchronization"),
        Account("finalize", config.finalize_account, "task runner: output finalize trigger"),
        Account("scheduler", config.scheduler_account, "task runner: calls the sync"),
        Account("callbacks", config.callbacks_account, "task runner: delivers callbacks"),
        Account("events", config.events_account, "task runner: publishes status changes"),
    )


def _gcloud(config: DeployConfig, *args: str) -> tuple[str, ...]:
    return ("gcloud", *args, f"--project={config.project}")


def enable_apis(config: DeployConfig) -> Step:
    return Step(
        "Google APIs",
        "Cloud Functions (2nd gen) builds with Cloud Build into Artifact Registry and runs on "
        "Cloud Run; Eventarc and Pub/Sub carry the finalize events. Enabling is idempotent.",
        (Run(_gcloud(config, "services", "enable", *APIS)),),
    )


def service_accounts(config: DeployConfig) -> Step:
    actions = []
    for account in accounts(config):
        email = config.email(account.id)
        actions.append(
            Run(
                _gcloud(
                    config, "iam", "service-accounts", "create", account.id,
                    f"--display-name={account.title}",
                ),
                unless=_gcloud(config, "iam", "service-accounts", "describe", email),
            )
        )  # fmt: skip
    return Step(
        "Service accounts",
        "One identity per role, created unless it exists.",
        tuple(actions),
    )


def _project_role(config: DeployConfig, member: str, role: str) -> Run:
    return Run(
        (
            "gcloud", "projects", "add-iam-policy-binding", config.project,
            f"--member={member}", f"--role={role}", "--condition=None", "--format=none",
        )
    )  # fmt: skip


def _bucket_role(config: DeployConfig, member: str, role: str, *, prefix: str | None = None) -> Run:
    """A role on this bucket; with `prefix`, on the objects under it only (an IAM condition
    on the object's name, which needs uniform bucket-level access)."""
    condition = []
    if prefix is not None:
        name = f"projects/_/buckets/{config.bucket}/objects/{prefix}"
        condition = [
            f'--condition=expression=resource.name.startsWith("{name}"),title=only {prefix}'
        ]
    return Run(
        _gcloud(
            config, "storage", "buckets", "add-iam-policy-binding", f"gs://{config.bucket}",
            f"--member={member}", f"--role={role}", *condition, "--format=none",
        )
    )  # fmt: skip


def _account_role(config: DeployConfig, account: str, member: str, role: str) -> Run:
    return Run(
        _gcloud(
            config, "iam", "service-accounts", "add-iam-policy-binding", config.email(account),
            f"--member={member}", f"--role={role}", "--format=none",
        )
    )  # fmt: skip


def _topic_role(config: DeployConfig, member: str, role: str, topic: str | None = None) -> Run:
    return Run(
        _gcloud(
            config, "pubsub", "topics", "add-iam-policy-binding", topic or config.events_topic,
            f"--member={member}", f"--role={role}", "--format=none",
        )
    )  # fmt: skip


def _secret_role(config: DeployConfig, member: str, role: str) -> Run:
    return Run(
        _gcloud(
            config, "secrets", "add-iam-policy-binding", config.callback_secret,
            f"--member={member}", f"--role={role}", "--format=none",
        )
    )  # fmt: skip


def firestore_location(config: DeployConfig) -> Step:
    return Step(
        "Read the Firestore database's location",
        "The jobs' write trigger (publish-job-events) must be made where the database is "
        "(a region, or a multi-region such as nam5). A missing database stops the deploy.",
        (
            Lookup(
                "FIRESTORE_LOCATION",
                _gcloud(
                    config, "firestore", "databases", "describe",
                    f"--database={config.firestore_database}", "--format=value(locationId)",
                ),
            ),
        ),
    )  # fmt: skip


def events_topic(config: DeployConfig) -> Step:
    return Step(
        "Status notifications",
        "The topic every status change is published to (JOB_EVENTS_TOPIC, by "
        "publish-job-events), created unless it exists. Its Eventarc trigger "
        "(deliver-callbacks) makes its own subscription.",
        (
            Run(
                _gcloud(config, "pubsub", "topics", "create", config.events_topic),
                unless=_gcloud(config, "pubsub", "topics", "describe", config.events_topic),
            ),
        ),
    )


def cluster_events(config: DeployConfig) -> Step:
    """The topic and log sink of the Kubernetes events that end a job
    (shared/model/clusterevents.py), and the sink's right to publish there alone."""
    topic, sink = config.cluster_events_topic, config.cluster_events_sink
    destination = f"pubsub.googleapis.com/projects/{config.project}/topics/{topic}"
    log_filter = clusterevents.log_filter(
        config.project, config.cluster, config.cluster_location, config.namespace
    )
    return Step(
        "Cluster events",
        f"A log sink, {sink}, routes the Kubernetes events that end a job (the Job "
        "controller's failures, the kubelet's failed image pulls), in this cluster's job "
        f"namespace only, to the topic {topic}; its Eventarc trigger (on-cluster-event) "
        "reconciles that one job at once. The sink's own writer identity may publish to "
        "that topic and nothing else. The filter is set again on every deploy:\n"
        + log_filter,
        (
            Run(
                _gcloud(config, "pubsub", "topics", "create", topic),
                unless=_gcloud(config, "pubsub", "topics", "describe", topic),
            ),
            Run(
                _gcloud(config, "logging", "sinks", "create", sink, destination,
                        f"--log-filter={log_filter}"),
                unless=_gcloud(config, "logging", "sinks", "describe", sink),
            ),
            Run(_gcloud(config, "logging", "sinks", "update", sink, destination,
                        f"--log-filter={log_filter}")),
            Lookup(
                "SINK_WRITER",
                _gcloud(config, "logging", "sinks", "describe", sink,
                        "--format=value(writerIdentity)"),
            ),
            _topic_role(config, "${SINK_WRITER}", PUBLISHER, topic),
        ),
    )  # fmt: skip


def callback_secret(config: DeployConfig) -> Step:
    return Step(
        "Callback secret",
        f"The callbacks' signing key, in Secret Manager as {config.callback_secret}: made "
        "by an operator (docs/deploy.md shows how), so its value never passes through the "
        "deploy, its logs or the functions' environment. Read before any change: a missing "
        "secret stops the deploy.",
        (
            Lookup(
                "CALLBACK_SECRET_VERSION",
                _gcloud(
                    config, "secrets", "versions", "describe", "latest",
                    f"--secret={config.callback_secret}", "--format=value(name)",
                ),
            ),
        ),
    )  # fmt: skip


def grants(config: DeployConfig) -> Step:
    def sa(account: str) -> str:
        return f"serviceAccount:{config.email(account)}"

    functions = (config.api_account, config.sync_account, config.finalize_account)
    actions: list[Run] = []
    for account in functions:
        actions.append(_project_role(config, sa(account), FIRESTORE))
        actions.append(_project_role(config, sa(account), CLUSTER_SIGN_IN))
        actions.append(_account_role(config, account, sa(account), SIGN_OWN_URLS))
    actions.append(_project_role(config, sa(config.finalize_account), EVENT_RECEIVER))
    # on-cluster-event runs as the sync's account, and its trigger delivers as it.
    actions.append(_project_role(config, sa(config.sync_account), EVENT_RECEIVER))
    actions.append(_bucket_role(config, sa(config.api_account), OBJECTS_READ_WRITE))
    for account in (config.sync_account, config.finalize_account):
        actions.append(_bucket_role(config, sa(account), OBJECTS_READ))
        actions.append(_bucket_role(config, sa(account), OBJECTS_CREATE))
    # A submission's outcome objects are written again on a redelivery, and a refusal's is
    # deleted once an upload is accepted: replace and delete, under submissions/ only.
    actions.append(
        _bucket_role(config, sa(config.finalize_account), OBJECTS_READ_WRITE, prefix=SUBMISSIONS)
    )
    actions.append(_project_role(config, "serviceAccount:${STORAGE_AGENT}", PUBLISHER))
    events = sa(config.events_account)
    actions.append(_topic_role(config, events, PUBLISHER))
    actions.append(_project_role(config, events, EVENT_RECEIVER))
    callbacks = sa(config.callbacks_account)
    actions.append(_project_role(config, callbacks, FIRESTORE))
    actions.append(_project_role(config, callbacks, EVENT_RECEIVER))
    actions.append(_secret_role(config, callbacks, SECRET_READER))
    return Step(
        "Roles",
        "Adding a binding that exists changes nothing. Each function account: Firestore; "
        "signing in to the cluster (what it may do there is the namespace's Role); signing "
        "URLs as itself (token creator on its own account). On this bucket only: the API's "
        "account creates the input and opens the output's upload session "
        "(ifGenerationMatch=0), reads, signs and deletes (objectUser); the sync's and "
        "finalize's read metadata, sign the output URL and save job logs as new objects, "
        "never replacing or deleting one (objectViewer + objectCreator). The finalize account"
        " receives Eventarc events, and so does the sync's (on-cluster-event, which "
        "reconciles one job as a sync pass does, runs as it); the Cloud Storage service agent"
        " publishes the bucket's events to Pub/Sub for Eventarc. The events account alone "
        "publishes the status notifications, on JOB_EVENTS_TOPIC only, and receives Eventarc "
        "events (the jobs' Firestore writes); it reads nothing else. The callbacks account "
        "reads and records the job (Firestore), receives Eventarc events and reads the "
        "callback secret, that secret only; nothing else. No pod gets a Google identity.",
        tuple(actions),
    )


def submission_grants(config: DeployConfig) -> Step:
    action = SubmissionGrants(
        project=config.project,
        database=config.firestore_database,
        collection=config.accounts_collection,
        bucket=config.bucket,
        role=OBJECTS_CREATE,
    )
    return Step(
        "Submission folders",
        "Cloud Storage does not say who uploaded a submission: the folder does. Each "
        "account's submitters and admins may create objects under submissions/<account_id>/ "
        "and nowhere else in the bucket (objectCreator: no read, replace or delete), through "
        "an IAM condition on the object's name; grants of anyone no longer a submitter are "
        "removed. Run again after changing members (the accounts are read from Firestore).",
        (action,),
    )


def invokers(
    config: DeployConfig,
    api_functions: list[str],
    sync: str,
    finalize: str,
    callbacks: str,
    events: str,
    cluster_events: str,
) -> Step:
    def invoker(function: str, member: str) -> Run:
        return Run(
            _gcloud(
                config, "functions", "add-invoker-policy-binding", function,
                f"--region={config.region}", f"--member={member}", "--format=none",
            )
        )  # fmt: skip

    actions = [
        invoker(sync, f"serviceAccount:{config.email(config.scheduler_account)}"),
        invoker(cluster_events, f"serviceAccount:{config.email(config.sync_account)}"),
        invoker(finalize, f"serviceAccount:{config.email(config.finalize_account)}"),
        invoker(callbacks, f"serviceAccount:{config.email(config.callbacks_account)}"),
        invoker(events, f"serviceAccount:{config.email(config.events_account)}"),
    ]
    actions += [invoker(name, member) for member in config.invokers for name in api_functions]
    return Step(
        "Who may call the functions",
        "Every function refuses unauthenticated calls. The scheduler's account may call the "
        "sync, each trigger's account its function (finalize, callbacks, events, and the "
        "sync's account on-cluster-event: "
        "roles/run.invoker), and API_INVOKERS "
        "the API.",
        tuple(actions),
    )
