"""Client mistakes get the envelope with a 4xx, never an HTML page or a 5xx."""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile

import pytest

from tests.api.conftest import zip_b64


def post(fn, body, **kwargs):
    return fn.api("POST", "/batch/", **({"json": body} if body is not None else {}), **kwargs)


def test_missing_image(fn_store):
    status, body = post(fn_store, {"job_parameters": {}})
    assert status == 400
    assert body == {
        "data": {"job_parameters": {"docker_image": "Field is required"}},
        "error": "InvalidParameters",
        "msg": "",
        "result": False,
    }


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'{"job_parameters": {"docker_image": "a"}}', "text/plain"),
    ],
    ids=["malformed", "deep", "binary", "content-type"],
)
def test_unreadable_bodies(fn_store, data, content_type):
    status, body = fn_store.api("POST", "/batch/", data=data, content_type=content_type)
    assert status == 400
    assert body["error"] == "InvalidParameters"
    assert body["result"] is False


def test_oversized_body(fn_store, monkeypatch):
    monkeypatch.setenv("MAX_REQUEST_BYTES", "2048")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    status, body = post(fn_store, {"job_parameters": {"docker_image": "a", "x": "y" * 5000}})
    assert status == 413
    assert body["error"] == "PayloadTooLarge"


@pytest.mark.parametrize(
    ("input_zip", "expected"),
    [
        ("%%% not base64", "Not valid base64"),
        (base64.b64encode(b"hello").decode(), "Not an acceptable zip"),
    ],
)
def test_bad_input_zip_is_refused_and_never_echoed(fn_store, input_zip, expected):
    status, body = post(fn_store, {"job_parameters": {"docker_image": "a", "input_zip": input_zip}})
    assert status == 400
    message = body["data"]["job_parameters"]["input_zip"]
    assert message.startswith(expected)
    assert input_zip not in json.dumps(body)


def test_zip_slip_is_refused(fn_store):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../etc/evil", b"x")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    status, body = post(fn_store, {"job_parameters": {"docker_image": "a", "input_zip": encoded}})
    assert status == 400
    assert "input_zip" in body["data"]["job_parameters"]


def test_oversized_input(fn_store, monkeypatch):
    monkeypatch.setenv("MAX_INPUT_BYTES", "100")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    big = zip_b64({"f": bytes(range(256)) * 4})
    status, body = post(fn_store, {"job_parameters": {"docker_image": "a", "input_zip": big}})
    assert status == 400
    assert "Larger than 100 bytes" in body["data"]["job_parameters"]["input_zip"]


@pytest.mark.parametrize(
    "job_id", [str(uuid.uuid4()), uuid.uuid4().hex, "not-a-uuid", "x" * 2000, "%00", "a%0Ab"]
)
def test_unknown_or_malformed_ids_are_404(fn_store, job_id):
    for method in ("GET", "DELETE"):
        status, body = fn_store.api(method, f"/batch/{job_id}")
        assert status == 404
        assert body["error"] == "DoesNotExist"
        assert body["result"] is False


def test_unknown_status_filter(fn_store):
    status, body = fn_store.api("GET", "/batch/?status=finished")
    assert status == 400
    assert "status" in body["data"]


def test_list_defaults_to_running_and_is_empty(fn_store):
    status, body = fn_store.api("GET", "/batch/")
    empty = {"data": [], "error": "", "msg": "", "result": True, "next_page_token": ""}
    assert (status, body) == (200, empty)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/", 404),
        ("GET", "/other", 404),
        ("PUT", "/batch/", 405),
        ("PATCH", "/batch/x", 405),
    ],
)
def test_unknown_routes_answer_in_the_envelope(fn_store, method, path, code):
    status, body = fn_store.api(method, path)
    assert status == code
    assert body["result"] is False


def test_unicode_everywhere_is_a_clean_400(fn_store):
    status, body = post(
        fn_store,
        {"name": "jöb", "account_id": "ü" * 10, "job_parameters": {"docker_image": "ïmage"}},
    )
    assert status == 400
    assert set(body["data"]) == {"name", "job_parameters"}
