"""Kueue's install, as `make deploy` applies it to GKE and the local cloud to its own
cluster: the same generated CRDs, webhooks and role; only where the manager runs differs."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kueue import build, install


@pytest.fixture(scope="module")
def manifests() -> Path:
    return build.binaries_dir()


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def test_gke_runs_the_release_image_behind_cluster_services(manifests):
    objects = install.render(manifests, None)
    (deployment,) = by_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.k8s.io/kueue/kueue:{build.RELEASE}"
    for service in by_kind(objects, "Service"):
        assert "type" not in service["spec"]  # ClusterIP, to the manager's pod
    (secret,) = by_kind(objects, "Secret")
    assert "data" not in secret  # its certificate manager fills it


def test_the_local_cloud_reaches_its_manager_on_loopback(manifests, tmp_path):
    local = install.Endpoints(1001, 1002, 1003, tmp_path, {"tls.crt": b"PEM"})
    objects = install.render(manifests, local)
    assert not by_kind(objects, "Deployment")
    for service in by_kind(objects, "Service"):
        assert service["spec"] == {"type": "ExternalName", "externalName": "localhost"}
    for configuration in by_kind(objects, "MutatingWebhookConfiguration"):
        for hook in configuration["webhooks"]:
            assert hook["clientConfig"]["service"]["port"] == 1001
    (api,) = by_kind(objects, "APIService")
    assert api["spec"]["service"]["port"] == 1002
    config = install.configuration(local)
    assert config["webhook"]["host"] == "127.0.0.1"
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:1003"
    assert config["visibilityServer"]["bindAddress"] == "127.0.0.1"


@pytest.mark.parametrize("local", [False, True])
def test_both_install_the_same_generated_objects(manifests, tmp_path, local):
    endpoints = install.Endpoints(1001, 1002, 1003, tmp_path) if local else None
    objects = install.render(manifests, endpoints)
    crds = {o["metadata"]["name"]: o for o in by_kind(objects, "CustomResourceDefinition")}
    assert len(crds) == len(list((manifests / build.CRDS).glob("*.yaml")))
    converted = {n.split(".")[0] for n, c in crds.items() if "conversion" in c["spec"]}
    assert converted == set(install.CONVERTED)
    names = {o["metadata"]["name"] for o in objects if "Webhook" in o["kind"]}
    assert names == {
        "kueue-mutating-webhook-configuration",
        "kueue-validating-webhook-configuration",
    }
    for thing in objects:
        assert thing["metadata"].get("namespace") in (None, install.NAMESPACE, "kube-system")
    config = install.configuration(endpoints)
    assert config["manageJobsWithoutQueueName"] is False
    assert config["fairSharing"] == install.FAIR_SHARING


def test_go_mod_pins_the_release_and_its_controller_tools():
    go_mod = (build.HERE / "go.mod").read_text()
    assert f"sigs.k8s.io/kueue {build.RELEASE}" in go_mod
    assert f"sigs.k8s.io/controller-tools {build.CONTROLLER_TOOLS}" in go_mod
