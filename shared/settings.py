"""The one settings object, built once from the environment.

Variable names of the earlier service are kept where they mean the same thing. Each field
says its unit and default; a required value without a default fails at start with a
message naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from shared.contract.env import EnvReader
from shared.quota import Quota, merged

MIB = 1024 * 1024
# A V4 signed URL and a resumable upload session live at most 7 days; a job's pod must be
# done with both by then, an hour of margin included (see shared/model/validation.py MAX_TIMEOUT).
MAX_JOB_SECONDS = 7 * 24 * 3600 - 3600
DEFAULT_MAX_PARALLELISM = 100  # MAX_PARALLELISM: a small cluster's worth of pods


class SettingsError(RuntimeError):
    """A configuration variable is missing or malformed; the message names it."""


class _Reader(EnvReader):
    def quantity(self, name: str, default: str) -> str:
        """A Kubernetes quantity such as "10Gi", checked here rather than by the cluster."""
        from shared.quantity import parse_quantity

        value = self.text(name, default)
        number = parse_quantity(value)
        if number is None or number <= 0:
            raise SettingsError(f"{name} must be a positive Kubernetes quantity, got {value!r}")
        return value


GOOGLE_ISSUERS = "https://accounts.google.com,accounts.google.com"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
_FLAVOR_DEFAULT = {"cpu": "32", "memory": "128Gi", "pods": "100"}
DEFAULT_QUOTA = json.dumps({"on-demand": _FLAVOR_DEFAULT, "spot": _FLAVOR_DEFAULT})


def _quota(text: str) -> Quota:
    try:
        return merged(json.loads(text), merged(json.loads(DEFAULT_QUOTA)))
    except ValueError as error:  # QuotaError, json.JSONDecodeError
        raise SettingsError(f"DEFAULT_QUOTA: {error}") from None


@dataclass(frozen=True)
class Access:
    """Callers and accounts (docs/accounts.md)."""

    enabled: bool  # ACCESS_CONTROL (on): every request needs a verified identity token, and
    #   each caller acts only on its accounts. Off: whoever reaches the functions acts on
    #   every account, as the earlier API let them (one team, behind IAM alone)
    audiences: tuple[str, ...]  # AUTH_AUDIENCES: comma-separated `aud` a token may carry
    #   (the functions' URLs); required while ACCESS_CONTROL is on
    issuers: tuple[str, ...]  # AUTH_ISSUERS (Google's two spellings): accepted `iss`
    certs_url: str  # AUTH_CERTS_URL (Google's x509 certs): the issuer's signing certificates
    iap_audience: str | None  # IAP_AUDIENCE: /projects/N/global/backendServices/ID; when set,
    #   the Identity-Aware Proxy's signed header identifies the caller too (the status page)
    operators: frozenset[str]  # OPERATORS (""): comma-separated emails that may do anything
    accounts_collection: str  # ACCOUNTS_COLLECTION ("accounts"): one document per account

    @classmethod
    def from_env(cls, read: EnvReader) -> Access:
        enabled = read.flag("ACCESS_CONTROL", default=True)
        audiences = read.words("AUTH_AUDIENCES")
        if enabled and not audiences:
            raise SettingsError(
                "AUTH_AUDIENCES must list the functions' URLs while ACCESS_CONTROL is on "
                "(ACCESS_CONTROL=off serves one team behind IAM alone)"
            )
        return cls(
            enabled=enabled,
            audiences=audiences,
            issuers=read.words("AUTH_ISSUERS", GOOGLE_ISSUERS),
            certs_url=read.text("AUTH_CERTS_URL", GOOGLE_CERTS_URL),
            iap_audience=read.optional("IAP_AUDIENCE"),
            operators=frozenset(email.lower() for email in read.words("OPERATORS")),
            accounts_collection=read.text("ACCOUNTS_COLLECTION", "accounts"),
        )


@dataclass(frozen=True)
class Settings:
    # Cloud Storage
    bucket: str  # GC_BUCKET_NAME: bucket for <name>-input.zip and <name>-output.zip
    credentials_file: str | None  # GC_CREDENTIALS_FILE_PATH: key file; None = default creds
    project: str | None  # GOOGLE_CLOUD_PROJECT: None = the credentials' project
    output_url_lifetime: int  # OUTPUT_URL_LIFETIME_SECONDS (3600): signed URL lifetime, s

    # Firestore
    firestore_database: str  # FIRESTORE_DATABASE ("(default)")
    jobs_collection: str  # FIRESTORE_COLLECTION ("batch_jobs"): one document per job

    # Kubernetes: GKE (endpoint + CA), a static token (URL + key), or a kubeconfig
    kubernetes_url: str | None  # KUBERNETES_API_URL: https://HOST; None = use KUBECONFIG
    kubernetes_key: str | None  # KUBERNETES_API_KEY: bearer token, "Bearer " prefix optional
    kubernetes_ca_file: str | None  # KUBERNETES_CA_FILE: CA bundle of the API server
    kubernetes_ca_data: str | None  # KUBERNETES_CA_DATA: the same, base64 PEM (GKE's masterAuth)
    gke_auth: bool  # KUBERNETES_AUTH=gke: token from google-auth default credentials
    kubeconfig: str | None  # KUBECONFIG: path, used when KUBERNETES_API_URL is not set
    namespace: str  # KUBERNETES_NAMESPACE ("default"): must exist
    stager_image: str  # STAGER_IMAGE: the image of the stage-in and stage-out containers
    job_service_account: str | None  # JOB_SERVICE_ACCOUNT: job pods' KSA; None = namespace default
    volume_size: str  # JOB_VOLUME_SIZE ("10Gi"): sizeLimit of /input and /output
    storage_class: str | None  # JOB_STORAGE_CLASS: a disk per pod of this class; None = emptyDir

    # Jobs
    default_timeout: int  # JOB_TIMEOUT_SECONDS (86400): activeDeadlineSeconds default
    stager_retry: int  # STAGER_RETRY_SECONDS (120): how long stage-out retries an upload, s
    max_log_bytes: int  # MAX_LOG_BYTES (8 MiB): the end of a job's log kept in the bucket
    create_wait: float  # CREATE_WAIT_SECONDS (0): how long create watches the pod start
    image_pull_grace: float  # IMAGE_PULL_GRACE_SECONDS (120): pull errors this old fail a job
    create_grace: float  # CREATE_GRACE_SECONDS (120): a `created` job this old was abandoned
    sync_interval: float  # JOB_SYNCHRONIZATION_INTERVAL (30): seconds between sync passes
    sync_passes: int  # SYNC_PASSES_PER_CALL (1): passes per scheduler call, `interval` apart
    sync_budget: float  # SYNC_TIME_BUDGET_SECONDS (50): no pass of a call may end later
    max_input_bytes: int  # MAX_INPUT_BYTES (20 MiB): decoded input zip
    max_input_files: int  # MAX_INPUT_FILES (10000): entries in the input zip
    max_parallelism: int  # MAX_PARALLELISM (100): the most tasks (pods) one job may run at
    #   once; a create asking for more is refused. The floor under per-account quotas
    max_input_uncompressed: int  # MAX_INPUT_UNCOMPRESSED_BYTES (1 GiB)
    max_body_bytes: int  # MAX_REQUEST_BYTES (32 MiB): whole request body
    max_input_url_bytes: int  # MAX_INPUT_URL_BYTES (10 GiB): input by input_url or upload
    allow_private_inputs: bool  # ALLOW_PRIVATE_INPUT_URLS (false): input_url may be http,
    #   loopback or private (the local cloud sets it); never for production
    input_upload_lifetime: int  # INPUT_UPLOAD_SECONDS (3600): the upload URL's lifetime, s

    # Status notifications and webhooks
    events_topic: str | None  # JOB_EVENTS_TOPIC: a topic id or projects/P/topics/T; every
    #   status change is published there. None = no notifications (and no callbacks)
    callback_secret: str | None  # CALLBACK_SECRET: the HMAC-SHA256 key of the callbacks'
    #   X-Task-Runner-Signature; None = a create with callback_url is refused (400)
    callback_retry: int  # CALLBACK_RETRY_SECONDS (3600): how long a callback is retried
    #   after the job's final status, s (at most 86400: Pub/Sub keeps a message a day)
    allow_private_callbacks: bool  # ALLOW_PRIVATE_CALLBACKS (false): callback_url may be
    #   http, loopback or private (the local cloud sets it); never for production

    default_quota: Quota  # DEFAULT_QUOTA (JSON, as the accounts API takes a quota): an
    #   account's until an operator sets its own, and the quota of jobs of no account;
    #   32 CPUs, 128Gi and 100 pods on each flavor (docs/quotas.md)
    access: Access  # who may call, and who may do what: the class above
    backend_timeout: float  # BACKEND_TIMEOUT_SECONDS (15): one Firestore, Storage or cluster
    #   call, retries included; past it the request answers 503 (or 500 for the cluster)
    log_level: str  # LOG_LEVEL ("WARNING", as before)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        read = _Reader(os.environ if env is None else env, SettingsError)
        topic = read.optional("JOB_EVENTS_TOPIC")
        if topic is not None and "/" in topic:
            topic_path(topic, None)  # a malformed path fails at start, not at a publish
        return cls(
            bucket=read.text("GC_BUCKET_NAME"),
            credentials_file=read.optional("GC_CREDENTIALS_FILE_PATH"),
            project=read.optional("GOOGLE_CLOUD_PROJECT"),
            output_url_lifetime=read.integer("OUTPUT_URL_LIFETIME_SECONDS", 3600, minimum=1),
            firestore_database=read.text("FIRESTORE_DATABASE", "(default)"),
            jobs_collection=read.text("FIRESTORE_COLLECTION", "batch_jobs"),
            kubernetes_url=read.optional("KUBERNETES_API_URL"),
            kubernetes_key=read.optional("KUBERNETES_API_KEY"),
            kubernetes_ca_file=read.optional("KUBERNETES_CA_FILE"),
            kubernetes_ca_data=read.optional("KUBERNETES_CA_DATA"),
            gke_auth=read.text("KUBERNETES_AUTH", "token").lower() == "gke",
            kubeconfig=read.optional("KUBECONFIG"),
            namespace=read.text("KUBERNETES_NAMESPACE", "default"),
            stager_image=read.text("STAGER_IMAGE", "kubernetes-task-runner/stager:local"),
            job_service_account=read.optional("JOB_SERVICE_ACCOUNT"),
            volume_size=read.quantity("JOB_VOLUME_SIZE", "10Gi"),
            storage_class=read.optional("JOB_STORAGE_CLASS"),
            default_timeout=read.integer(
                "JOB_TIMEOUT_SECONDS", 86400, minimum=1, maximum=MAX_JOB_SECONDS
            ),
            stager_retry=read.integer("STAGER_RETRY_SECONDS", 120),
            max_log_bytes=read.integer("MAX_LOG_BYTES", 8 * MIB, minimum=1024),
            create_wait=read.number("CREATE_WAIT_SECONDS", 0.0),
            image_pull_grace=read.number("IMAGE_PULL_GRACE_SECONDS", 120.0),
            create_grace=read.number("CREATE_GRACE_SECONDS", 120.0),
            sync_interval=read.number("JOB_SYNCHRONIZATION_INTERVAL", 30.0, minimum=0.1),
            sync_passes=read.integer("SYNC_PASSES_PER_CALL", 1, minimum=1),
            sync_budget=read.number("SYNC_TIME_BUDGET_SECONDS", 50.0, minimum=1.0),
            max_input_bytes=read.integer("MAX_INPUT_BYTES", 20 * MIB, minimum=1),
            max_input_files=read.integer("MAX_INPUT_FILES", 10000, minimum=1),
            max_parallelism=read.integer(
                "MAX_PARALLELISM", DEFAULT_MAX_PARALLELISM, minimum=1, maximum=10_000
            ),
            max_input_uncompressed=read.integer("MAX_INPUT_UNCOMPRESSED_BYTES", 1024 * MIB),
            max_body_bytes=read.integer("MAX_REQUEST_BYTES", 32 * MIB, minimum=1024),
            max_input_url_bytes=read.integer("MAX_INPUT_URL_BYTES", 10 * 1024 * MIB, minimum=1),
            allow_private_inputs=read.flag("ALLOW_PRIVATE_INPUT_URLS"),
            input_upload_lifetime=read.integer(
                "INPUT_UPLOAD_SECONDS", 3600, minimum=1, maximum=7 * 24 * 3600
            ),
            events_topic=topic,
            callback_secret=read.optional("CALLBACK_SECRET"),
            callback_retry=read.integer("CALLBACK_RETRY_SECONDS", 3600, minimum=1, maximum=86400),
            allow_private_callbacks=read.flag("ALLOW_PRIVATE_CALLBACKS"),
            default_quota=_quota(read.text("DEFAULT_QUOTA", DEFAULT_QUOTA)),
            access=Access.from_env(read),
            backend_timeout=read.number("BACKEND_TIMEOUT_SECONDS", 15.0, minimum=1.0),
            log_level=read.text("LOG_LEVEL", "WARNING").upper(),
        )


GOOGLE_ISSUERS = "https://accounts.google.com,accounts.google.com"
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


def topic_path(topic: str, project: str | None) -> str:
    """projects/P/topics/T for a topic id (in `project`) or a full path."""
    problem = f"JOB_EVENTS_TOPIC must be a topic id or projects/P/topics/T, got {topic!r}"
    parts = topic.split("/")
    if topic.startswith("projects/"):
        if len(parts) != 4 or parts[2] != "topics" or not parts[1] or not parts[3]:
            raise SettingsError(problem)
        return topic
    if len(parts) != 1:
        raise SettingsError(problem)
    if not project:
        raise SettingsError("JOB_EVENTS_TOPIC is a topic id: GOOGLE_CLOUD_PROJECT must be set")
    return f"projects/{project}/topics/{topic}"


@cache
def get_settings() -> Settings:
    """The process's settings, read on first use (never at import time)."""
    return Settings.from_env()
