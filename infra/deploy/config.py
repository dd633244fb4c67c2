"""The deploy settings: read from the environment, or from an env file (KEY=VALUE lines)
whose values the environment overrides. Every missing or malformed setting is reported,
one line each, before anything runs."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # Google's service account ids
RESOURCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{2,254}$")  # topic and secret ids
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

# Runtime settings passed on to the functions when set (names from shared/settings.py),
# checked here by the functions' own reader so that a bad value stops the deploy instead
# of every function at start. GC_CREDENTIALS_FILE_PATH is not one of them: the deployed
# functions sign with their own identity (IAM signBlob), and no key file is shipped.
PASSED_TO_FUNCTIONS = (
    "OUTPUT_URL_LIFETIME_SECONDS",
    "JOB_VOLUME_SIZE",
    "JOB_STORAGE_CLASS",
    "JOB_TIMEOUT_SECONDS",
    "STAGER_RETRY_SECONDS",
    "MAX_LOG_BYTES",
    "CREATE_WAIT_SECONDS",
    "IMAGE_PULL_GRACE_SECONDS",
    "CREATE_GRACE_SECONDS",
    "MAX_INPUT_BYTES",
    "MAX_INPUT_FILES",
    "MAX_INPUT_UNCOMPRESSED_BYTES",
    "MAX_PARALLELISM",
    "DEFAULT_QUOTA",
    "MAX_INPUT_URL_BYTES",
    "INPUT_UPLOAD_SECONDS",
    "MAX_REQUEST_BYTES",
    "BACKEND_TIMEOUT_SECONDS",
    "CALLBACK_RETRY_SECONDS",
    "LOG_LEVEL",
)

# Settings of earlier deploys that no longer mean anything: no pod holds a Google identity
# (the stager gets a signed URL and an upload session from the functions). Each one set is
# reported, so that an old deploy.env does not pass for a working one.
# Never for a deployed service: each would let a user's URL reach private addresses.
LOCAL_ONLY = ("ALLOW_PRIVATE_INPUT_URLS", "ALLOW_PRIVATE_CALLBACKS")

OBSOLETE = {
    "STAGER_GOOGLE_SERVICE_ACCOUNT": "job pods hold no Google identity any more",
    "STAGER_SERVICE_ACCOUNT": "every job pod runs as JOB_SERVICE_ACCOUNT",
}


class DeploySettingsError(Exception):
    """Settings are missing or malformed; `problems` has one line per setting."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped; optional quotes removed."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise DeploySettingsError([f"{path}:{number}: expected KEY=VALUE, got {line!r}"])
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass(frozen=True)
class DeployConfig:
    project: str  # GOOGLE_CLOUD_PROJECT
    region: str  # REGION: the functions' and the scheduler job's region
    bucket: str  # GC_BUCKET_NAME: the jobs bucket (must exist)
    bucket_location: str  # BUCKET_LOCATION (REGION): where its finalize events originate
    cluster: str  # GKE_CLUSTER: the cluster's name
    cluster_location: str  # GKE_LOCATION: its region or zone
    namespace: str  # KUBERNETES_NAMESPACE: created if missing
    stager_image: str  # STAGER_IMAGE: infra/images/stager, pushed to a registry
    api_account: str  # API_SERVICE_ACCOUNT (task-runner-api): the five API functions
    sync_account: str  # SYNC_SERVICE_ACCOUNT (task-runner-sync): the sync function
    finalize_account: str  # FINALIZE_SERVICE_ACCOUNT (task-runner-finalize): finalize + trigger
    scheduler_account: str  # SCHEDULER_SERVICE_ACCOUNT (task-runner-scheduler): calls the sync
    callbacks_account: str  # CALLBACKS_SERVICE_ACCOUNT (task-runner-callbacks): webhooks
    events_account: str  # EVENTS_SERVICE_ACCOUNT (task-runner-events): publishes the status
    #   notifications (publish-job-events and its Firestore trigger)
    events_topic: str  # JOB_EVENTS_TOPIC (task-runner-job-events): status notifications
    cluster_events_topic: str  # CLUSTER_EVENTS_TOPIC (task-runner-cluster-events): where the
    #   log sink routes the Kubernetes events that end a job, for on-cluster-event
    cluster_events_sink: str  # CLUSTER_EVENTS_SINK (task-runner-cluster-events): that sink
    callback_secret: str  # CALLBACK_SECRET_NAME (task-runner-callback-secret): in Secret
    #   Manager, made by the operator (the deploy never sees its value)
    job_ksa: str  # JOB_SERVICE_ACCOUNT (task-runner-job): Kubernetes SA of every job pod
    firestore_database: str  # FIRESTORE_DATABASE ("(default)")
    collection: str  # FIRESTORE_COLLECTION ("batch_jobs")
    accounts_collection: str  # ACCOUNTS_COLLECTION ("accounts"): read for the submitters
    sync_interval: float  # JOB_SYNCHRONIZATION_INTERVAL (30): seconds
    scheduler_job: str  # SCHEDULER_JOB (synchronize-batch-jobs)
    invokers: tuple[str, ...]  # API_INVOKERS: members allowed to call the API, comma-separated
    access_control: bool  # ACCESS_CONTROL (on): the functions verify each caller's token and
    #   its accounts; off serves one team behind IAM alone, as the earlier API did
    operators: tuple[str, ...]  # OPERATORS: emails that may do anything (required while on)
    audiences: tuple[str, ...]  # AUTH_AUDIENCES: more `aud` values than the functions' own
    #   cloudfunctions.net URLs (their run.app URLs, a custom domain)
    iap_audience: str | None  # IAP_AUDIENCE: the status page's IAP backend service, if any
    runtime: dict[str, str]  # the PASSED_TO_FUNCTIONS settings that are set
    dry_run: bool  # DRY_RUN=1: print the plan, run nothing

    def email(self, account: str) -> str:
        return f"{account}@{self.project}.iam.gserviceaccount.com"

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, env_file: Path | None = None
    ) -> DeployConfig:
        """The environment wins over the env file (DEPLOY_ENV_FILE, or `env_file`)."""
        env = dict(os.environ if env is None else env)
        file = env_file or (Path(env["DEPLOY_ENV_FILE"]) if env.get("DEPLOY_ENV_FILE") else None)
        if file is not None:
            if not file.is_file():
                raise DeploySettingsError([f"DEPLOY_ENV_FILE: {file} does not exist"])
            env = {**read_env_file(file), **{k: v for k, v in env.items() if v.strip()}}
        return _Reader(env).config()


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, default: str | None = None, *, what: str = "") -> str:
        value = self.env.get(name, "").strip() or default
        if value is None:
            self.problems.append(f"{name} is not set: {what}")
            return ""
        return value

    def account(self, name: str, default: str) -> str:
        value = self.get(name, default)
        if not ACCOUNT_ID.match(value):
            self.problems.append(
                f"{name}={value!r} is not a service account id (6-30 of a-z, 0-9, -)"
            )
        return value

    def resource_id(self, name: str, default: str) -> str:
        """A Pub/Sub topic or Secret Manager secret id (not a path: the project is ours)."""
        value = self.get(name, default)
        if not RESOURCE_ID.match(value):
            self.problems.append(
                f"{name}={value!r} is not an id (a letter, then 2-254 of A-Za-z0-9_-)"
            )
        return value

    def k8s_name(self, name: str, default: str | None, *, what: str = "") -> str:
        value = self.get(name, default, what=what)
        if value and not K8S_NAME.match(value):
            self.problems.append(f"{name}={value!r} is not a Kubernetes name (a-z, 0-9, -)")
        return value

    def runtime_settings(self, runtime: dict[str, str]) -> None:
        """What the functions would refuse at start, refused now, by their own reader (one
        setting at a time, so that each bad one gets its own line)."""
        from shared.settings import Settings, SettingsError

        for name, value in runtime.items():
            try:
                Settings.from_env(
                    {"GC_BUCKET_NAME": "checked-elsewhere", "ACCESS_CONTROL": "off", name: value}
                )
            except SettingsError as error:
                self.problems.append(str(error))

    def words(self, name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in self.env.get(name, "").split(",") if item.strip())

    def interval(self) -> float:
        raw = self.get("JOB_SYNCHRONIZATION_INTERVAL", "30")
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value < 1:
            self.problems.append(f"JOB_SYNCHRONIZATION_INTERVAL={raw!r} must be seconds >= 1")
            return 30.0
        return value

    def config(self) -> DeployConfig:
        region = self.get("REGION", what="the functions' region, e.g. europe-west1")
        config = DeployConfig(
            project=self.get("GOOGLE_CLOUD_PROJECT", what="the Google Cloud project id"),
            region=region,
            bucket=self.get("GC_BUCKET_NAME", what="the jobs bucket, which must exist"),
            bucket_location=self.get("BUCKET_LOCATION", region or None).lower(),
            cluster=self.get("GKE_CLUSTER", what="the GKE cluster's name"),
            cluster_location=self.get("GKE_LOCATION", what="the cluster's region or zone"),
            namespace=self.k8s_name("KUBERNETES_NAMESPACE", None, what="the namespace jobs run in"),
            stager_image=self.get(
                "STAGER_IMAGE", what="the stager image (infra/images/stager) in a registry"
            ),
            api_account=self.account("API_SERVICE_ACCOUNT", "task-runner-api"),
            sync_account=self.account("SYNC_SERVICE_ACCOUNT", "task-runner-sync"),
            finalize_account=self.account("FINALIZE_SERVICE_ACCOUNT", "task-runner-finalize"),
            scheduler_account=self.account("SCHEDULER_SERVICE_ACCOUNT", "task-runner-scheduler"),
            callbacks_account=self.account("CALLBACKS_SERVICE_ACCOUNT", "task-runner-callbacks"),
            events_account=self.account("EVENTS_SERVICE_ACCOUNT", "task-runner-events"),
            events_topic=self.resource_id("JOB_EVENTS_TOPIC", "task-runner-job-events"),
            cluster_events_topic=self.resource_id(
                "CLUSTER_EVENTS_TOPIC", "task-runner-cluster-events"
            ),
            cluster_events_sink=self.resource_id(
                "CLUSTER_EVENTS_SINK", "task-runner-cluster-events"
            ),
            callback_secret=self.resource_id("CALLBACK_SECRET_NAME", "task-runner-callback-secret"),
            job_ksa=self.k8s_name("JOB_SERVICE_ACCOUNT", "task-runner-job"),
            firestore_database=self.get("FIRESTORE_DATABASE", "(default)"),
            collection=self.get("FIRESTORE_COLLECTION", "batch_jobs"),
            accounts_collection=self.get("ACCOUNTS_COLLECTION", "accounts"),
            sync_interval=self.interval(),
            scheduler_job=self.get("SCHEDULER_JOB", "synchronize-batch-jobs"),
            invokers=self.words("API_INVOKERS"),
            access_control=self.env.get("ACCESS_CONTROL", "on").strip().lower()
            not in ("0", "off", "false", "no"),
            operators=self.words("OPERATORS"),
            audiences=self.words("AUTH_AUDIENCES"),
            iap_audience=self.env.get("IAP_AUDIENCE", "").strip() or None,
            runtime={
                name: self.env[name].strip()
                for name in PASSED_TO_FUNCTIONS
                if self.env.get(name, "").strip()
            },
            dry_run=self.env.get("DRY_RUN", "").strip().lower() in ("1", "true", "yes"),
        )
        for member in config.invokers:
            if ":" not in member:
                self.problems.append(
                    f"API_INVOKERS: {member!r} needs a type, e.g. user:{member} or group:..."
                )
        if config.access_control and not config.operators:
            self.problems.append(
                "OPERATORS is not set: with access control on, name at least one operator "
                "(operators create the accounts), or set ACCESS_CONTROL=off"
            )
        for name, why in OBSOLETE.items():
            if self.env.get(name, "").strip():
                self.problems.append(
                    f"{name} is no longer used ({why}): remove it, and see docs/deploy.md on "
                    "what an earlier deploy made for it"
                )
        for name in LOCAL_ONLY:
            if self.env.get(name, "").strip() not in ("", "0", "false"):
                self.problems.append(
                    f"{name} is for the local cloud only: a deployed service must not let "
                    "users' URLs reach private addresses"
                )
        if self.env.get("CALLBACK_SECRET", "").strip():
            self.problems.append(
                "CALLBACK_SECRET is not read by the deploy: store it in Secret Manager as "
                "CALLBACK_SECRET_NAME (docs/deploy.md shows how); only the callbacks function "
                "reads it"
            )
        self.runtime_settings(config.runtime)
        if self.problems:
            raise DeploySettingsError(self.problems)
        return config
