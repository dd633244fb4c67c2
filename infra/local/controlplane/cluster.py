"""The local cloud's Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager
and kube-scheduler of one release (infra/local/controlplane/build.py), on 127.0.0.1 only.

The API server serves with certificates of its own CA (pki.py) and authorizes with Node
and RBAC, with the release's default admission plugins (Pod Security among them) and
NodeRestriction. The controller manager runs the release's default controllers, each with
its own service account's credentials, as kubeadm sets it up; the scheduler is the
release's. `admin.kubeconfig` in the state folder is a cluster administrator's (the group
system:masters), and `kubeconfig_for` writes one for any other user; the functions' users
(FUNCTION_USERS) authenticate with bearer tokens (`token`), as the product's
KUBERNETES_API_KEY sends one.

    with start(state_dir, log_dir) as plane:
        plane.admin_kubeconfig ...
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from infra.deploy.cluster import render
from infra.kueue.install import MANAGER_USER as KUEUE_MANAGER
from infra.local.controlplane import build, kubectl, kueue
from infra.local.controlplane.pki import Authority, KeyPair, service_account_keys
from infra.local.procs import (
    ServerProcess,
    StopSignal,
    free_port,
    spawn,
    stop_servers,
    wait_until_ready,
)

SERVICE_IP_RANGE = "10.0.0.0/24"
# The functions' users, as infra/k8s/rolebinding.yaml binds them: on GKE the emails of their
# Google service accounts (a Google token each); here each has a bearer token of the API
# server's token file, which the functions send as KUBERNETES_API_KEY.
FUNCTION_USERS = (
    "task-runner-api@local-cloud.iam",
    "task-runner-sync@local-cloud.iam",
    "task-runner-finalize@local-cloud.iam",
)
# The job pods' Kubernetes service account in the local cloud's namespaces, as infra/k8s/
# makes it (JOB_SERVICE_ACCOUNT; make deploy's default too).
JOB_KSA = "task-runner-job"
FRONT_PROXY_CLIENT = "front-proxy-client"
ISSUER = "https://kubernetes.default.svc.cluster.local"
READY_SECONDS = 120.0
WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]
AUDIT_WRITES = {  # the audit policy of `audit`: every write, at the Metadata level
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "verbs": WRITE_VERBS}, {"level": "None"}],
}  # the first start of the API server migrates etcd's storage


@dataclass
class ControlPlane:
    folder: Path
    url: str  # https://127.0.0.1:PORT
    authority: Authority
    admin_kubeconfig: Path
    servers: list[ServerProcess] = field(default_factory=list)
    audit_log: Path | None = None  # with `audit`: one JSON line per write request
    stop: StopSignal | None = None  # set: a start in progress gives up (StartCancelledError)

    def token(self, user: str) -> str:
        """The bearer token of one of FUNCTION_USERS."""
        return _tokens(self.folder)[user]

    def kubeconfig_for(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig in the state folder that authenticates as `user` in `groups`."""
        pair = self.authority.issue(name, user, groups)
        return write_kubeconfig(self.folder / f"{name}.kubeconfig", self.url, self.authority, pair)

    def token_kubeconfig(self, path: Path, user: str, server: str | None = None) -> Path:
        """A kubeconfig at `path` for one of FUNCTION_USERS (its bearer token), reaching the
        API server at `server` (a proxy in front of it) or its own URL."""
        return _write_config(
            path,
            server or self.url,
            self.authority,
            user,
            {"token": self.token(user)},
        )

    def wait(self, process: ServerProcess, ready: Callable[[], bool]) -> None:
        wait_until_ready(process, ready, READY_SECONDS, stop=self.stop)

    def shut_down(self) -> None:
        """Stop every component, the newest first (etcd last)."""
        stop_servers(list(reversed(self.servers)), 10.0)
        self.servers.clear()


def apply_namespace(plane: ControlPlane, namespace: str, job_ksa: str) -> None:
    """infra/k8s/ for `namespace`, the job pods' service account `job_ksa` and the
    functions' users, rendered by the deploy's own code and applied as `make deploy` applies
    it (kubectl apply --server-side), as the administrator."""
    manifests = render(namespace=namespace, job_ksa=job_ksa, users=FUNCTION_USERS)
    kubectl.apply(plane.admin_kubeconfig, manifests, "infra/k8s/")


def write_kubeconfig(path: Path, url: str, authority: Authority, client: KeyPair) -> Path:
    """A kubeconfig for the API server at `url`, authenticating with `client`'s
    certificate."""
    credentials = {"client-certificate": str(client.cert), "client-key": str(client.key)}
    return _write_config(path, url, authority, "user", credentials)


def _write_config(
    path: Path, url: str, authority: Authority, user: str, credentials: dict[str, str]
) -> Path:
    """A kubeconfig (JSON, which kubectl and the client libraries read as YAML), private."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": url, "certificate-authority": str(authority.pair.cert)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _tokens(folder: Path) -> dict[str, str]:
    """user -> bearer token for FUNCTION_USERS, from the token file (made once, random)."""
    path = folder / "tokens.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"{secrets.token_urlsafe(32)},{user},{user}" for user in FUNCTION_USERS]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    tokens = {}
    for line in path.read_text().splitlines():
        token, user, _ = line.split(",", 2)
        tokens[user] = token
    return tokens


def _token_file(folder: Path) -> Path:
    _tokens(folder)
    return folder / "tokens.csv"


def _https_ok(url: str, context: ssl.SSLContext) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as answer:
                return int(answer.status) == 200
        except OSError:
            return False

    return check


def _unverified() -> ssl.SSLContext:
    """For the controller manager's and scheduler's health ports: they serve with
    certificates they make themselves, on loopback."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def start(folder: Path, log_dir: Path, *, audit: bool = False) -> Iterator[ControlPlane]:
    """Start the control plane with its state in `folder`; stopped on leaving."""
    plane = launch(folder, log_dir, audit=audit)
    try:
        yield plane
    finally:
        plane.shut_down()


def launch(
    folder: Path,
    log_dir: Path,
    *,
    audit: bool = False,
    port: int | None = None,
    stop: StopSignal | None = None,
) -> ControlPlane:
    """Start etcd, the API server (on `port`, else a free one), the controller manager and
    the scheduler, each once it is needed and the one before answers; stopped by
    ControlPlane.shut_down, or at once when `stop` is set while starting. With `audit`,
    the API server logs every write request (who, what verb, which object) to
    ControlPlane.audit_log: the benchmarks count a job's writes there."""
    binaries = build.binaries_dir()
    pki = folder / "pki"
    authority = Authority(pki)
    port = port or free_port()
    url = f"https://127.0.0.1:{port}"
    admin = authority.issue("admin", "local-admin", ("system:masters",))
    plane = ControlPlane(
        folder=folder,
        url=url,
        authority=authority,
        admin_kubeconfig=write_kubeconfig(folder / "admin.kubeconfig", url, authority, admin),
        audit_log=folder / "audit.log" if audit else None,
        stop=stop,
    )
    try:
        etcd_url = _start_etcd(plane, binaries, log_dir)
        _start_apiserver(plane, binaries, log_dir, port, etcd_url)
        _start_controllers(plane, binaries, log_dir)
        _start_kueue(plane, log_dir)
    except BaseException:
        plane.shut_down()
        raise
    return plane


def _start_etcd(plane: ControlPlane, binaries: Path, log_dir: Path) -> str:
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    argv = [
        str(binaries / "etcd"),
        "--name=local",
        f"--data-dir={plane.folder / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=local={peer_url}",
        "--unsafe-no-fsync",  # a local cloud's state: speed over durability
        "--log-level=warn",
    ]
    etcd = spawn("etcd", argv, log_dir=log_dir)
    plane.servers.append(etcd)
    plane.wait(etcd, _http_ok(f"{client_url}/health"))
    return client_url


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status) == 200
        except OSError:
            return False

    return check


def _start_apiserver(
    plane: ControlPlane, binaries: Path, log_dir: Path, port: int, etcd_url: str
) -> None:
    authority = plane.authority
    serving = authority.issue("apiserver", "kube-apiserver", server=True)
    to_kubelets = authority.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client")
    accounts = service_account_keys(plane.folder / "pki")
    argv = [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",  # a machine without a default route needs it
        f"--secure-port={port}",
        f"--cert-dir={plane.folder / 'apiserver'}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        f"--client-ca-file={authority.pair.cert}",
        f"--token-auth-file={_token_file(plane.folder)}",
        f"--service-account-issuer={ISSUER}",
        f"--service-account-key-file={accounts.cert}",
        f"--service-account-signing-key-file={accounts.key}",
        f"--service-cluster-ip-range={SERVICE_IP_RANGE}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",  # beside the release's defaults
        f"--kubelet-client-certificate={to_kubelets.cert}",
        f"--kubelet-client-key={to_kubelets.key}",
        f"--kubelet-certificate-authority={authority.pair.cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
        *_front_proxy_flags(plane.folder / "pki"),
    ]
    if plane.audit_log is not None:
        policy = plane.folder / "audit-policy.json"
        policy.write_text(json.dumps(AUDIT_WRITES))
        argv += [f"--audit-policy-file={policy}", f"--audit-log-path={plane.audit_log}"]
    apiserver = spawn("kube-apiserver", argv, log_dir=log_dir)
    plane.servers.append(apiserver)
    admin = authority.issue("admin", "local-admin", ("system:masters",))
    context = ssl.create_default_context(cafile=str(authority.pair.cert))
    context.load_cert_chain(str(admin.cert), str(admin.key))
    plane.wait(apiserver, _https_ok(f"{plane.url}/readyz", context))


def _front_proxy_flags(pki: Path) -> list[str]:
    """The aggregation layer's: the API server proxies an aggregated API (Kueue's
    visibility API) with a client certificate of its own CA, naming the user in headers."""
    front = Authority(pki / "front-proxy")
    client = front.issue("front-proxy-client", FRONT_PROXY_CLIENT)
    return [
        f"--requestheader-client-ca-file={front.pair.cert}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={client.cert}",
        f"--proxy-client-key-file={client.key}",
    ]


def _start_kueue(plane: ControlPlane, log_dir: Path) -> None:
    """Kueue's manager, as the service account its install binds its role to."""
    user = plane.kubeconfig_for("kueue", KUEUE_MANAGER, kueue.MANAGER_GROUPS)
    process, readyz = kueue.start(plane.admin_kubeconfig, user, plane.folder / "kueue", log_dir)
    plane.servers.append(process)
    plane.wait(process, _http_ok(readyz))


def _start_controllers(plane: ControlPlane, binaries: Path, log_dir: Path) -> None:
    authority = plane.authority
    accounts = service_account_keys(plane.folder / "pki")
    manager = plane.kubeconfig_for("controller-manager", "system:kube-controller-manager")
    scheduler = plane.kubeconfig_for("scheduler", "system:kube-scheduler")
    manager_port, scheduler_port = free_port(), free_port()
    delegated = ("--authentication-kubeconfig", "--authorization-kubeconfig")
    components = [
        (
            "kube-controller-manager",
            manager_port,
            [
                str(binaries / "kube-controller-manager"),
                f"--kubeconfig={manager}",
                *(f"{flag}={manager}" for flag in delegated),
                "--bind-address=127.0.0.1",
                f"--secure-port={manager_port}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={accounts.key}",
                f"--root-ca-file={authority.pair.cert}",
                f"--cluster-signing-cert-file={authority.pair.cert}",
                f"--cluster-signing-key-file={authority.pair.key}",
            ],
        ),
        (
            "kube-scheduler",
            scheduler_port,
            [
                str(binaries / "kube-scheduler"),
                f"--kubeconfig={scheduler}",
                *(f"{flag}={scheduler}" for flag in delegated),
                "--bind-address=127.0.0.1",
                f"--secure-port={scheduler_port}",
                "--leader-elect=false",
            ],
        ),
    ]
    started = []
    for name, health_port, argv in components:
        process = spawn(name, argv, log_dir=log_dir)
        plane.servers.append(process)
        started.append((process, f"https://127.0.0.1:{health_port}/healthz"))
    for process, health in started:
        plane.wait(process, _https_ok(health, _unverified()))
