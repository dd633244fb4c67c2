"""The objects that install Kueue on a cluster, from the manifests controller-gen generated
(infra/kueue/build.py): its CRDs (five of them convert between v1beta1 and v1beta2 through
the manager's webhook), its webhook configurations, its ClusterRole bound to the manager's
service account with the bindings its visibility API needs, the services the API server
reaches the manager through, the visibility API's APIService, and the manager's
configuration.

Where the manager runs is the one difference between the clouds:
- on GKE (`in_cluster`), a Deployment of Kueue's image, behind ClusterIP services, with
  leader election; its certificate manager makes the webhooks' certificates.
- in the local cloud (`Endpoints`), a process on loopback: the services are ExternalName
  services naming `localhost` at the manager's ports, which the API server resolves as it
  resolves any service; the certificates are made before it starts
  (infra/local/controlplane/kueue.py).
"""

from __future__ import annotations

import base64
import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.kueue import build
from infra.kueue.build import CRDS, RBAC, RELEASE, WEBHOOKS

NAMESPACE = "kueue-system"
PREFIX = "kueue-"  # of every object's name, as Kueue's own install names them
MANAGER = "kueue-controller-manager"  # its service account and Deployment
MANAGER_USER = f"system:serviceaccount:{NAMESPACE}:{MANAGER}"
WEBHOOK_SERVICE = "kueue-webhook-service"
WEBHOOK_SECRET = "kueue-webhook-server-cert"
VISIBILITY_SERVICE = "kueue-visibility-server"
CONFIG_MAP = "kueue-manager-config"
CONFIG_FILE = "controller_manager_config.yaml"
IMAGE = f"registry.k8s.io/kueue/kueue:{RELEASE}"
# The CRDs with two served versions, converted by the manager (Kueue's crd/patches).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
WEBHOOK_PORT, VISIBILITY_PORT, HEALTH_PORT = 9443, 8082, 8081  # in the manager's pod
CERT_DIR = "/tmp/k8s-webhook-server/serving-certs"  # Kueue's default
FAIR_SHARING = {"preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]}


@dataclass(frozen=True)
class Endpoints:
    """Where the local cloud's manager listens: loopback ports, its certificates' folder."""

    webhook_port: int
    visibility_port: int
    health_port: int
    cert_dir: Path  # where the manager reads them, as a pod reads its mounted secret
    certificates: Mapping[str, bytes] = field(default_factory=dict)  # the secret's data


def configuration(local: Endpoints | None) -> dict[str, Any]:
    """The manager's Configuration (config.kueue.x-k8s.io/v1beta2): Jobs only, those with a
    queue name only, fair sharing on, certificates by its own certificate manager."""
    config: dict[str, Any] = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "fairSharing": FAIR_SHARING,
        # Quotas are of CPU, memory and pods: a pod's scratch space (its volumes' size
        # limit) is left to the nodes.
        "resources": {"excludeResourcePrefixes": ["ephemeral-storage"]},
        "internalCertManagement": {
            "enable": True,
            "webhookServiceName": WEBHOOK_SERVICE,
            "webhookSecretName": WEBHOOK_SECRET,
        },
    }
    if local is None:
        config |= {
            "health": {"healthProbeBindAddress": f":{HEALTH_PORT}"},
            "metrics": {"bindAddress": ":8443"},
            "webhook": {"port": WEBHOOK_PORT},
            "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        }
    else:
        config |= {
            "health": {"healthProbeBindAddress": f"127.0.0.1:{local.health_port}"},
            "metrics": {"bindAddress": "0"},  # none: nothing scrapes it locally
            "webhook": {"host": "127.0.0.1", "port": local.webhook_port},
            "leaderElection": {"leaderElect": False},
            "visibilityServer": {"bindAddress": "127.0.0.1"},
        }
        config["webhook"]["certDir"] = str(local.cert_dir)
    return config


def render(manifests: Path, local: Endpoints | None) -> list[dict[str, Any]]:
    """Every object of the install, in the order to apply them; `local` None: GKE's."""
    webhook_port = local.webhook_port if local else 443
    visibility_port = local.visibility_port if local else 443
    objects: list[dict[str, Any]] = [_namespace()]
    objects += [_crd(path, webhook_port) for path in sorted((manifests / CRDS).glob("*.yaml"))]
    objects += _rbac(manifests / RBAC / "role.yaml", leader_election=local is None)
    objects += _webhooks(manifests / WEBHOOKS / "manifests.yaml", webhook_port)
    objects.append(_secret(local.certificates if local else {}))
    objects += _services(local)
    objects.append(_api_service(visibility_port))
    if local is None:
        objects += _manager()
    return objects


def to_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def _meta(name: str, namespace: str | None = NAMESPACE) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "kueue"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE, None)}


def _service_ref(path: str, port: int) -> dict[str, Any]:
    service = {"name": WEBHOOK_SERVICE, "namespace": NAMESPACE, "path": path, "port": port}
    return {"service": service}


def _crd(path: Path, webhook_port: int) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    if crd["spec"]["names"]["plural"] in CONVERTED:
        crd["spec"]["conversion"] = {
            "strategy": "Webhook",
            "webhook": {
                "clientConfig": _service_ref("/convert", webhook_port),
                "conversionReviewVersions": ["v1"],
            },
        }
    return crd


def _webhooks(path: Path, port: int) -> list[dict[str, Any]]:
    """The two configurations, named as the certificate manager looks for them."""
    configurations = []
    for document in yaml.safe_load_all(path.read_text()):
        configuration = copy.deepcopy(document)
        configuration["metadata"]["name"] = PREFIX + document["metadata"]["name"]
        for hook in configuration["webhooks"]:
            hook["clientConfig"] = _service_ref(hook["clientConfig"]["service"]["path"], port)
        configurations.append(configuration)
    return configurations


def _binding(
    kind: str, name: str, role_kind: str, role: str, namespace: str | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": MANAGER, "namespace": NAMESPACE}],
    }


def _rbac(role_path: Path, *, leader_election: bool) -> list[dict[str, Any]]:
    """The manager's identity and what it may do: the generated ClusterRole, and what an
    aggregated API server needs (delegated authentication and authorization)."""
    role: dict[str, Any] = yaml.safe_load(role_path.read_text())
    role["metadata"] = _meta(PREFIX + role["metadata"]["name"], None)
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(MANAGER)},
        role,
        _binding("ClusterRoleBinding", "kueue-manager-rolebinding", "ClusterRole", role_name(role)),
        _binding(
            "ClusterRoleBinding", "kueue-visibility-server-auth-delegator",
            "ClusterRole", "system:auth-delegator",
        ),
        _binding(
            "RoleBinding", "kueue-visibility-server-auth-reader",
            "Role", "extension-apiserver-authentication-reader", "kube-system",
        ),
    ]  # fmt: skip
    objects += _namespaced_role("manager-secrets", SECRETS)
    if leader_election:
        objects += _namespaced_role("leader-election", LEADER_ELECTION)
    return objects


def role_name(role: dict[str, Any]) -> str:
    return str(role["metadata"]["name"])


def _namespaced_role(name: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Role in Kueue's namespace, bound to the manager (Kueue's hand-written ones)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(f"kueue-{name}-role"),
        "rules": rules,
    }
    binding = _binding("RoleBinding", f"kueue-{name}-rolebinding", "Role", f"kueue-{name}-role")
    return [role, binding | {"metadata": _meta(f"kueue-{name}-rolebinding")}]


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]
# Its certificate manager's secret, and (on GKE) leader election.
SECRETS = [_rule("", ["secrets"], ["get", "list", "update", "watch"])]
LEADER_ELECTION = [
    _rule("", ["configmaps"], ALL_VERBS),
    _rule("coordination.k8s.io", ["leases"], ALL_VERBS),
    _rule("", ["events"], ["create", "patch"]),
]


def _secret(data: Mapping[str, bytes]) -> dict[str, Any]:
    """The certificate manager's secret: it fills an empty one (GKE), and keeps one whose
    certificates are valid for the webhook service (the local cloud's)."""
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(WEBHOOK_SECRET),
    }
    if data:
        secret["data"] = {name: base64.b64encode(value).decode() for name, value in data.items()}
    return secret


def _services(local: Endpoints | None) -> list[dict[str, Any]]:
    """The webhook's and the visibility API's: to the manager's pod on GKE, to localhost in
    the local cloud (an ExternalName service: the port is the caller's, the webhook
    configuration's or the APIService's)."""
    services = []
    for name, target in ((WEBHOOK_SERVICE, WEBHOOK_PORT), (VISIBILITY_SERVICE, VISIBILITY_PORT)):
        if local is None:
            spec: dict[str, Any] = {
                "selector": {"control-plane": "controller-manager"},
                "ports": [{"port": 443, "protocol": "TCP", "targetPort": target}],
            }
        else:
            spec = {"type": "ExternalName", "externalName": "localhost"}
        services.append(
            {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name), "spec": spec}
        )
    return services


def _api_service(port: int) -> dict[str, Any]:
    """Kueue's visibility API (pending workloads, their positions) served by the manager
    through the API server's aggregation layer; Kueue's own install skips TLS
    verification too: the visibility server's certificate is self-signed."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": _meta("v1beta2.visibility.kueue.x-k8s.io", None),
        "spec": {
            "group": "visibility.kueue.x-k8s.io",
            "version": "v1beta2",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "insecureSkipTLSVerify": True,
            "service": {"name": VISIBILITY_SERVICE, "namespace": NAMESPACE, "port": port},
        },
    }


def _manager() -> list[dict[str, Any]]:
    """GKE's manager: Kueue's image of the same release, its configuration mounted."""
    config = {CONFIG_FILE: yaml.safe_dump(configuration(None))}
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(CONFIG_MAP),
        "data": config,
    }
    labels = {"control-plane": "controller-manager", "app.kubernetes.io/name": "kueue"}
    container = {
        "name": "manager",
        "image": IMAGE,
        "args": [f"--config=/{CONFIG_FILE}", "--zap-log-level=2"],
        "ports": [
            {"containerPort": WEBHOOK_PORT, "name": "webhook-server"},
            {"containerPort": VISIBILITY_PORT, "name": "visibility"},
        ],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": HEALTH_PORT}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT}},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "cert", "mountPath": CERT_DIR, "readOnly": True},
            {"name": "config", "mountPath": f"/{CONFIG_FILE}", "subPath": CONFIG_FILE},
            {"name": "visibility", "mountPath": "/visibility"},
        ],
    }  # fmt: skip
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(MANAGER),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": MANAGER,
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [container],
                    "volumes": [
                        {"name": "cert", "secret": {"secretName": WEBHOOK_SECRET}},
                        {"name": "config", "configMap": {"name": CONFIG_MAP}},
                        {"name": "visibility", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    return [config_map, deployment]


def main() -> int:
    """`python -m infra.kueue.install FILE`: GKE's install, as YAML, into FILE."""
    if len(sys.argv) != 2:
        print("usage: python -m infra.kueue.install FILE", file=sys.stderr)
        return 2
    try:
        manifests = build.binaries_dir()
    except build.BuildError as error:
        print(error, file=sys.stderr)
        return 1
    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_yaml(render(manifests, None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
