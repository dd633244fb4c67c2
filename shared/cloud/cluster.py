"""The Kubernetes adapter: one client factory (GKE, static token or kubeconfig) and the few
calls the product makes, with library errors wrapped into the project's own.

Reads return plain dicts parsed straight from the API's JSON (`_preload_content=False`),
which is several times cheaper than the client's model objects for thousands of items.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from shared.errors import ClusterApiError, ClusterConflictError, ClusterNotFoundError, cut
from shared.model.manifests import OWNED_SELECTOR
from shared.model.queues import QUEUE_LABEL
from shared.settings import Settings, SettingsError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

T = TypeVar("T")
PAGE_SIZE = 500  # items per list request: the sync's request count grows with N / 500
LOG_CHUNK = 256 * 1024  # bytes read at a time from a streamed log
GKE_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def api_client(settings: Settings) -> ApiClient:
    """A client for the configured cluster.

    - KUBERNETES_API_URL + KUBERNETES_AUTH=gke: a token from the default Google credentials
      (the function's service account), refreshed before it expires.
    - KUBERNETES_API_URL + KUBERNETES_API_KEY: a static bearer token.
    - otherwise KUBECONFIG (used locally and by the tests).
    """
    from kubernetes import client, config

    if not settings.kubernetes_url:
        try:
            return config.new_client_from_config(config_file=settings.kubeconfig)
        except (config.ConfigException, OSError) as error:
            raise SettingsError(
                f"KUBECONFIG {settings.kubeconfig or '~/.kube/config'}: {error}"
            ) from None
    configuration = client.Configuration()
    configuration.host = settings.kubernetes_url.rstrip("/")
    if settings.kubernetes_ca_file:
        configuration.ssl_ca_cert = settings.kubernetes_ca_file
    elif settings.kubernetes_ca_data:
        configuration.ssl_ca_cert = _ca_file(settings.kubernetes_ca_data)
    if settings.gke_auth:
        _use_google_token(configuration)
    elif settings.kubernetes_key:
        key = settings.kubernetes_key
        configuration.api_key = {
            "authorization": key if key.startswith("Bearer ") else f"Bearer {key}"
        }
    return client.ApiClient(configuration)


def _ca_file(data: str) -> str:
    """The client reads its CA from a file: write the base64 PEM of KUBERNETES_CA_DATA to one."""
    try:
        pem = base64.b64decode(data, validate=True)
    except ValueError:
        raise SettingsError("KUBERNETES_CA_DATA must be base64 (a PEM certificate)") from None
    with tempfile.NamedTemporaryFile("wb", prefix="cluster-ca-", suffix=".pem", delete=False) as f:
        f.write(pem)
    return f.name


def _use_google_token(configuration: Any) -> None:
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default(scopes=GKE_SCOPES)
    request = google.auth.transport.requests.Request()

    def refresh(conf: Any) -> None:
        if not credentials.valid:
            credentials.refresh(request)
        conf.api_key = {"authorization": f"Bearer {credentials.token}"}

    configuration.refresh_api_key_hook = refresh
    refresh(configuration)


def call_api(action: str, call: Callable[[], T]) -> T:
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return call()
    except ApiException as error:
        try:
            body: Any = json.loads(error.body) if error.body else {}
        except (TypeError, ValueError):
            body = cut(str(error.body))
        status = int(error.status or 0)
        kind = {404: ClusterNotFoundError, 409: ClusterConflictError}.get(status, ClusterApiError)
        raise kind(status, str(error.reason), body, action) from error
    except (HTTPError, OSError) as error:
        raise ClusterApiError(
            0, type(error).__name__, {"message": cut(str(error))}, action
        ) from error


def _discard(response: Any) -> None:
    """Read what is left of an unwanted body before the connection goes back to the pool:
    a connection returned unread hands that body to the next request as its status line."""
    response.drain_conn()
    response.release_conn()


def _deleted(action: str, call: Callable[[], Any]) -> bool:
    """Run a delete whose body is not wanted; False if the object was gone already."""
    try:
        call_api(action, lambda: _discard(call()))
    except ClusterNotFoundError:
        return False
    return True


def json_body(response: Any) -> Any:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


class Cluster:
    """What the product does to the cluster, in one namespace."""

    def __init__(self, api: ApiClient, namespace: str, timeout: float = 15.0) -> None:
        from kubernetes import client

        self.namespace = namespace
        # Each request's connect and read timeout: a stalled API server must not hold a
        # function until its own timeout (the client has none by default).
        self.timeout = timeout
        # Typed as Any: the product passes manifests as dicts and reads raw JSON
        # (_preload_content=False), both supported at run time but not by the stubs.
        self.core: Any = client.CoreV1Api(api)
        self.batch: Any = client.BatchV1Api(api)

    # -- create --------------------------------------------------------------------------

    def create_job(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        result: dict[str, Any] = call_api(
            f"creating job {name}",
            lambda: json_body(
                self.batch.create_namespaced_job(
                    self.namespace, manifest, _preload_content=False, _request_timeout=self.timeout
                )
            ),
        )
        return result

    def move_job(self, name: str, queue: str) -> None:
        """Give a scheduled job's Job (suspended, in the held queue) its account's Kueue
        queue: Kueue moves its workload there and resumes it once admitted. Its
        activeDeadlineSeconds counts from then (the controller resets status.startTime on
        resume: https://kubernetes.io/docs/concepts/workloads/controllers/job/#suspending-a-job)."""
        call_api(
            f"moving job {name} to queue {queue}",
            lambda: _discard(
                self.batch.patch_namespaced_job(
                    name,
                    self.namespace,
                    {"metadata": {"labels": {QUEUE_LABEL: queue}}},
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            ),
        )

    # -- delete (a missing object is already deleted) -------------------------------------

    def delete_job(self, name: str) -> bool:
        """Delete a Job and its pods (Background propagation); False if it was gone."""
        return _deleted(
            f"deleting job {name}",
            lambda: self.batch.delete_namespaced_job(
                name,
                self.namespace,
                propagation_policy="Background",
                grace_period_seconds=0,
                _preload_content=False,
                _request_timeout=self.timeout,
            ),
        )

    def delete_claim(self, name: str) -> bool:
        return _deleted(
            f"deleting volume claim {name}",
            lambda: self.core.delete_namespaced_persistent_volume_claim(
                name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            ),
        )

    # -- read ----------------------------------------------------------------------------

    def probe(self) -> None:
        """The health check's read: at most one Job of the namespace, authenticated as the
        product is, so a bad token or a missing permission fails it too."""
        call_api(
            "listing jobs (health check)",
            lambda: _discard(
                self.batch.list_namespaced_job(
                    self.namespace, limit=1, _preload_content=False, _request_timeout=self.timeout
                )
            ),
        )

    def pod_log(
        self, pod: str, container: str, *, tail_lines: int | None = None, limit_bytes: int
    ) -> bytes:
        """A container's log as it is now: its last `tail_lines` lines, if given, and at most
        `limit_bytes` bytes (from the start of what is returned)."""
        kwargs: dict[str, Any] = {"container": container, "limit_bytes": limit_bytes}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines

        def read() -> bytes:
            response = self.core.read_namespaced_pod_log(
                pod, self.namespace, _preload_content=False, _request_timeout=self.timeout, **kwargs
            )
            try:
                return bytes(response.data)
            finally:
                response.release_conn()

        return call_api(f"reading the log of {pod}/{container}", read)

    def pod_log_end(self, pod: str, container: str, keep: int) -> tuple[bytes, bool]:
        """The last `keep` bytes of a container's whole log, streamed (a log may be far larger
        than memory), and whether anything before them was cut."""

        def read() -> tuple[bytes, bool]:
            response = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            tail, cut_any = bytearray(), False
            try:
                for chunk in response.stream(LOG_CHUNK):
                    tail += chunk
                    if len(tail) > keep:
                        del tail[: len(tail) - keep]
                        cut_any = True
            finally:
                response.release_conn()
            return bytes(tail), cut_any

        return call_api(f"reading the log of {pod}/{container}", read)

    def _pages(
        self, what: str, list_call: Callable[..., Any], selector: str
    ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "label_selector": selector,
                "limit": PAGE_SIZE,
                "_preload_content": False,
                "_request_timeout": self.timeout,
            }
            if token:
                kwargs["_continue"] = token
            listed = lambda: json_body(list_call(self.namespace, **kwargs))  # noqa: B023, E731
            page = call_api(f"listing {what}", listed)
            yield from page.get("items", [])
            token = page.get("metadata", {}).get("continue")
            if not token:
                return

    def jobs(self, selector: str = OWNED_SELECTOR) -> list[dict[str, Any]]:
        return list(self._pages("jobs", self.batch.list_namespaced_job, selector))

    def pods(self, selector: str = OWNED_SELECTOR) -> list[dict[str, Any]]:
        return list(self._pages("pods", self.core.list_namespaced_pod, selector))

    def pod(self, name: str) -> dict[str, Any] | None:
        """One pod, or None when it is gone."""
        try:
            return call_api(
                f"reading pod {name}",
                lambda: json_body(
                    self.core.read_namespaced_pod(
                        name, self.namespace, _preload_content=False, _request_timeout=self.timeout
                    )
                ),
            )
        except ClusterNotFoundError:
            return None

    def claims(self, selector: str = OWNED_SELECTOR) -> list[dict[str, Any]]:
        return list(
            self._pages(
                "volume claims", self.core.list_namespaced_persistent_volume_claim, selector
            )
        )
