"""The kubelet: schedules pods, runs their init containers in order and then their
containers, reports status, and carries out graceful deletion.

One loop thread watches the store; each started pod gets a worker thread that runs its
containers through the runtime, updating status without ever holding the store lock
while a container runs.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.kubesim import podstatus, volumes
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, log
from infra.local.kubesim.runtime import Container, Runtime, Stopper
from infra.local.kubesim.store import Obj, Store, meta

TICK = 0.02  # wall seconds between passes over the pods
SCHEDULING_DELAY = 0.2  # simulated seconds before a schedulable pod starts
IMAGE_PULL_BACKOFF_AFTER = 1.0  # simulated seconds of ErrImagePull before ImagePullBackOff
HOST_IP = "10.0.0.1"


@dataclass
class Worker:
    pod: Obj
    stopper: Stopper = field(default_factory=Stopper)
    thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class Kubelet:
    def __init__(self, store: Store, clock: Clock, data_dir: Path, runtime: Runtime) -> None:
        self.store = store
        self.clock = clock
        self.data_dir = data_dir
        self.runtime = runtime
        self.workers: dict[str, Worker] = {}
        self.first_seen: dict[str, float] = {}
        self._ips = 0

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - the loop must survive one bad pod
                log("ERROR", "kubelet pass failed", error=repr(error))
        for worker in self.workers.values():
            worker.stopper.request(time.monotonic())

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
            return
        if worker is not None or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        blocker = volumes.scheduling_blocker(self.store, pod)
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

    def _unschedulable(self, pod: Obj, message: str) -> None:
        def change(p: Obj) -> None:
            podstatus.set_condition(
                p.setdefault("status", {}), "PodScheduled", False, "Unschedulable", message
            )

        self.store.mutate(r.PODS, meta(pod)["namespace"], meta(pod)["name"], change)

    def _bind(self, pod: Obj) -> None:
        pod["spec"]["nodeName"] = "kubesim"
        ip = f"10.1.{self._ips // 250 % 250}.{self._ips % 250 + 2}"
        pod["status"] = podstatus.initial(pod["spec"], HOST_IP, ip)

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
            except volumes.NotReadyError as error:
                first = (pod["spec"].get("initContainers") or pod["spec"]["containers"])[0]
                init = bool(pod["spec"].get("initContainers"))

                def note(
                    s: Any, e: volumes.NotReadyError = error, i: bool = init, c: Any = first
                ) -> None:
                    item = podstatus.entry(s, i, c["name"])
                    if item is not None:
                        podstatus.waiting(item, e.reason)

                self._update(worker, note)
                worker.stopper.event.wait(0.05)
        return None

    def _lifecycle(self, worker: Worker) -> None:
        paths = self._setup(worker)
        if paths is not None:
            spec = worker.pod["spec"]
            self._update(
                worker, lambda s: podstatus.set_condition(s, "PodReadyToStartContainers", True)
            )
            init_ok = True
            for container in spec.get("initContainers") or []:
                if self._container(worker, container, paths, init=True) != 0:
                    init_ok = False
                    break
            if init_ok:
                self._update(worker, self._initialized)
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
        self._update(worker, self._finished)

    @staticmethod
    def _initialized(s: dict[str, Any]) -> None:
        podstatus.set_condition(s, "Initialized", True)
        for item in s.get("containerStatuses") or []:
            if "waiting" in item["state"]:
                podstatus.waiting(item, "ContainerCreating")

    @staticmethod
    def _finished(s: dict[str, Any]) -> None:
        main = [i["state"].get("terminated") for i in s.get("containerStatuses") or []]
        ok = all(t is not None and t["exitCode"] == 0 for t in main)
        s["phase"] = "Succeeded" if ok else "Failed"
        for kind in ("Ready", "ContainersReady"):
            podstatus.set_condition(s, kind, False, "PodCompleted")
        podstatus.set_condition(s, "PodReadyToStartContainers", False)

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
        set_state(lambda s, i: self._started(s, i, init))
        uid = meta(worker.pod)["uid"]
        result = self.runtime.run(
            Container(
                name=name,
                image=image,
                command=[str(a) for a in container.get("command") or []],
                args=[str(a) for a in container.get("args") or []],
                env=env,
                mounts=volumes.mounts(container, paths),
                log_path=volumes.log_path(self.data_dir, uid, name, init=init),
                work_dir=volumes.pod_dir(self.data_dir, uid) / "work",
            ),
            worker.stopper,
        )
        set_state(lambda s, i: self._ended(s, i, init, result.exit_code, result.reason))
        return result.exit_code

    @staticmethod
    def _started(s: dict[str, Any], item: dict[str, Any], init: bool) -> None:
        podstatus.running(item)
        if init:
            return
        item["ready"] = True
        s["phase"] = "Running"
        if all(i.get("ready") for i in s.get("containerStatuses") or []):
            podstatus.set_condition(s, "ContainersReady", True)
            podstatus.set_condition(s, "Ready", True)

    @staticmethod
    def _ended(s: dict[str, Any], item: dict[str, Any], init: bool, code: int, reason: str) -> None:
        podstatus.terminated(item, code, reason)
        if init:
            later = [i for i in s.get("initContainerStatuses") or [] if "waiting" in i["state"]]
            if code == 0 and later:
                podstatus.waiting(later[0], "PodInitializing")
            return
        podstatus.set_condition(s, "ContainersReady", False, "ContainersNotReady")
        podstatus.set_condition(s, "Ready", False, "ContainersNotReady")
