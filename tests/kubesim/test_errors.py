"""Errors are real Status objects, with the codes and wording of a real API server."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.kubesim.helpers import api_error, claim, container, job, pod


def test_not_found_status_shape(batch_v1, namespace):
    status, body = api_error(batch_v1.read_namespaced_job, "x", namespace)
    assert status == 404
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "x" not found',
        "reason": "NotFound",
        "details": {"name": "x", "group": "batch", "kind": "jobs"},
        "code": 404,
    }


def test_core_not_found_has_no_group(core_v1, namespace):
    _, body = api_error(core_v1.read_namespaced_pod, "gone", namespace)
    assert body["message"] == 'pods "gone" not found'
    assert body["details"] == {"name": "gone", "kind": "pods"}
    _, body = api_error(core_v1.delete_namespaced_persistent_volume_claim, "gone", namespace)
    assert body["message"] == 'persistentvolumeclaims "gone" not found'


def test_create_in_missing_namespace(core_v1, batch_v1):
    status, body = api_error(
        core_v1.create_namespaced_secret, "nowhere", {"metadata": {"name": "s"}}
    )
    assert status == 404 and body["message"] == 'namespaces "nowhere" not found'
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}
    status, _ = api_error(batch_v1.create_namespaced_job, "nowhere", job("j"))
    assert status == 404
    # reads in a missing namespace name the object, as on a real server
    _, body = api_error(batch_v1.read_namespaced_job, "j", "nowhere")
    assert body["message"] == 'jobs.batch "j" not found'


def test_already_exists(batch_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("dup", suspend=True))
    status, body = api_error(batch_v1.create_namespaced_job, namespace, job("dup"))
    assert status == 409 and body["reason"] == "AlreadyExists"
    assert body["message"] == 'jobs.batch "dup" already exists'
    assert body["details"] == {"name": "dup", "group": "batch", "kind": "jobs"}


def test_conflict_on_stale_resource_version(core_v1, namespace):
    first = core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "s"}})
    core_v1.patch_namespaced_secret("s", namespace, {"metadata": {"labels": {"a": "b"}}})
    first.metadata.labels = {"c": "d"}
    status, body = api_error(core_v1.replace_namespaced_secret, "s", namespace, first)
    assert status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("Upper", "a lowercase RFC 1123 subdomain must consist of"),
        ("under_score", "a lowercase RFC 1123 subdomain must consist of"),
        ("a" * 254, "must be no more than 253 characters"),
    ],
)
def test_invalid_pod_names(core_v1, namespace, name, detail):
    status, body = api_error(core_v1.create_namespaced_pod, namespace, pod(name))
    assert status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith(f'Pod "{name}" is invalid: metadata.name: Invalid value:')
    assert detail in body["message"]
    assert body["details"]["kind"] == "Pod" and body["details"]["name"] == name
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_job_name_limit_is_63(batch_v1, namespace):
    assert batch_v1.create_namespaced_job(namespace, job("j" * 63, suspend=True))
    status, body = api_error(batch_v1.create_namespaced_job, namespace, job("j" * 64))
    assert status == 422
    assert body["message"].startswith(f'Job.batch "{"j" * 64}" is invalid: metadata.name')
    assert "must be no more than 63 characters" in body["message"]


def test_namespace_name_is_a_dns_label(core_v1):
    status, body = api_error(core_v1.create_namespace, {"metadata": {"name": "a.b"}})
    assert status == 422 and "RFC 1123 label" in body["message"]
    status, body = api_error(core_v1.create_namespace, {"metadata": {"name": "n" * 64}})
    assert status == 422 and "must be no more than 63 characters" in body["message"]


def test_bad_labels(core_v1, namespace):
    bad_value = {"metadata": {"name": "s", "labels": {"k": "bad value"}}}
    status, body = api_error(core_v1.create_namespaced_secret, namespace, bad_value)
    assert status == 422 and body["details"]["causes"][0]["field"] == "metadata.labels"
    assert "a valid label must be an empty string" in body["message"]
    bad_key = {"metadata": {"name": "s", "labels": {"bad key!": "v"}}}
    status, body = api_error(core_v1.create_namespaced_secret, namespace, bad_key)
    assert status == 422 and "name part must consist of alphanumeric" in body["message"]
    long_value = {"metadata": {"name": "s", "labels": {"k": "v" * 64}}}
    assert api_error(core_v1.create_namespaced_secret, namespace, long_value)[0] == 422


def test_missing_name(core_v1, namespace):
    status, body = api_error(core_v1.create_namespaced_secret, namespace, {"metadata": {}})
    assert status == 422
    assert body["message"] == (
        'Secret "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_job_template_requirements(kubesim, batch_v1, namespace):
    no_containers = job("a", pod_spec={"containers": []})
    _, body = api_error(batch_v1.create_namespaced_job, namespace, no_containers)
    assert "spec.template.spec.containers: Required value" in body["message"]
    # The client itself rejects a container without a name, so this one goes by plain HTTP.
    nameless = json.dumps(job("b", {"image": "x"}, {"name": "c"})).encode()
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    status, body = _request(kubesim, "POST", path, nameless)
    assert status == 422
    fields = {c["field"] for c in body["details"]["causes"]}
    assert fields == {
        "spec.template.spec.containers[0].name",
        "spec.template.spec.containers[1].image",
    }
    always = job("c", pod_spec={"restartPolicy": "Always"})
    status, body = api_error(batch_v1.create_namespaced_job, namespace, always)
    assert status == 422
    # validateJobSpec reports Always (a pod's default) as a missing value.
    assert body["message"] == (
        'Job.batch "c" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"'
    )
    sometimes = job("s", pod_spec={"restartPolicy": "Sometimes"})
    status, body = api_error(batch_v1.create_namespaced_job, namespace, sometimes)
    assert status == 422
    assert [c["message"] for c in body["details"]["causes"]] == [
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
        'Unsupported value: "Sometimes": supported values: "OnFailure", "Never"',
    ]
    on_failure = job("d", pod_spec={"restartPolicy": "OnFailure"}, suspend=True)
    assert batch_v1.create_namespaced_job(namespace, on_failure)


def test_pvc_requirements(core_v1, namespace):
    body = claim("c")
    del body["spec"]["accessModes"]
    _, error = api_error(core_v1.create_namespaced_persistent_volume_claim, namespace, body)
    assert (
        "spec.accessModes: Required value: at least 1 access mode is required" in error["message"]
    )
    body = claim("c")
    body["spec"]["resources"] = {}
    _, error = api_error(core_v1.create_namespaced_persistent_volume_claim, namespace, body)
    assert error["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": "spec.resources[storage]",
        }
    ]


def test_immutable_job_template(batch_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("imm", suspend=True))
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}}
    status, body = api_error(batch_v1.patch_namespaced_job, "imm", namespace, patch)
    assert status == 422 and "field is immutable" in body["message"]


def _request(kubesim, method, path, body=b"", content_type="application/json"):
    token = json.loads(kubesim.kubeconfig.read_text())["users"][0]["user"]["token"]
    request = urllib.request.Request(
        kubesim.url + path,
        data=body or None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_malformed_body_is_400(kubesim, namespace):
    status, body = _request(kubesim, "POST", f"/api/v1/namespaces/{namespace}/secrets", b"{nope")
    assert status == 400 and body["reason"] == "BadRequest" and body["kind"] == "Status"
    status, body = _request(kubesim, "POST", f"/api/v1/namespaces/{namespace}/secrets", b"[1]")
    assert status == 400


def test_unsupported_verbs_are_405(kubesim, namespace):
    status, body = _request(kubesim, "PUT", f"/api/v1/namespaces/{namespace}/pods", b"{}")
    assert status == 405 and body["reason"] == "MethodNotAllowed"
    status, _ = _request(kubesim, "POST", f"/api/v1/namespaces/{namespace}/pods/x", b"{}")
    assert status == 405
    status, _ = _request(kubesim, "DELETE", "/api/v1/pods")
    assert status == 405


def test_wrong_token_is_401_and_unknown_path_404(kubesim):
    request = urllib.request.Request(
        kubesim.url + "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401
    status, body = _request(kubesim, "GET", "/api/v1/configmaps")
    assert status == 404 and body["message"] == "the server could not find the requested resource"


def test_namespace_mismatch_is_400(core_v1, namespace):
    body = {"metadata": {"name": "s", "namespace": "other"}}
    status, error = api_error(core_v1.create_namespaced_secret, namespace, body)
    assert status == 400 and "does not match the namespace" in error["message"]


def test_bad_base64_secret_is_400(core_v1, namespace):
    body = {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    assert api_error(core_v1.create_namespaced_secret, namespace, body)[0] == 400


def test_default_namespace_cannot_be_deleted(core_v1):
    status, body = api_error(core_v1.delete_namespace, "default")
    assert status == 403 and body["reason"] == "Forbidden"


def test_container_names_unique(core_v1, namespace):
    status, body = api_error(
        core_v1.create_namespaced_pod, namespace, pod("p", container("x"), container("x"))
    )
    assert status == 422 and "Duplicate value" in body["message"]
