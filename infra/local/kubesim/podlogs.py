"""GET pods/NAME/log: a container's output, with the API server's errors for a missing
or ambiguous container and for one that has not started."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local.kubesim import volumes
from infra.local.kubesim.status import bad_request


def _first(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as error:
        raise bad_request(f'{key}: Invalid value: "{value}": must be an integer') from error


def read(data_dir: Path, pod: dict[str, Any], query: dict[str, str]) -> bytes:
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    main = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    container = query.get("container") or ""
    if not container:
        if len(main) != 1:
            extra = f" or one of the init containers: [{' '.join(init)}]" if init else ""
            raise bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(main)}]{extra}"
            )
        container = main[0]
    if container not in main and container not in init:
        raise bad_request(f"container {container} is not valid for pod {name}")
    is_init = container in init and container not in main
    status = pod.get("status") or {}
    key = "initContainerStatuses" if is_init else "containerStatuses"
    entry = next((s for s in status.get(key) or [] if s["name"] == container), None)
    state = (entry or {}).get("state") or {"waiting": {"reason": "ContainerCreating"}}
    if "waiting" in state:
        reason = state["waiting"].get("reason", "ContainerCreating")
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    path = volumes.log_path(data_dir, pod["metadata"]["uid"], container, init=is_init)
    try:
        text = path.read_bytes()
    except OSError:
        text = b""
    tail = _first(query, "tailLines")
    if tail is not None:
        lines = text.splitlines(keepends=True)
        text = b"".join(lines[-tail:]) if tail > 0 else b""
    limit = _first(query, "limitBytes")
    if limit is not None:
        text = text[:limit]
    return text
