"""Firestore's composite indexes, from infra/firestore.indexes.json (Firebase's format),
and the TTL policy of the create's request keys.

The file names the default collection, batch_jobs; the indexes are made on the configured
FIRESTORE_COLLECTION. Creating an index that exists fails with "already exists", which
counts as done; `--async` returns while Firestore builds it. Enabling a TTL policy that is
enabled already changes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.deploy.config import DeployConfig
from infra.deploy.steps import Run, Step

# The request keys of creates (shared/cloud/store.py): `<FIRESTORE_COLLECTION>_requests`,
# each deleted by Firestore once its `expires_at` (created + 24 h) has passed.
REQUESTS_SUFFIX = "_requests"
TTL_FIELD = "expires_at"
INDEXES_FILE = Path(__file__).resolve().parents[1] / "firestore.indexes.json"


def load(path: Path = INDEXES_FILE) -> list[dict[str, Any]]:
    indexes: list[dict[str, Any]] = json.loads(path.read_text())["indexes"]
    return indexes


def create_indexes(config: DeployConfig) -> Step:
    actions = []
    for index in load():
        fields = [
            f"--field-config=field-path={field['fieldPath']},order={field['order'].lower()}"
            for field in index["fields"]
        ]
        argv = (
            "gcloud", "firestore", "indexes", "composite", "create",
            f"--project={config.project}",
            f"--database={config.firestore_database}",
            f"--collection-group={config.collection}",
            f"--query-scope={index.get('queryScope', 'COLLECTION').lower()}",
            *fields,
            "--async",
        )  # fmt: skip
        actions.append(Run(argv, exists_ok=True))
    return Step(
        "Firestore indexes",
        "One composite index per query shape: the list by status (and account) in "
        "creation order, and an account's jobs of every status newest first. The sync's "
        "`status in [...]` and the list of every job need only automatic indexes.",
        tuple(actions),
    )


def request_ttl(config: DeployConfig) -> Step:
    argv = (
        "gcloud", "firestore", "fields", "ttls", "update", TTL_FIELD,
        f"--project={config.project}",
        f"--database={config.firestore_database}",
        f"--collection-group={config.collection}{REQUESTS_SUFFIX}",
        "--enable-ttl",
        "--async",
    )  # fmt: skip
    return Step(
        "Firestore TTL of request ids",
        "A create's request_id is kept 24 hours: Firestore deletes each key once its "
        f"`{TTL_FIELD}` has passed (within a day of it; the API treats an expired key as "
        "absent meanwhile).",
        (Run(argv),),
    )
