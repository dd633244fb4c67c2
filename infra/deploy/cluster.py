"""The cluster side: read the endpoint and CA the functions need, check Workload Identity,
and apply infra/k8s (namespace, service accounts, Role, RoleBinding) with kubectl."""

from __future__ import annotations

from pathlib import Path
from string import Template

from infra.deploy.config import DeployConfig
from infra.deploy.steps import Lookup, Run, Step, WriteFile

K8S_DIR = Path(__file__).resolve().parents[1] / "k8s"
MANIFESTS = ("namespace.yaml", "serviceaccounts.yaml", "role.yaml", "rolebinding.yaml")


def render_manifests(config: DeployConfig) -> str:
    """infra/k8s's files with this deploy's names, as one multi-document YAML."""
    values = {
        "NAMESPACE": config.namespace,
        "STAGER_KSA": config.stager_ksa,
        "JOB_KSA": config.job_ksa,
        "STAGER_GSA": config.email(config.stager_account),
        "API_GSA": config.email(config.api_account),
        "SYNC_GSA": config.email(config.sync_account),
        "FINALIZE_GSA": config.email(config.finalize_account),
    }
    documents = [Template((K8S_DIR / name).read_text()).substitute(values) for name in MANIFESTS]
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
        "The functions reach the cluster's endpoint with its CA and a Google token; the "
        "stager pods need Workload Identity, which this deploy checks but does not turn on.",
        (
            Lookup("CLUSTER_ENDPOINT", _describe(config, "endpoint")),
            Lookup("CLUSTER_CA", _describe(config, "masterAuth.clusterCaCertificate")),
            Lookup(
                "WORKLOAD_POOL",
                _describe(config, "workloadIdentityConfig.workloadPool"),
                expect=config.workload_pool,
                hint=(
                    "turn on Workload Identity: gcloud container clusters update "
                    f"{config.cluster} --location={config.cluster_location} "
                    f"--workload-pool={config.workload_pool}"
                ),
            ),
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
        "Namespace, service accounts and RBAC in the cluster",
        "Credentials go to a kubeconfig of the deploy's own, so yours is left as it is. "
        "`kubectl apply` leaves objects that already match unchanged.",
        (
            WriteFile(manifests, render_manifests(config)),
            Run(
                (
                    "env", f"KUBECONFIG={kubeconfig}",
                    "gcloud", "container", "clusters", "get-credentials", config.cluster,
                    f"--location={config.cluster_location}", f"--project={config.project}",
                )
            ),
            Run(("kubectl", f"--kubeconfig={kubeconfig}", "apply", "-f", str(manifests))),
        ),
    )  # fmt: skip
