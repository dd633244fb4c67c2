"""The product on the real control plane: the functions reach the API server as the user
infra/k8s's RoleBinding names (a bearer token, as on GKE a Google token), in a namespace
set up by the deploy's own render(), and the node agent runs the job's one pod (stage-in,
the user's command in the sandbox, stage-out). Only the Role's permissions are used."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest

from infra.local.controlplane.cluster import FUNCTION_USERS
from tests.api.test_lifecycle import saved_log, wait_for_output
from tests.controlplane.test_control_plane import as_json
from tests.fixtures.api import _use, zip_b64
from tests.fixtures.controlplane import JOB_KSA, STAGER_IMAGE
from tests.fixtures.waiting import wait_for


@pytest.fixture
def on_control_plane(
    monkeypatch, store_env, control_plane, node_agent, namespace
) -> Iterator[dict[str, str]]:
    yield from _use(
        monkeypatch,
        {
            **store_env,
            "KUBERNETES_API_URL": control_plane.url,
            "KUBERNETES_API_KEY": control_plane.token(FUNCTION_USERS[0]),
            "KUBERNETES_CA_FILE": str(control_plane.authority.pair.cert),
            "KUBERNETES_NAMESPACE": namespace,
            "STAGER_IMAGE": STAGER_IMAGE,
            "JOB_SERVICE_ACCOUNT": JOB_KSA,
        },
    )


def test_a_job_runs_through_the_real_control_plane(
    on_control_plane, functions_app, control_plane, storage_client, bucket
):
    fn = functions_app
    params = {
        "docker_image": "alpine:3",
        "input_zip": zip_b64({"a.txt": b"alpha"}),
        "command": ["sh", "-c", "cp /input/a.txt /output/b.txt && echo copied"],
    }
    status, body = fn.api("POST", "/batch/", json={"name": "real", "job_parameters": params})
    assert status == 200, body
    job = body["data"]
    assert job["status"] == "running"

    blob = wait_for_output(storage_client, bucket, "real")
    with zipfile.ZipFile(io.BytesIO(blob.download_as_bytes())) as archive:
        assert archive.read("b.txt") == b"alpha"
    event = {"bucket": bucket, "name": blob.name, "metadata": blob.metadata}
    assert fn.finalize(event) == 200
    done = fn.job(job["id"])
    assert done["status"] == "succeeded", done
    assert saved_log(storage_client, bucket, job) == "copied\n"  # through pods/log

    namespace = on_control_plane["KUBERNETES_NAMESPACE"]
    admin = control_plane.admin_kubeconfig

    def cleared() -> bool:
        return not as_json(admin, "get", "jobs,pods", "-n", namespace)["items"]

    wait_for(cleared, what="the job's Job and pod deleted")
