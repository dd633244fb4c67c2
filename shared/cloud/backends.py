"""The clients a request needs, created on first use and kept for the process's life.

A `get` touches only Firestore, so only Firestore's client is built (and imported) for it:
cold starts pay for what the request path needs.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import TYPE_CHECKING

from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from shared.cloud.accounts import AccountStore
    from shared.cloud.bucket import Bucket
    from shared.cloud.cluster import Cluster
    from shared.cloud.events import Publisher
    from shared.cloud.identity import TokenVerifier
    from shared.cloud.queues import Queues
    from shared.cloud.store import JobStore


class Backends:
    def __init__(self, settings: Settings | None = None) -> None:
        self._given = settings

    @cached_property
    def settings(self) -> Settings:
        """The settings given, or the environment's, read on first use: a misconfigured
        function answers each request with an error naming the variable."""
        return self._given or get_settings()

    @cached_property
    def store(self) -> JobStore:
        from google.cloud import firestore

        from shared.cloud.store import JobStore

        client = firestore.Client(
            project=self.settings.project, database=self.settings.firestore_database
        )
        return JobStore(client, self.settings.jobs_collection, self.settings.backend_timeout)

    @cached_property
    def accounts(self) -> AccountStore:
        from shared.cloud.accounts import AccountStore

        return AccountStore(
            self.store.client,
            self.settings.access.accounts_collection,
            self.settings.backend_timeout,
        )

    @cached_property
    def verifier(self) -> TokenVerifier:
        from shared.cloud.identity import TokenVerifier

        return TokenVerifier(self.settings.access, self.settings.backend_timeout)

    @cached_property
    def events(self) -> Publisher | None:
        """The status notifications' publisher (the write trigger's alone); None without
        JOB_EVENTS_TOPIC."""
        if self.settings.events_topic is None:
            return None
        from shared.cloud.events import Publisher

        return Publisher(self.settings.events_topic, self.settings.project)

    @cached_property
    def kubernetes(self) -> ApiClient:
        """One client (and connection pool) for the cluster and its queues."""
        from shared.cloud.cluster import api_client

        return api_client(self.settings)

    @cached_property
    def cluster(self) -> Cluster:
        from shared.cloud.cluster import Cluster

        settings = self.settings
        return Cluster(self.kubernetes, settings.namespace, settings.backend_timeout)

    @cached_property
    def queues(self) -> Queues:
        """Kueue's queues of the accounts."""
        from shared.cloud.queues import Queues

        settings = self.settings
        return Queues(
            self.kubernetes, settings.namespace, settings.default_quota, settings.backend_timeout
        )

    @cached_property
    def bucket(self) -> Bucket:
        from shared.cloud.bucket import Bucket, storage_client

        return Bucket(
            storage_client(self.settings), self.settings.bucket, self.settings.backend_timeout
        )


@cache
def default_backends() -> Backends:
    """The process's backends, from the environment's settings. Building them reads
    nothing: the settings and each client wait for their first use."""
    return Backends()
