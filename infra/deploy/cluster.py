"""The cluster side: read the endpoint and CA the functions need, and apply infra/k8s
(namespace, the job pods' service account, Role, RoleBinding) with kubectl."""

from __future__ import annotations

from pathlib import Path
from string import Template

import yaml

from infra.deploy.config import DeployConfig
from infra.deploy.steps import Lookup, Run, Step, WriteFile
from infra.kueue.build import RELEASE as KUEUE_RELEASE
from infra.kueue.install import IMAGE as KUEUE_IMAGE
from infra.kueue.install import MANAGER as KUEUE_MANAGER
from infra.kueue.install import NAMESPACE as KUEUE_NAMESPACE
from shared.model import queues

K8S_DIR = Path(__file__).resolve().parents[1] / "k8s"
MANIFESTS = (
    "namespace.yaml",
    "serviceaccounts.yaml",
    "role.yaml",
    "rolebinding.yaml",
    "queues.yaml",
)


def render_manifests(config: DeployConfig) -> str:
    """infra/k8s's files with this deploy's names, as one multi-document YAML."""
    return render(
        namespace=config.namespace,
        job_ksa=config.job_ksa,
        users=(
            config.email(config.api_account),
            config.email(config.sync_account),
            config.email(config.finalize_account),
        ),
    )


def render(*, namespace: str, job_ksa: str, users: tuple[str, str, str]) -> str:
    """infra/k8s's files for a namespace, the job pods' service account and the three
    users the Role is bound to (the API's, the sync's, the finalize function's): what
    `make deploy` applies to GKE, and the local cloud to its own control plane."""
    api, sync, finalize = users
    values = {
        "NAMESPACE": namespace,
        "JOB_KSA": job_ksa,
        "API_GSA": api,
        "SYNC_GSA": sync,
        "FINALIZE_GSA": finalize,
    }
    documents = [Template((K8S_DIR / name).read_text()).substitute(values) for name in MANIFESTS]
    documents.append(yaml.safe_dump_all(queues.flavors(), sort_keys=False))  # Kueue's
    return "---\n".join(documents)


def _describe(config: DeployConfig, value: str) -> tuple[str, ...]:
    return (
        "gcloud", "container", "clusters", "describe", config.cluster,
        f"--location={config.cluster_location}", f"--project={config.project}",
        f"--format=value({value})",
    )  # fmt: skip


def lookups(config: DeployConfig) -> Step:
    return Step(
        "Read the cluster and the bucket's service agent",
        "The functions reach the cluster's endpoint with its CA and their own Google token. "
        "Nothing needs Workload Identity any more, so it is not checked: job pods hold no "
        "Google identity (a signed URL in, an upload session out) and the functions run "
        "outside the cluster. On GKE Standard it is still what keeps a pod from the node's "
        "service account: without the GKE metadata server on its node pool, any pod can ask "
        "the metadata server for the node's token. Autopilot always has it; on Standard: "
        f"gcloud container clusters update {config.cluster} "
        f"--location={config.cluster_location} --workload-pool={config.project}.svc.id.goog, "
        "then for each node pool: gcloud container node-pools update POOL "
        f"--cluster={config.cluster} --location={config.cluster_location} "
        "--workload-metadata=GKE_METADATA.",
        (
            Lookup("CLUSTER_ENDPOINT", _describe(config, "endpoint")),
            Lookup("CLUSTER_CA", _describe(config, "masterAuth.clusterCaCertificate")),
            Lookup(
                "STORAGE_AGENT",
                ("gcloud", "storage", "service-agent", f"--project={config.project}"),
            ),
        ),
    )


def apply(config: DeployConfig, build: Path) -> Step:
    kubeconfig = build / "kubeconfig"
    manifests = build / "k8s.yaml"
    return Step(
        "Namespace, the job pods' service account, RBAC and Kueue's flavors in the cluster",
        "One Role in the namespace, bound to the three function accounts: Jobs, their pods "
        "(read only: a Job's deletion takes them), pods/log (a finished job's log is saved to "
        "the bucket before its Job is deleted), only list and delete on volume claims "
        "(the sync's sweep of leftovers), the accounts' LocalQueues, and reading Kueue's "
        "workloads and pending workloads; no secrets. One ClusterRole for the accounts' "
        "ClusterQueues. Job pods run as JOB_SERVICE_ACCOUNT, which has no Google identity "
        "and mounts no token. Kueue's two resource flavors, on-demand and spot, select nodes "
        "by GKE's cloud.google.com/gke-provisioning label. Each account's queues follow from "
        "its record: the functions apply them, and the sync compares them each pass. "
        "`kubectl apply` leaves objects that already match unchanged.",
        (
            WriteFile(manifests, render_manifests(config)),
            Run(("kubectl", f"--kubeconfig={kubeconfig}", "apply", "-f", str(manifests))),
        ),
    )  # fmt: skip


def kueue(config: DeployConfig, build: Path) -> Step:
    kubeconfig = build / "kubeconfig"
    manifests = build / "kueue.yaml"
    kubectl = ("kubectl", f"--kubeconfig={kubeconfig}")
    credentials = (
        "env", f"KUBECONFIG={kubeconfig}",
        "gcloud", "container", "clusters", "get-credentials", config.cluster,
        f"--location={config.cluster_location}", f"--project={config.project}",
    )  # fmt: skip
    return Step(
        f"Kueue {KUEUE_RELEASE} in the cluster",
        f"Kueue's manager, a Deployment of {KUEUE_IMAGE} in {KUEUE_NAMESPACE}, with the CRDs, "
        "webhook configurations and ClusterRole that the release's controller-gen generates "
        "from its Go types (Go builds both from the module proxy, as for the local cloud). "
        "Its certificate manager makes the webhooks' certificates; its visibility API "
        "(pending workloads and their positions) is an APIService. The manager watches only "
        "Jobs that name a queue, and shares idle quota by fair sharing. GKE's firewall must "
        "let the control plane reach the nodes on port 9443 (the webhooks) and 8082 (the "
        "visibility API): a private cluster's does not by default. Credentials go to a "
        "kubeconfig of the deploy's own, so yours is left as it is.",
        (
            Run(("python", "-m", "infra.kueue.install", str(manifests))),
            Run(credentials),
            Run((*kubectl, "apply", "--server-side", "-f", str(manifests))),
            Run(
                (
                    *kubectl, f"--namespace={KUEUE_NAMESPACE}", "rollout", "status",
                    f"deployment/{KUEUE_MANAGER}", "--timeout=300s",
                )
            ),
        ),
    )  # fmt: skip
