"""The pods bound to one node, run as the kubelet runs them, through the API server.

Every POLL_SECONDS the runner lists the pods bound to its node (the only pods the Node
authorizer shows a node) and acts on what changed:
- A new pod gets a worker thread: its emptyDir volumes are made, its init containers run
  in order and then its containers together, through runtime.py (a bubblewrap
  sandbox for the images the local cloud stands in for, KUBESIM_* simulation otherwise).
  Its status (phase, conditions, container states with exit codes, reasons and
  termination messages) is written after each step, as the kubelet's status manager
  writes it (podstatus.py).
- A pod past its spec.activeDeadlineSeconds is stopped and Failed with DeadlineExceeded.
- Every EVICTION_SECONDS, a pod whose emptyDir holds more than its sizeLimit, or whose
  files hold more than its ephemeral-storage limit (storage.py), is evicted as the
  kubelet's eviction manager does: killed at once, Failed with reason Evicted and the
  kubelet's message, and no DisruptionTarget condition (evictPod is given none there), so
  a Job counts it as an ordinary failure.
- A container of an image the node does not have (runtime.Runtime.pullable: not the
  stager, not a stand-in, not listed as simulated, and no KUBESIM_* variable), or whose
  environment says KUBESIM_IMAGE_PULL_ERROR=1, waits with ErrImagePull, then
  ImagePullBackOff, and never starts, as a misspelled image does on GKE; with
  KUBESIM_IMAGE_PULL_ERROR=timeout, its message is a registry's that did not answer.
- A deleted pod (deletionTimestamp set) gets SIGTERM, its grace period, then SIGKILL; its
  terminal phase is written before it is removed (the Job controller counts a failed pod
  by its phase), and then it is deleted with grace period 0 and its UID as precondition.
- A container that ends is started again in place as the pod's restartPolicy says
  (OnFailure, Always), after the kubelet's crash-loop back-off, its run kept as
  lastState and counted in restartCount (which the Job controller counts against a Job's
  backoffLimit under OnFailure).

Volumes other than emptyDir are not made (no secret, config map, projected or persistent
volume: the product's pods need none, and mount no service account token), and
environment variables from secrets and config maps are not read.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.nodeagent import podstatus, storage, volumes
from infra.local.nodeagent.clock import Clock
from infra.local.nodeagent.runtime import Container, Runtime, Stopper

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
RESTART_BACKOFF = 10.0  # the kubelet's first crash-loop back-off (simulated seconds)
RESTART_BACKOFF_MAX = 300.0  # and its longest
HOST_IP = "127.0.0.1"
DEFAULT_GRACE = 30.0  # terminationGracePeriodSeconds' default
DEADLINE = ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
EVICTION_SECONDS = 10.0  # simulated: the eviction manager's evictionMonitoringPeriod
PULL_BACKOFF_AFTER = 1.0  # simulated seconds of ErrImagePull before ImagePullBackOff
TERMINAL = ("Succeeded", "Failed")


@dataclass
class Worker:
    pod: dict[str, Any]
    status: dict[str, Any]
    stopper: Stopper = field(default_factory=Stopper)
    started: float = field(default_factory=time.monotonic)
    stopped_for: tuple[str, str] | None = None  # (reason, message) of a stop by the node
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class PodRunner:
    def __init__(self, node: str, api: Any, data_dir: Path, runtime: Runtime, clock: Clock) -> None:
        from kubernetes import client

        self.node = node
        self.core: Any = client.CoreV1Api(api)
        self.data_dir = data_dir
        self.runtime = runtime
        self.clock = clock
        self.workers: dict[str, Worker] = {}
        self.removing: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"pods-{self.node}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching, and every pod's containers (SIGTERM, then SIGKILL at `timeout`)."""
        self._stop.set()
        kill_at = time.monotonic() + timeout
        for worker in list(self.workers.values()):
            worker.stopper.request(kill_at)
        for worker in list(self.workers.values()):
            if worker.thread is not None:
                worker.thread.join(max(0.0, kill_at - time.monotonic()) + 1)
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the node's view of its pods ------------------------------------------------------

    def _loop(self) -> None:
        measured = time.monotonic()
        while not self._stop.wait(POLL_SECONDS):
            try:
                pods = self._bound_pods()
            except Exception as error:  # noqa: BLE001 - the API server may be restarting
                log.warning("listing the node's pods failed", extra={"error": str(error)})
                continue
            for pod in pods:
                self._consider(pod)
            if time.monotonic() - measured >= self.clock.wall(EVICTION_SECONDS):
                measured = time.monotonic()
                for worker in list(self.workers.values()):
                    self._evict_if_full(worker)

    def _evict_if_full(self, worker: Worker) -> None:
        if not worker.alive() or worker.stopper.stopping:
            return
        base = volumes.pod_dir(self.data_dir, worker.uid)
        message = storage.verdict(worker.pod["spec"], base)
        if message is not None:
            log.info("evicting pod", extra={"pod": worker.uid, "reason": message})
            worker.stopped_for = ("Evicted", message)
            worker.stopper.request(time.monotonic())  # immediateEvictionGracePeriodSeconds

    def _bound_pods(self) -> list[dict[str, Any]]:
        answer = self.core.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={self.node}", _preload_content=False
        )
        return list(json.loads(answer.data)["items"])

    def _consider(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        deleting = pod["metadata"].get("deletionTimestamp") is not None
        phase = (pod.get("status") or {}).get("phase")
        if worker is None and not deleting and phase not in TERMINAL:
            self._start(pod)
            return
        if worker is not None:
            worker.pod = pod
            self._check_deadline(worker)
        if deleting and uid not in self.removing:
            grace = pod["metadata"].get("deletionGracePeriodSeconds")
            self.removing.add(uid)
            threading.Thread(
                target=self._remove, args=(pod, worker, grace), name=f"remove-{uid}", daemon=True
            ).start()

    def _start(self, pod: dict[str, Any]) -> None:
        status = podstatus.initial(pod["spec"], HOST_IP, HOST_IP)
        # The API server sets the QoS class when the pod is created; it may not change.
        status.pop("qosClass", None)
        if qos := (pod.get("status") or {}).get("qosClass"):
            status["qosClass"] = qos
        worker = Worker(pod=pod, status=status)
        self.workers[worker.uid] = worker
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=f"pod-{worker.uid}", daemon=True
        )
        worker.thread.start()

    def _check_deadline(self, worker: Worker) -> None:
        deadline = worker.pod["spec"].get("activeDeadlineSeconds")
        if deadline is None or not worker.alive() or worker.stopped_for is not None:
            return
        if time.monotonic() - worker.started >= self.clock.wall(float(deadline)):
            worker.stopped_for = DEADLINE
            worker.stopper.request(time.monotonic() + self._grace(worker.pod))

    def _grace(self, pod: dict[str, Any], given: float | None = None) -> float:
        seconds = given if given is not None else pod["spec"].get("terminationGracePeriodSeconds")
        return self.clock.wall(DEFAULT_GRACE if seconds is None else float(seconds))

    def _remove(self, pod: dict[str, Any], worker: Worker | None, grace: float | None) -> None:
        """A deleted pod: its containers stopped within its grace period, its terminal phase
        written, then the pod deleted for good (grace 0, on condition it is still this
        pod)."""
        meta = pod["metadata"]
        try:
            if worker is not None and worker.alive():
                worker.stopper.request(time.monotonic() + self._grace(pod, grace))
                assert worker.thread is not None
                worker.thread.join()
            elif (pod.get("status") or {}).get("phase") not in TERMINAL:
                status = dict(pod.get("status") or {})
                status["phase"] = "Failed"
                podstatus.terminate(status)
                podstatus.update_ready(status)
                self._write(pod, status)
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}}
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=body)
        except Exception as error:  # noqa: BLE001 - the next list tries again
            log.warning("removing a pod failed", extra={"pod": meta["name"], "error": str(error)})
            self.removing.discard(meta["uid"])
            return
        self.workers.pop(meta["uid"], None)
        shutil.rmtree(volumes.pod_dir(self.data_dir, meta["uid"]), ignore_errors=True)

    def _write(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        """A Warning Event about the pod, as the kubelet records one (best effort, as its
        event recorder is)."""
        meta = pod["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "kubelet", "host": self.node},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], event)
        except Exception as error:  # noqa: BLE001 - an event is never worth a pod
            log.warning("recording an event failed", extra={"error": str(error)})

    # -- one pod ----------------------------------------------------------------------------

    def _update(self, worker: Worker, change: Any) -> None:
        with worker.lock:
            change(worker.status)
            try:
                self._write(worker.pod, worker.status)
            except Exception as error:  # noqa: BLE001 - the pod may be gone: stop it
                log.warning("writing a pod's status failed", extra={"error": str(error)})
                worker.stopper.request(time.monotonic())

    def _run(self, worker: Worker) -> None:
        try:
            self._lifecycle(worker)
        except Exception as error:  # noqa: BLE001 - report, never end the thread silently
            log.error("pod worker failed", extra={"pod": worker.uid, "error": repr(error)})

    def _lifecycle(self, worker: Worker) -> None:
        spec = worker.pod["spec"]
        paths = self._volumes(worker)
        self._update(
            worker, lambda s: podstatus.set_condition(s, "PodReadyToStartContainers", True)
        )
        initialized = True
        for container in spec.get("initContainers") or []:
            if self._restarting(worker, container, paths, init=True) != 0:
                initialized = False
                break
        if initialized and not worker.stopper.stopping:
            threads = [
                threading.Thread(target=self._restarting, args=(worker, c, paths), daemon=True)
                for c in spec["containers"]
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        stopped_for = worker.stopped_for
        self._update(worker, lambda s: podstatus.finished(s, stopped_for))

    def _restarting(
        self, worker: Worker, container: dict[str, Any], paths: dict[str, Path], init: bool = False
    ) -> int | None:
        """Run a container, and again as the pod's restartPolicy says (OnFailure: after a
        failure; Always: after any end, an init container only after a failure), after the
        kubelet's crash-loop back-off: 10 s, doubling up to 5 minutes. Its last exit code."""
        policy = worker.pod["spec"].get("restartPolicy") or "Always"
        backoff = RESTART_BACKOFF
        while True:
            code = self._container(worker, container, paths, init=init)
            again = policy != "Never" and (code != 0 or (policy == "Always" and not init))
            if code is None or not again or worker.stopper.stopping:
                return code
            meta = worker.pod["metadata"]
            message = (
                f"back-off {backoff:g}s restarting failed container={container['name']} "
                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})"
            )

            def loop(s: dict[str, Any], name: str = container["name"], text: str = message) -> None:
                if (item := podstatus.entry(s, init, name)) is not None:
                    podstatus.crash_loop(item, text)
                    podstatus.update_ready(s)

            self._update(worker, loop)
            log_path = volumes.log_path(self.data_dir, worker.uid, container["name"], init=init)
            if log_path.exists():  # the next run's log starts empty
                log_path.replace(volumes.previous_log(log_path))
            if worker.stopper.event.wait(self.clock.wall(backoff)):
                return code
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    def _volumes(self, worker: Worker) -> dict[str, Path]:
        base = volumes.pod_dir(self.data_dir, worker.uid)
        paths = {}
        for volume in worker.pod["spec"].get("volumes") or []:
            if "emptyDir" in volume:
                paths[volume["name"]] = base / "volumes" / volume["name"]
                paths[volume["name"]].mkdir(parents=True, exist_ok=True)
        (base / "logs").mkdir(parents=True, exist_ok=True)
        return paths

    def _container(
        self, worker: Worker, container: dict[str, Any], paths: dict[str, Path], init: bool = False
    ) -> int | None:
        """Run one container to its end; its exit code, or None if it never started."""
        name = container["name"]

        def set_state(change: Any) -> None:
            def apply(s: dict[str, Any]) -> None:
                if (item := podstatus.entry(s, init, name)) is not None:
                    change(s, item)

            self._update(worker, apply)

        if worker.stopper.stopping:
            return None
        env = container_env(worker.pod, container, self.node)
        image = container.get("image", "")
        pull_error = env.get("KUBESIM_IMAGE_PULL_ERROR")
        if pull_error in ("1", "timeout") or not self.runtime.pullable(image, env):
            self._cannot_pull(worker, image, set_state, timeout=pull_error == "timeout")
            return None
        log_path = volumes.log_path(self.data_dir, worker.uid, name, init=init)
        message_path = volumes.termination_path(self.data_dir, worker.uid, name, init=init)
        message_path.parent.mkdir(parents=True, exist_ok=True)
        message_path.write_bytes(b"")
        mounts = volumes.mounts(container, paths)
        mounts.append(
            (container.get("terminationMessagePath") or "/dev/termination-log", message_path)
        )
        set_state(lambda s, i: podstatus.started(s, i, init))
        result = self.runtime.run(
            Container(
                name=name,
                image=image,
                command=[str(a) for a in container.get("command") or []],
                args=[str(a) for a in container.get("args") or []],
                env=env,
                mounts=mounts,
                log_path=log_path,
                work_dir=volumes.pod_dir(self.data_dir, worker.uid) / "work",
                read_only=volumes.read_only_paths(container, worker.pod["spec"]),
                working_dir=str(container.get("workingDir") or ""),
                memory_limit=volumes.memory_limit(container),
            ),
            worker.stopper,
        )
        message = podstatus.termination_message(
            container, result.exit_code, result.reason, message_path, log_path
        )
        set_state(
            lambda s, i: podstatus.ended(s, i, init, result.exit_code, result.reason, message)
        )
        return result.exit_code

    def _cannot_pull(self, worker: Worker, image: str, set_state: Any, *, timeout: bool) -> None:
        """ErrImagePull, then ImagePullBackOff, in the words containerd gives a kubelet for an
        image that does not exist (or, `timeout`, for a registry that did not answer), and
        the kubelet's back-off message wrapping the pull's error (pkg/kubelet/images/
        image_manager.go); the container waits until its pod is deleted."""
        code, cause = "NotFound", f"{image}: not found"
        if timeout:
            code, cause = "Unknown", f'failed to do request: Head "https://{image}": i/o timeout'
        message = (
            f'rpc error: code = {code} desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": {cause}'
        )
        set_state(lambda s, i: podstatus.waiting(i, "ErrImagePull", message))
        self._event(worker.pod, "Failed", f'Failed to pull image "{image}": {message}')
        if not worker.stopper.event.wait(self.clock.wall(PULL_BACKOFF_AFTER)):
            backoff = f'Back-off pulling image "{image}": ErrImagePull: {message}'
            set_state(lambda s, i: podstatus.waiting(i, "ImagePullBackOff", backoff))
            worker.stopper.event.wait()


def container_env(pod: dict[str, Any], container: dict[str, Any], node: str) -> dict[str, str]:
    """The container's `env`: values, and fields of its pod (fieldRef), as the kubelet
    resolves them. Secrets and config maps are not read yet."""
    meta = pod["metadata"]
    fields = {
        "metadata.name": meta["name"],
        "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"],
        "spec.nodeName": node,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": HOST_IP,
        "status.podIP": HOST_IP,
    }
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            env[var["name"]] = volumes.field_path(
                pod, fields, source["fieldRef"].get("fieldPath", "")
            )
        elif not source:
            env[var["name"]] = str(var.get("value", ""))
    return env
