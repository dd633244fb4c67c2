"""`make run`: the whole local cloud on loopback, until Ctrl-C or SIGTERM.

Brings up the Firestore and Pub/Sub emulators, fake-gcs-server (announcing finalized
objects on Pub/Sub), the Kubernetes control plane (etcd, the API server, the controller
manager and the scheduler; a fresh cluster each time) with the node agent that runs its
pods, the jobs' namespace from infra/k8s/, the functions (functions-framework, one process
per entry point, `batch_api` on API_PORT, each reaching the cluster as the user its Google
service account is on GKE), the Eventarc relays (finalize, callbacks) and Firestore trigger
(the jobs' writes -> publish_job_events), and the scheduler loop; writes
`.local-cloud/env` and `.local-cloud/kubeconfig` (a cluster administrator's) for other
shells; stops everything when told to, or as soon as one server dies.

Stopping takes at most STOP_SECONDS (8 s), whatever the servers do: first what calls the
functions and the functions themselves, so that a request in flight can finish against
live backends, then the backends (emulators, fake-gcs-server, the cluster). Each tier gets
SIGTERM, and SIGKILL once its grace period is over (see procs.py). A stop requested while
the stack is still starting stops it at once.
"""

from __future__ import annotations

import ast
import fcntl
import logging
import os
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from infra.local import emulators, issuer
from infra.local.config import REPO_ROOT, LocalCloudSettings
from infra.local.controlplane import cluster
from infra.local.controlplane.cluster import ControlPlane
from infra.local.nodeagent.launch import start_agent
from infra.local.procs import (
    KILL_WAIT,
    ServerProcess,
    StartCancelledError,
    Starting,
    StopSignal,
    port_in_use,
    spawn,
    stop_servers,
    tcp_open,
)
from infra.local.pubsub import ensure_topic_and_subscription
from shared import logs

log = logging.getLogger("local-cloud")

GCS_TOPIC = "gcs-notifications"
RELAY_SUBSCRIPTION = "eventarc-relay"
EVENTS_TOPIC = "job-events"  # JOB_EVENTS_TOPIC: the jobs' status notifications
CALLBACKS_SUBSCRIPTION = "eventarc-callbacks"  # its Eventarc trigger's, to deliver_callbacks
CALLBACKS_FUNCTION = "deliver_callbacks"
CLUSTER_EVENTS_TOPIC = "cluster-events"  # where the log sink's stand-in publishes
CLUSTER_EVENTS_SUBSCRIPTION = "eventarc-cluster-events"  # its trigger's, to on_cluster_event
CLUSTER_EVENTS_FUNCTION = "on_cluster_event"
EVENTS_FUNCTION = "publish_job_events"  # Firestore's write trigger on the jobs collection
FUNCTIONS_SOURCE = REPO_ROOT / "functions" / "main.py"
FINALIZE_FUNCTION = "on_output_finalized"
SYNC_FUNCTION = "synchronize_batch_jobs"
# Threads of each function's server (functions-framework's gunicorn gthread worker, THREADS;
# its default is 4 per core). On Google Cloud the front end receives a whole request before
# it reaches the function, so a slow client never holds a worker; here clients talk to the
# server directly, and gthread reads a request's body in one of its threads: 8 slow POSTs
# took every thread of batch_api and a plain GET waited. Threads are started as needed.
FUNCTION_THREADS = 64
# The most tasks one job may run at once here (MAX_PARALLELISM; 100 on Google Cloud): every
# pod of the local cloud is a sandbox of real processes on this one machine, and the control plane,
# the functions and the emulators must keep answering beside them (make bench measures it:
# tests/bench/bench_ceiling.py).
LOCAL_MAX_PARALLELISM = 20
LOCAL_DEFAULTS = {"MAX_PARALLELISM": str(LOCAL_MAX_PARALLELISM)}
# Every other port is API_PORT's or LOCAL_FUNCTIONS_PORT + its index here.
OTHER_FUNCTIONS = (
    SYNC_FUNCTION,
    FINALIZE_FUNCTION,
    "create_job",
    "get_job",
    "list_jobs",
    "kill_job",
    CALLBACKS_FUNCTION,
    EVENTS_FUNCTION,
    CLUSTER_EVENTS_FUNCTION,
)
JOB_KSA = cluster.JOB_KSA
# Who each function is in the cluster: the user infra/k8s/rolebinding.yaml binds for its
# Google service account (infra/deploy), or None for the two that hold no cluster access.
API_USER, SYNC_USER, FINALIZE_USER = cluster.FUNCTION_USERS
CLUSTER_USERS: dict[str, str | None] = {
    SYNC_FUNCTION: SYNC_USER,
    CLUSTER_EVENTS_FUNCTION: SYNC_USER,  # it reconciles one job as the sync does
    FINALIZE_FUNCTION: FINALIZE_USER,
    CALLBACKS_FUNCTION: None,
    EVENTS_FUNCTION: None,
}
# Servers that others call; stopped last, once nothing calls them any more.
BACKENDS = (
    "token-issuer",
    "firestore-emulator",
    "pubsub-emulator",
    "fake-gcs-server",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "nodeagent",
)
FRONT_GRACE = 4.0  # seconds the functions, the relay and the scheduler get to exit
STOP_GRACE = 6.0  # seconds both tiers get together, as long as
BACK_MIN_GRACE = 2.0  # the backends get at least this many
STOP_SECONDS = FRONT_GRACE + BACK_MIN_GRACE + 2 * KILL_WAIT  # the longest a stop can take

T = TypeVar("T")


# Eventarc retries a failed delivery with backoff for up to a day: the relays' stand-in.
EVENTARC_RETRY = ("--max-attempts=1500", "--initial-backoff=1", "--max-backoff=60")


class AlreadyRunningError(RuntimeError):
    pass


@contextmanager
def single_instance(state_dir: Path) -> Iterator[None]:
    """Hold `state_dir/run.lock` for as long as the stack is up; refuse a second one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock_path = state_dir / "run.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "unknown"
            raise AlreadyRunningError(
                f"the local cloud is already running (pid {pid}); stop it first "
                f"(Ctrl-C in its terminal, or kill {pid})"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            lock.seek(0)
            lock.truncate()


def defined_functions(source: Path) -> list[str]:
    """Names of the top-level functions in functions/main.py (none while it is absent)."""
    if not source.exists():
        return []
    tree = ast.parse(source.read_text(), filename=str(source))
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def function_ports(settings: LocalCloudSettings) -> dict[str, int]:
    ports = {"batch_api": settings.api_port}
    for index, name in enumerate(OTHER_FUNCTIONS):
        ports[name] = settings.functions_port + index
    return ports


def client_env(settings: LocalCloudSettings) -> dict[str, str]:
    """What a client of the stack needs: the emulator variables and the configuration."""
    return {
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{settings.firestore_port}",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{settings.gcs_port}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{settings.pubsub_port}",
        "KUBECONFIG": str(settings.kubeconfig),
        "GOOGLE_CLOUD_PROJECT": settings.project,
        "GC_BUCKET_NAME": settings.bucket,
        "KUBERNETES_NAMESPACE": settings.namespace,
        "STAGER_IMAGE": settings.stager_image,
        "API_URL": f"http://127.0.0.1:{settings.api_port}",
        # Callers: tokens of the local issuer (`ktr` signs them with its key), for any
        # function's URL; operator@local may do anything.
        "LOCAL_ISSUER_KEY": str(settings.issuer_key),
        **issuer.access_env(
            settings.issuer_url,
            [f"http://127.0.0.1:{port}" for port in function_ports(settings).values()],
            settings.operators,
            enabled=settings.access_control,
        ),
        # Everything here is on loopback: inputs by URL may be too (never in production).
        "ALLOW_PRIVATE_INPUT_URLS": "1",
        "JOB_EVENTS_TOPIC": EVENTS_TOPIC,
        "CALLBACK_SECRET": settings.callback_secret,
        # Callbacks to a receiver on this machine (never in production).
        "ALLOW_PRIVATE_CALLBACKS": "1",
    }


def write_env_file(path: Path, env: dict[str, str]) -> None:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "# Written by `make run`: source it to use the local cloud.\n" + "\n".join(lines) + "\n"
    )
    tmp.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of an env file written by `write_env_file`."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0]
    return env


def check_ports_free(settings: LocalCloudSettings, functions: list[str]) -> None:
    wanted = {
        "LOCAL_FIRESTORE_PORT": settings.firestore_port,
        "LOCAL_PUBSUB_PORT": settings.pubsub_port,
        "LOCAL_GCS_PORT": settings.gcs_port,
        "LOCAL_KUBE_API_PORT": settings.kube_api_port,
        "LOCAL_ISSUER_PORT": settings.issuer_port,
    }
    ports = function_ports(settings)
    for name in functions:
        variable = "API_PORT" if name == "batch_api" else f"LOCAL_FUNCTIONS_PORT (+{name})"
        wanted[variable] = ports[name]
    for variable, port in wanted.items():
        if port_in_use(port):
            raise AlreadyRunningError(
                f"port {port} ({variable}) on 127.0.0.1 is already in use; "
                "stop what holds it or set the variable to another port"
            )


class Stack:
    """The running servers, in start order; stopped callers first, backends last.

    Every server is in `servers` from the moment it is spawned, so a failed or cancelled
    start stops it too. `stop_signal` cancels a start in progress.
    """

    def __init__(self, settings: LocalCloudSettings, stop_signal: StopSignal | None = None) -> None:
        self.settings = settings
        self.stop_signal = stop_signal or StopSignal()
        self.servers: list[ServerProcess] = []
        self.endpoints: list[tuple[str, str]] = []
        self.plane: ControlPlane | None = None
        # What every server of ours sees: the local cloud's defaults (the environment may
        # override them), the emulators, the configuration, the package.
        self.env = {
            **LOCAL_DEFAULTS,
            **os.environ,
            **client_env(settings),
            "PYTHONPATH": str(REPO_ROOT),
        }

    def _track(self, *starting: Starting) -> None:
        self.servers.extend(pending.proc for pending in starting)

    def _python(
        self, name: str, module: str, *args: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        """Spawn `python -m module args` from the repository root, logged as `name`, with
        the stack's environment and `env`."""
        return spawn(
            name,
            [sys.executable, "-m", module, *args],
            log_dir=self.settings.log_dir,
            env={**self.env, **(env or {})},
            cwd=REPO_ROOT,
        )

    def _python_ready(self, name: str, module: str, endpoint: str, *args: str) -> None:
        """`_python`, passed a `--ready-file` that it writes once it is at work, waited for
        (60 s at most): a relay that has not made its first pull, or a listener not yet
        listening, would miss what happens right after the stack says it is up."""
        ready = self.settings.state_dir / f"{name}.ready"
        ready.unlink(missing_ok=True)
        process = self._python(name, module, *args, f"--ready-file={ready}")
        pending = Starting(process, ready.exists, 60.0)
        self._track(pending)
        self._started(pending, endpoint)

    def _started(self, starting: Starting, endpoint: str) -> ServerProcess:
        server = starting.wait(self.stop_signal)
        self.endpoints.append((server.name, endpoint))
        return server

    def _call(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` in a helper thread, abandoned when a stop is requested: a
        client call to a backend that hangs must not hold the stop up."""
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(function(*args))
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                future.set_exception(error)

        threading.Thread(target=run, daemon=True).start()
        while not wait_futures([future], timeout=0.05).done:
            if self.stop_signal.is_set():
                raise StartCancelledError("stop requested while the local cloud was starting")
        return future.result()

    def start(self, functions: list[str]) -> None:
        if self.stop_signal.is_set():
            raise StartCancelledError("stop requested before the local cloud started")
        s = self.settings
        os.environ.update(client_env(s))
        logs_dir = s.log_dir
        # Independent servers boot in parallel; each waits below.
        firestore = emulators.start_firestore(
            port=s.firestore_port, project=s.project, log_dir=logs_dir
        )
        pubsub = emulators.start_pubsub(
            port=s.pubsub_port, project=s.project, log_dir=logs_dir, data_dir=s.state_dir / "pubsub"
        )
        self._track(firestore, pubsub)
        self._python_ready(
            "token-issuer",
            "infra.local.issuer",
            f"{s.issuer_url}{issuer.CERTS_PATH} (key: {s.issuer_key})",
            f"--dir={s.issuer_key.parent}",
            f"--port={s.issuer_port}",
        )
        self._start_cluster()
        self._started(pubsub, f"127.0.0.1:{s.pubsub_port} (PUBSUB_EMULATOR_HOST)")
        self._call(ensure_topic_and_subscription, s.project, GCS_TOPIC, RELAY_SUBSCRIPTION)
        self._call(ensure_topic_and_subscription, s.project, EVENTS_TOPIC, CALLBACKS_SUBSCRIPTION)
        self._call(
            ensure_topic_and_subscription,
            s.project,
            CLUSTER_EVENTS_TOPIC,
            CLUSTER_EVENTS_SUBSCRIPTION,
        )
        gcs = emulators.start_fake_gcs(
            port=s.gcs_port,
            project=s.project,
            topic=GCS_TOPIC,
            pubsub_host=f"127.0.0.1:{s.pubsub_port}",
            log_dir=logs_dir,
        )
        self._track(gcs)
        self._started(firestore, f"127.0.0.1:{s.firestore_port} (FIRESTORE_EMULATOR_HOST)")
        self._started(gcs, f"http://127.0.0.1:{s.gcs_port} (STORAGE_EMULATOR_HOST)")
        self._call(self._prepare_cloud)
        if functions:
            self._start_functions(functions)
        else:
            log.warning("functions/main.py defines no function yet: serving the local cloud only")
        # Written last: its presence tells other shells (and tests) that everything is up.
        write_env_file(s.env_file, client_env(s))

    def _start_cluster(self) -> None:
        """A fresh cluster: the control plane on LOCAL_KUBE_API_PORT, the node agent, and
        the administrator's kubeconfig for other shells."""
        s = self.settings
        folder = s.state_dir / "cluster"
        shutil.rmtree(folder, ignore_errors=True)
        self.plane = cluster.launch(
            folder / "control-plane", s.log_dir, port=s.kube_api_port, stop=self.stop_signal
        )
        self.servers.extend(self.plane.servers)
        shutil.copyfile(self.plane.admin_kubeconfig, s.kubeconfig)
        s.kubeconfig.chmod(0o600)
        self.endpoints.append(("kube-apiserver", f"{self.plane.url} (KUBECONFIG={s.kubeconfig})"))
        agent = start_agent(
            self.plane,
            folder / "nodes",
            speed=s.node_speed,
            stager_image=s.stager_image,
            log_dir=s.log_dir,
            env=self.env,
            stop=self.stop_signal,
            simulated_images=s.simulated_images,
        )
        self.servers.append(agent)
        self.endpoints.append(("nodeagent", "local-node, local-spot-node"))

    def _prepare_cloud(self) -> None:
        """The bucket, and the namespace from infra/k8s/ that the functions expect."""
        from google.api_core import exceptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        s = self.settings
        gcs = storage.Client(project=s.project, credentials=AnonymousCredentials())
        try:
            gcs.create_bucket(s.bucket)
        except exceptions.Conflict:
            pass
        assert self.plane is not None
        cluster.apply_namespace(self.plane, s.namespace, JOB_KSA)

    def _cluster_env(self, function: str) -> dict[str, str]:
        """How `function` reaches the cluster: its user's bearer token, as on GKE its
        Google token; none for a function whose account has no access there."""
        assert self.plane is not None
        user = CLUSTER_USERS.get(function, API_USER)
        if user is None:
            return {"KUBECONFIG": str(self.settings.state_dir / "no-cluster-access")}
        return {
            "KUBERNETES_API_URL": self.plane.url,
            "KUBERNETES_API_KEY": self.plane.token(user),
            "KUBERNETES_CA_FILE": str(self.plane.authority.pair.cert),
            "JOB_SERVICE_ACCOUNT": JOB_KSA,
        }

    def _start_functions(self, functions: list[str]) -> None:
        s = self.settings
        ports = function_ports(s)
        starting = []
        for name in functions:
            proc = self._python(
                f"function-{name}",
                "functions_framework",
                f"--source={FUNCTIONS_SOURCE}",
                f"--target={name}",
                "--host=127.0.0.1",
                f"--port={ports[name]}",
                env={"THREADS": str(FUNCTION_THREADS), **self._cluster_env(name)},
            )
            starting.append((name, Starting(proc, tcp_open(ports[name]), 60.0)))
            self._track(starting[-1][1])
        for name, pending in starting:
            self._started(pending, f"http://127.0.0.1:{ports[name]} ({name})")
        if FINALIZE_FUNCTION in functions:
            # Waited for: the env file says everything is up, the first upload's event too.
            self._python_ready(
                "eventarc-relay",
                "infra.local.relay",
                f"{GCS_TOPIC} -> {FINALIZE_FUNCTION}",
                f"--subscription=projects/{s.project}/subscriptions/{RELAY_SUBSCRIPTION}",
                f"--target=http://127.0.0.1:{ports[FINALIZE_FUNCTION]}/",
            )
        if EVENTS_FUNCTION in functions:
            # Waited for: a write made once the stack is up must not precede the listener.
            collection = self.env.get("FIRESTORE_COLLECTION") or "batch_jobs"
            self._python_ready(
                "eventarc-firestore",
                "infra.local.firestore_trigger",
                f"writes of {collection} -> {EVENTS_FUNCTION}",
                f"--project={s.project}",
                f"--collection={collection}",
                f"--target=http://127.0.0.1:{ports[EVENTS_FUNCTION]}/",
                *EVENTARC_RETRY,
            )
        if CALLBACKS_FUNCTION in functions:
            # Eventarc's Pub/Sub trigger with retry: backoff doubling to a minute, for as long
            # as Pub/Sub keeps a message (the function itself gives up after
            # CALLBACK_RETRY_SECONDS and answers 2xx).
            relay = self._python(
                "eventarc-callbacks",
                "infra.local.relay",
                "--events=pubsub",
                f"--subscription=projects/{s.project}/subscriptions/{CALLBACKS_SUBSCRIPTION}",
                f"--topic=projects/{s.project}/topics/{EVENTS_TOPIC}",
                f"--target=http://127.0.0.1:{ports[CALLBACKS_FUNCTION]}/",
                *EVENTARC_RETRY,
            )
            self.servers.append(relay)
            self.endpoints.append(("eventarc-callbacks", f"{EVENTS_TOPIC} -> {CALLBACKS_FUNCTION}"))
        if CLUSTER_EVENTS_FUNCTION in functions:
            self._cluster_events(ports[CLUSTER_EVENTS_FUNCTION])
        if SYNC_FUNCTION in functions:
            scheduler = self._python(
                "cloud-scheduler",
                "infra.local.scheduler",
                f"--target=http://127.0.0.1:{ports[SYNC_FUNCTION]}/",
                f"--interval={s.sync_interval}",
            )
            self.servers.append(scheduler)
            self.endpoints.append(
                ("cloud-scheduler", f"every {s.sync_interval:g} s -> {SYNC_FUNCTION}")
            )

    def _cluster_events(self, port: int) -> None:
        """GKE's event logging and the log sink, and the sink topic's Eventarc trigger (with
        retry, as deploy makes it): a job that fails is reconciled at once. Both waited for:
        an event of a job created once the stack is up must not precede them."""
        s = self.settings
        self._python_ready(
            "eventarc-cluster-events",
            "infra.local.relay",
            f"{CLUSTER_EVENTS_TOPIC} -> {CLUSTER_EVENTS_FUNCTION}",
            "--events=pubsub",
            f"--subscription=projects/{s.project}/subscriptions/{CLUSTER_EVENTS_SUBSCRIPTION}",
            f"--topic=projects/{s.project}/topics/{CLUSTER_EVENTS_TOPIC}",
            f"--target=http://127.0.0.1:{port}/",
            *EVENTARC_RETRY,
        )
        self._python_ready(
            "log-sink",
            "infra.local.eventsink",
            f"the Job controller's and kubelet's events of {s.namespace} -> {CLUSTER_EVENTS_TOPIC}",
            f"--kubeconfig={s.kubeconfig}",
            f"--namespace={s.namespace}",
            f"--project={s.project}",
            f"--topic={CLUSTER_EVENTS_TOPIC}",
        )

    def first_dead(self) -> ServerProcess | None:
        return next((server for server in self.servers if not server.alive()), None)

    def stop(self) -> None:
        """Stop every server in at most STOP_SECONDS: the callers and the functions, then
        the backends; each tier all at once, SIGKILL for what outlives its grace period."""
        started = time.monotonic()
        front = [server for server in self.servers if server.name not in BACKENDS]
        back = [server for server in self.servers if server.name in BACKENDS]
        self._stop_tier(front, FRONT_GRACE)
        spent = time.monotonic() - started
        self._stop_tier(back, max(BACK_MIN_GRACE, STOP_GRACE - spent))
        self.servers.clear()

    @staticmethod
    def _stop_tier(servers: list[ServerProcess], grace: float) -> None:
        for server in stop_servers(servers, grace):
            log.warning(
                "%s did not exit within %.1f s of SIGTERM; killed",
                server.name,
                grace,
                extra={"log": str(server.log_path)},
            )


def print_endpoints(stack: Stack, out: IO[str], seconds: float) -> None:
    s = stack.settings
    width = max(len(name) for name, _ in stack.endpoints)
    print(f"\nLocal cloud up in {seconds:.1f} s (project {s.project}):", file=out)
    for name, endpoint in stack.endpoints:
        print(f"  {name.ljust(width)}  {endpoint}", file=out)
    print(f"\n  status page: http://127.0.0.1:{s.api_port}/ui/", file=out)
    if s.access_control:
        print(
            f"  callers: ktr is {', '.join(s.operators) or 'nobody'} (an operator); "
            "`ktr --as EMAIL` is another, `ktr auth token` prints the token",
            file=out,
        )
    print(f"  logs: {s.log_dir}/", file=out)
    print(f"  in another shell: source {s.env_file}", file=out)
    print("  Ctrl-C stops everything.\n", file=out, flush=True)


def main() -> int:
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    settings = LocalCloudSettings.from_env()
    stop = StopSignal().install()
    try:
        emulators.check_prerequisites()
        with single_instance(settings.state_dir):
            defined = defined_functions(FUNCTIONS_SOURCE)
            functions = [name for name in ["batch_api", *OTHER_FUNCTIONS] if name in defined]
            check_ports_free(settings, functions)
            return _serve(settings, functions, stop)
    except (AlreadyRunningError, emulators.MissingPrerequisiteError) as error:
        print(error, file=sys.stderr)
        return 1


def _serve(settings: LocalCloudSettings, functions: list[str], stop: StopSignal) -> int:
    started = time.monotonic()
    stack = Stack(settings, stop)
    code = 0
    try:
        stack.start(functions)
        print_endpoints(stack, sys.stdout, time.monotonic() - started)
        while not stop.wait(0.5):
            dead = stack.first_dead()
            if dead is not None:
                log.error(
                    "%s exited with code %s; stopping everything",
                    dead.name,
                    dead.popen.returncode,
                    extra={"log": str(dead.log_path), "tail": dead.log_tail(5)},
                )
                code = 1
                break
    except StartCancelledError:
        log.info("stop requested while starting")
    except Exception:
        log.exception("the local cloud could not start")
        code = 1
    finally:
        stopping = time.monotonic()
        stack.stop()
        settings.env_file.unlink(missing_ok=True)
        log.info("local cloud stopped", extra={"seconds": round(time.monotonic() - stopping, 2)})
    return code


if __name__ == "__main__":
    sys.exit(main())
