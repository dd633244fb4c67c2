"""kubectl works against kubesim for reading and deleting (its create/apply send protobuf,
which kubesim does not decode)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.kubesim.helpers import claim, container, is_gone, job, job_pods, raw, wait_for

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")


def kubectl(kubesim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubesim.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_kubectl_get_and_delete(kubesim, batch_v1, core_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("kj", container(KUBESIM_RUN_SECONDS=1000)))
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("kc"))
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "ks"}})
    pod_name = wait_for(lambda: job_pods(core_v1, namespace, "kj"))[0]["metadata"]["name"]
    listed = kubectl(kubesim, "get", "pods,jobs,pvc,secrets", "-n", namespace, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == {
        f"pod/{pod_name}",
        "job.batch/kj",
        "persistentvolumeclaim/kc",
        "secret/ks",
    }
    table = kubectl(kubesim, "get", "jobs", "-n", namespace)
    assert table.returncode == 0 and "kj" in table.stdout
    deleted = kubectl(kubesim, "delete", "job", "kj", "-n", namespace)
    assert deleted.returncode == 0, deleted.stderr
    assert 'job.batch "kj" deleted' in deleted.stdout
    assert is_gone(batch_v1.read_namespaced_job, "kj", namespace)
    # kubectl asks for Background propagation: the pod goes too
    wait_for(lambda: not raw(core_v1.list_namespaced_pod, namespace)["items"])


def test_kubectl_logs(kubesim, core_v1, namespace):
    from tests.kubesim.helpers import pod, pod_phase

    core_v1.create_namespaced_pod(namespace, pod("lg", container(KUBESIM_LOG="from kubesim")))
    wait_for(pod_phase(core_v1, namespace, "lg", "Running", "Succeeded"))
    logs = kubectl(kubesim, "logs", "lg", "-n", namespace)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "from kubesim\n"
