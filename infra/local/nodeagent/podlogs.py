"""The kubelet's side of pods/NAME/log: a container's output, init containers' included.

The API server validates the options and the container name before it asks the node. The
kubelet refuses a container that has not started (pkg/kubelet/kubelet_pods.go,
validateContainerLogStatus), and the API server passes that on as a 400 BadRequest with
the kubelet's words (`container "job" in pod "p" is waiting to start: PodInitializing`).
tailLines and limitBytes apply as the kubelet applies them (the last lines, then at most
so many bytes); follow streams the log until the container stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from infra.local.nodeagent import volumes

CHUNK = 64 * 1024
FOLLOW_POLL = 0.02  # wall seconds between looks at a followed log


class LogError(Exception):
    """A refusal, with the HTTP status the kubelet answers it with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_request(message: str) -> LogError:
    return LogError(400, message)


def _int(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as error:
        raise bad_request(f'{key}: Invalid value: "{value}": must be an integer') from error


def _flag(query: dict[str, str], key: str) -> bool:
    return str(query.get(key, "")).lower() in ("1", "true")


def pick_container(pod: dict[str, Any], query: dict[str, str]) -> tuple[str, bool]:
    """(container name, is an init container), or the API server's 400."""
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
    return container, container in init and container not in main


def container_state(pod: dict[str, Any], container: str, init: bool) -> dict[str, Any] | None:
    key = "initContainerStatuses" if init else "containerStatuses"
    for entry in (pod.get("status") or {}).get(key) or []:
        if entry.get("name") == container:
            result: dict[str, Any] = entry
            return result
    return None


def check_started(pod: dict[str, Any], container: str, init: bool, previous: bool) -> bool:
    """validateContainerLogStatus: the kubelet's answer for a container without logs, or
    whether the log to read is the previous run's (asked for, or the current run has not
    started yet after a restart)."""
    name = pod["metadata"]["name"]
    entry = container_state(pod, container, init)
    if entry is None:
        raise bad_request(f'container "{container}" in pod "{name}" is not available')
    state = entry.get("state") or {}
    last = (entry.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        return True
    if "running" in state:
        return False
    if "terminated" in state:
        if state["terminated"].get("containerID"):
            return False
        if last and last.get("containerID"):
            return True
        raise bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last and last.get("containerID"):
        return True
    if "waiting" in state:
        reason = state["waiting"].get("reason", "")
        if reason == "ErrImagePull":
            reason = "image can't be pulled"
        elif reason == "ImagePullBackOff":
            reason = "trying and failing to pull image"
        raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    raise bad_request(f'container "{container}" in pod "{name}" is waiting to start - no logs yet')


def tail_lines(data: bytes, lines: int | None) -> bytes:
    """The last `lines` lines (newline-terminated, the last one maybe not), all if None."""
    if lines is None:
        return data
    if lines <= 0 or not data:
        return b""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
        return b"\n".join(parts[-lines:]) + b"\n"
    return b"\n".join(parts[-lines:])


def read(
    data_dir: Path,
    pod: dict[str, Any],
    query: dict[str, str],
    *,
    still_running: Callable[[], bool] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> bytes | Iterator[bytes]:
    """The log as bytes, or, with follow=true, an iterator of chunks that ends once
    `still_running()` says the container stopped (and its output has been sent)."""
    tail = _int(query, "tailLines")
    limit = _int(query, "limitBytes")
    container, init = pick_container(pod, query)
    if not (pod.get("spec") or {}).get("nodeName"):
        return b""  # LogLocation: no node yet, so an empty stream
    previous = check_started(pod, container, init, _flag(query, "previous"))
    path = volumes.log_path(data_dir, pod["metadata"]["uid"], container, init=init)
    if previous:
        path = volumes.previous_log(path)
    try:
        whole = path.read_bytes()
    except OSError:
        whole = b""
    text = tail_lines(whole, tail)
    if not _flag(query, "follow") or still_running is None:
        return text[:limit] if limit is not None else text
    return _follow(path, len(whole), text, limit, still_running, stopped)


def _follow(
    path: Path,
    offset: int,
    first: bytes,
    limit: int | None,
    still_running: Callable[[], bool],
    stopped: Callable[[], bool],
) -> Iterator[bytes]:
    left = limit

    def cut(chunk: bytes) -> bytes:
        nonlocal left
        if left is None:
            return chunk
        chunk = chunk[:left]
        left -= len(chunk)
        return chunk

    if first:
        yield cut(first)
    while left is None or left > 0:
        running = still_running()
        try:
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read(CHUNK)
        except OSError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            yield cut(chunk)
            continue
        if not running or stopped():
            return
        time.sleep(FOLLOW_POLL)
