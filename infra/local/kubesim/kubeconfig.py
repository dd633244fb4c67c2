"""The kubeconfig kubesim writes at start: how the kubernetes client and kubectl find it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

CONTEXT = "kubesim"


def render(server: str, token: str, namespace: str = "default") -> str:
    """A kubeconfig document. JSON is valid YAML, so no YAML library is needed."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return json.dumps(config, indent=2) + "\n"


def write(path: Path, server: str, token: str) -> None:
    """Write atomically: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(render(server, token))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
