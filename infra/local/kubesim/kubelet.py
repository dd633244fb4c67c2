"""The kubelet: schedules pods, runs their init containers in order and then their
containers, reports status, evicts pods past their local storage limits, and carries out
graceful deletion.

One loop thread watches the store; each started pod gets a worker thread that runs its
containers through the runtime, updating status without ever holding the store lock
while a container runs.

- Phase: Pending while init containers run (the user's container among them), Running
  once a regular container runs, then Succeeded or Failed (getPhase, restartPolicy Never).
  Ready and ContainersReady are True only while every regular container runs
  (podstatus.update_ready); Initialized once every init container exited 0.
- A stopped pod reports the containers it never saw end as ContainerStatusUnknown
  (podstatus.terminate, modelled on the status manager's TerminatePod).
- Termination messages (pkg/kubelet/kuberuntime/kuberuntime_container.go,
  getTerminationMessage and readLastStringFromContainerLogs): the file at
  terminationMessagePath (its last 4096 bytes, kubecontainer.MaxContainerTerminationMessage
  Length); with FallbackToLogsOnError, a container that exited non-zero (and was not
  ContainerCannotRun) and left that file empty gets the tail of its log: the last 80
  lines, of which the last 2048 bytes (MaxContainerTerminationMessageLogLines/LogLength).
- Local storage eviction (pkg/kubelet/eviction/eviction_manager.go, localStorageEviction,
  every evictionMonitoringPeriod = 10 s): an emptyDir whose usage (DiskUsage: blocks of
  every file) exceeds its sizeLimit, or a pod whose ephemeral storage (emptyDirs, logs, the
  containers' working directory) exceeds the pod's ephemeral-storage limit (PodLimits),
  is evicted with grace period 0: its containers are killed, the pod becomes Failed with
  reason Evicted and the message of emptyDirMessageFmt or podEphemeralStorageMessageFmt
  (pkg/kubelet/eviction/helpers.go), and no DisruptionTarget condition (evictPod is
  passed none for these), so a Job counts it as an ordinary failure.
- Active deadlines (pkg/kubelet/active_deadline.go): a pod whose spec.activeDeadlineSeconds
  have passed since its start (status.startTime, set when it is bound) is killed with its
  grace period and becomes Failed with reason DeadlineExceeded and the message "Pod was
  active on the node longer than the specified deadline". It is not deleted: it stays,
  with its log, until its owner deletes it.
- A deleted pod's containers get SIGTERM, then SIGKILL once its grace period is over; when
  they have stopped, the pod is removed, or, while a finalizer holds it, it stays with
  deletionGracePeriodSeconds 0 (the kubelet's final delete) until the finalizer goes. A
  deleted pod that never started is marked Failed (the pod GC's gcUnscheduledTerminating
  and TerminatePod make every terminating pod terminal).
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.kubesim import podstatus, quantity, scheduling, volumes
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, log
from infra.local.kubesim.runtime import Container, Runtime, Stopper
from infra.local.kubesim.store import Obj, Store, meta

TICK = 0.02  # wall seconds between passes over the pods
SCHEDULING_DELAY = 0.2  # simulated seconds before a schedulable pod starts
IMAGE_PULL_BACKOFF_AFTER = 1.0  # simulated seconds of ErrImagePull before ImagePullBackOff
EVICTION_MONITORING_PERIOD = 10.0  # simulated seconds (kubelet.go evictionMonitoringPeriod)
HOST_IP = "10.0.0.1"
POD_STOP_SECONDS = 2.0  # wall seconds kubesim waits for its pods' processes when it stops
DEADLINE_REASON = "DeadlineExceeded"  # active_deadline.go
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
DEFAULT_GRACE = 30.0  # simulated seconds: terminationGracePeriodSeconds' default
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '
POD_EPHEMERAL_MESSAGE = (
    "Pod ephemeral local storage usage exceeds the total limit of containers {}. "
)


@dataclass
class Worker:
    pod: Obj
    stopper: Stopper = field(default_factory=Stopper)
    thread: threading.Thread | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)  # bound: status.startTime
    # (reason, message) once the kubelet itself failed the pod: Evicted, DeadlineExceeded
    stopped_for: tuple[str, str] | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


def pod_ephemeral_limit(spec: dict[str, Any]) -> quantity.Quantity | None:
    """PodLimits (k8s.io/component-helpers/resource) for ephemeral-storage: the sum over
    the regular containers, or the largest init container's, whichever is larger."""
    total: quantity.Quantity | None = None
    for container in spec.get("containers") or []:
        value = ((container.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
        if value is not None:
            parsed = quantity.parse(value)
            total = parsed if total is None else total + parsed
    for container in spec.get("initContainers") or []:
        value = ((container.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
        if value is not None:
            parsed = quantity.parse(value)
            if total is None or parsed.value > total.value:
                total = parsed
    return total


class Kubelet:
    def __init__(self, store: Store, clock: Clock, data_dir: Path, runtime: Runtime) -> None:
        self.store = store
        self.clock = clock
        self.data_dir = data_dir
        self.runtime = runtime
        self.workers: dict[str, Worker] = {}
        self.first_seen: dict[str, float] = {}
        self._ips = 0
        self._next_eviction_check = 0.0

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - the loop must survive one bad pod
                log("ERROR", "kubelet pass failed", error=repr(error))
        self.stop_pods(POD_STOP_SECONDS)

    def stop_pods(self, timeout: float) -> None:
        """Kill every pod's containers and wait up to `timeout` seconds for them: the pod
        threads are daemons, and a process exiting before they act leaves the pods' host
        processes running."""
        now = time.monotonic()
        for worker in list(self.workers.values()):
            worker.stopper.request(now)
        deadline = now + timeout
        for worker in list(self.workers.values()):
            if worker.thread is not None:
                worker.thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def tick(self) -> None:
        now = time.monotonic()
        with self.store.lock:
            pods = [p for p in self.store.raw_items(r.PODS)]
            live = {meta(p)["uid"] for p in pods}
            for pod in pods:
                self._consider(pod, now)
        for uid in [u for u in self.workers if u not in live]:
            worker = self.workers[uid]
            worker.stopper.request(now)  # deleted at once: SIGKILL
            if not worker.alive:
                del self.workers[uid]
                shutil.rmtree(volumes.pod_dir(self.data_dir, uid), ignore_errors=True)
        for uid in [u for u in self.first_seen if u not in live]:
            del self.first_seen[uid]
            if uid not in self.workers:
                shutil.rmtree(volumes.pod_dir(self.data_dir, uid), ignore_errors=True)
        if now >= self._next_eviction_check:
            self._next_eviction_check = now + self.clock.wall(EVICTION_MONITORING_PERIOD)
            self._local_storage_eviction(now)
        self._active_deadlines(now)

    def _active_deadlines(self, now: float) -> None:
        """pastActiveDeadline: started + activeDeadlineSeconds reached, the pod is killed
        with its own grace period and failed (ShouldEvict: DeadlineExceeded)."""
        for worker in list(self.workers.values()):
            deadline = (worker.pod.get("spec") or {}).get("activeDeadlineSeconds")
            if deadline is None or not worker.alive or worker.stopper.stopping:
                continue
            if now - worker.started < self.clock.wall(deadline):
                continue
            m = meta(worker.pod)
            log("INFO", "pod past its active deadline", pod=f"{m['namespace']}/{m['name']}")
            worker.stopped_for = (DEADLINE_REASON, DEADLINE_MESSAGE)
            grace = worker.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE)
            worker.stopper.request(now + self.clock.wall(grace))

    def _consider(self, pod: Obj, now: float) -> None:
        """Called under the store lock for every pod on each pass."""
        m = meta(pod)
        uid = m["uid"]
        worker = self.workers.get(uid)
        if m.get("deletionTimestamp"):
            if worker is not None and worker.alive:
                worker.stopper.request(self.store.grace_deadlines.get(uid, now))
            elif not m.get("finalizers"):
                self.store.grace_deadlines.pop(uid, None)
                self.store.remove(r.PODS, pod)
            else:
                self._stopped_but_held(pod)
            return
        if worker is not None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        blocker = scheduling.node_blocker(pod) or volumes.scheduling_blocker(self.store, pod)
        if blocker is not None:
            self.first_seen.pop(uid, None)
            self._unschedulable(pod, blocker)
            return
        first = self.first_seen.setdefault(uid, now)
        if now - first < self.clock.wall(SCHEDULING_DELAY):
            return
        self._ips += 1
        worker = Worker(pod=pod)
        self.store.mutate(r.PODS, m["namespace"], m["name"], lambda p: self._bind(p))
        worker.thread = threading.Thread(
            target=self._run_pod, args=(worker, uid), name=f"pod-{m['name']}", daemon=True
        )
        self.workers[uid] = worker
        worker.thread.start()

    def _stopped_but_held(self, pod: Obj) -> None:
        """A deleted pod whose containers are gone but a finalizer holds: terminal, with
        deletionGracePeriodSeconds 0 (the kubelet's final delete, or the pod GC's)."""

        def change(p: Obj) -> None:
            status = p.setdefault("status", {})
            if status.get("phase") not in ("Succeeded", "Failed"):
                status["phase"] = "Failed"
                if status.get("containerStatuses") or status.get("initContainerStatuses"):
                    podstatus.terminate(status)
                podstatus.update_ready(status)
            meta(p)["deletionGracePeriodSeconds"] = 0

        self.store.grace_deadlines.pop(meta(pod)["uid"], None)
        self.store.mutate(r.PODS, meta(pod)["namespace"], meta(pod)["name"], change)

    def _unschedulable(self, pod: Obj, message: str) -> None:
        def change(p: Obj) -> None:
            podstatus.set_condition(
                p.setdefault("status", {}), "PodScheduled", False, "Unschedulable", message
            )

        self.store.mutate(r.PODS, meta(pod)["namespace"], meta(pod)["name"], change)

    def _bind(self, pod: Obj) -> None:
        pod["spec"]["nodeName"] = scheduling.NODE_NAME
        ip = f"10.1.{self._ips // 250 % 250}.{self._ips % 250 + 2}"
        kept = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "DisruptionTarget"
        ]
        pod["status"] = podstatus.initial(pod["spec"], HOST_IP, ip)
        pod["status"]["conditions"].extend(kept)

    # -- the eviction manager ---------------------------------------------------------------

    def _local_storage_eviction(self, now: float) -> None:
        """localStorageEviction over the running pods; measured outside the store lock."""
        for worker in list(self.workers.values()):
            if not worker.alive or worker.stopper.stopping or not worker.paths:
                continue
            message = self._storage_verdict(worker)
            if message is not None:
                m = meta(worker.pod)
                log("INFO", "evicting pod", pod=f"{m['namespace']}/{m['name']}", reason=message)
                worker.stopped_for = ("Evicted", message)
                worker.stopper.request(now)  # immediateEvictionGracePeriodSeconds = 0

    def _storage_verdict(self, worker: Worker) -> str | None:
        spec = worker.pod.get("spec") or {}
        empty_dirs = 0
        for volume in spec.get("volumes") or []:
            if volume.get("emptyDir") is None or volume["name"] not in worker.paths:
                continue
            used = volumes.disk_usage(worker.paths[volume["name"]])
            empty_dirs += used
            limit = volume["emptyDir"].get("sizeLimit")
            if limit is None:
                continue
            size = quantity.parse(limit)
            if size.value > 0 and used > size.value:
                return EMPTY_DIR_MESSAGE.format(volume["name"], size)
        limit_total = pod_ephemeral_limit(spec)
        if limit_total is None:
            return None
        base = volumes.pod_dir(self.data_dir, meta(worker.pod)["uid"])
        used = empty_dirs + volumes.disk_usage(base / "logs") + volumes.disk_usage(base / "work")
        if used > limit_total.value:
            return POD_EPHEMERAL_MESSAGE.format(limit_total)
        return None

    # -- one pod ----------------------------------------------------------------------------

    def _update(self, worker: Worker, change: Any) -> Obj | None:
        m = meta(worker.pod)
        updated = self.store.mutate(
            r.PODS, m["namespace"], m["name"], lambda p: change(p["status"])
        )
        if updated is None or meta(updated)["uid"] != m["uid"]:
            worker.stopper.request(time.monotonic())
            return None
        worker.pod = updated
        return updated

    def _run_pod(self, worker: Worker, uid: str) -> None:
        try:
            self._lifecycle(worker)
        except Exception as error:  # noqa: BLE001 - report, do not kill the thread silently
            log("ERROR", "pod worker failed", pod=meta(worker.pod)["name"], error=repr(error))

    def _setup(self, worker: Worker) -> dict[str, Path] | None:
        """Mount volumes, waiting (ContainerCreating) while a secret is missing."""
        while not worker.stopper.stopping:
            pod = self.store.get(r.PODS, meta(worker.pod)["namespace"], meta(worker.pod)["name"])
            if pod is None:
                return None
            worker.pod = pod
            try:
                return volumes.prepare(self.store, self.data_dir, pod)
            except volumes.NotReadyError:
                worker.stopper.event.wait(0.05)
        return None

    def _lifecycle(self, worker: Worker) -> None:
        paths = self._setup(worker)
        if paths is not None:
            worker.paths = paths
            spec = worker.pod["spec"]
            self._update(
                worker, lambda s: podstatus.set_condition(s, "PodReadyToStartContainers", True)
            )
            init_ok = True
            for container in spec.get("initContainers") or []:
                if self._container(worker, container, paths, init=True) != 0:
                    init_ok = False
                    break
            if init_ok and not worker.stopper.stopping:
                threads = [
                    threading.Thread(
                        target=self._container,
                        args=(worker, c, paths),
                        kwargs={"init": False},
                        daemon=True,
                    )
                    for c in spec["containers"]
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        stopped_for = worker.stopped_for
        self._update(worker, lambda s: podstatus.finished(s, stopped_for))

    def _container(
        self, worker: Worker, container: dict[str, Any], paths: dict[str, Path], *, init: bool
    ) -> int | None:
        """Run one container to its end; its exit code, or None if it never started."""
        name, image = container["name"], container.get("image", "")

        def set_state(change: Any) -> None:
            def apply(s: dict[str, Any]) -> None:
                item = podstatus.entry(s, init, name)
                if item is not None:
                    change(s, item)

            self._update(worker, apply)

        env: dict[str, str] | None = None
        while env is None:
            if worker.stopper.stopping:
                return None
            try:
                env = volumes.container_env(self.store, worker.pod, container)
            except volumes.NotReadyError as error:
                set_state(lambda s, i, e=error: podstatus.waiting(i, e.reason, e.message))
                worker.stopper.event.wait(0.05)
        if env.get("KUBESIM_IMAGE_PULL_ERROR") == "1":
            message = (
                f'failed to pull and unpack image "{image}": failed to resolve reference '
                f'"{image}": {image}: not found'
            )
            set_state(lambda s, i: podstatus.waiting(i, "ErrImagePull", message))
            if not worker.stopper.event.wait(self.clock.wall(IMAGE_PULL_BACKOFF_AFTER)):
                backoff = f'Back-off pulling image "{image}"'
                set_state(lambda s, i: podstatus.waiting(i, "ImagePullBackOff", backoff))
                worker.stopper.event.wait()
            return None
        if worker.stopper.stopping:
            return None
        uid = meta(worker.pod)["uid"]
        log_path = volumes.log_path(self.data_dir, uid, name, init=init)
        message_path = volumes.termination_path(self.data_dir, uid, name, init=init)
        message_path.parent.mkdir(parents=True, exist_ok=True)
        message_path.write_bytes(b"")
        mounts = volumes.mounts(container, paths)
        target = container.get("terminationMessagePath") or "/dev/termination-log"
        mounts.append((target, message_path))
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
                work_dir=volumes.pod_dir(self.data_dir, uid) / "work",
                read_only=volumes.read_only_paths(container, worker.pod["spec"]),
                working_dir=str(container.get("workingDir") or ""),
                memory_limit=volumes.memory_limit(container),
            ),
            worker.stopper,
        )
        text = podstatus.termination_message(
            container, result.exit_code, result.reason, message_path, log_path
        )
        set_state(lambda s, i: podstatus.ended(s, i, init, result.exit_code, result.reason, text))
        return result.exit_code
