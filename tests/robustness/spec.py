"""functions/openapi.yaml for the tests: checks that an answer of `batch_api` is one the
document describes (status, content type, headers, schema) and is in the envelope."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[2] / "functions" / "openapi.yaml"
ENVELOPE = {"data", "error", "msg", "result"}
JSON = "application/json"
LIST_ENVELOPE = ENVELOPE | {"next_page_token"}  # a list's answer: the token of the next page
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@functools.cache
def document() -> dict[str, Any]:
    import yaml

    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


@functools.cache
def _schema() -> Any:
    import schemathesis

    return schemathesis.openapi.from_path(SPEC_PATH)


# The status page's paths: answered in HTML, JavaScript or CSS, not in the envelope.
PAGE_PATHS = ("/ui", "/ui/", "/ui/app.js", "/ui/style.css")


def template(path: str) -> str | None:
    """The spec's path that `batch_api` routes `path` to, if any."""
    if path.split("?", 1)[0] in PAGE_PATHS:
        return path.split("?", 1)[0]
    parts = [part for part in path.split("?", 1)[0].split("/") if part]
    if parts == ["batch"]:
        return "/batch/"
    if parts == ["healthcheck"]:
        return "/healthcheck"
    if len(parts) == 2 and parts[0] == "batch":
        return "/batch/{id}"
    if parts == ["accounts"]:
        return "/accounts/"
    if len(parts) == 2 and parts[0] == "accounts":
        return "/accounts/{account_id}"
    if len(parts) == 4 and parts[0] == "accounts" and parts[2] == "members":
        return "/accounts/{account_id}/members/{email}"
    return None


def documented_methods(path_template: str) -> set[str]:
    return {m.upper() for m in document()["paths"][path_template] if m in HTTP_METHODS}


@functools.cache
def component_validator(response_name: str) -> Any:
    """A validator of one of components/responses, for answers outside any operation."""
    import jsonschema_rs

    pointer = f"#/components/responses/{response_name}/content/application~1json/schema"
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": pointer}
    return jsonschema_rs.validator_for({**root, "components": document()["components"]})


def envelope_of(response: Any) -> dict[str, Any]:
    """The envelope of a werkzeug test response, checked for shape."""
    assert response.mimetype == "application/json", (response.status_code, response.data[:300])
    body = json.loads(response.data)
    assert isinstance(body, dict), body
    assert set(body) == ENVELOPE or (set(body) == LIST_ENVELOPE and body["result"]), body
    assert body["result"] is (response.status_code < 400), body
    assert (body["error"] == "") is body["result"], body
    assert isinstance(body["msg"], str), body
    return body


def assert_documented(method: str, path: str, response: Any) -> dict[str, Any]:
    """The answer to `method path` is one the spec documents; its envelope.

    Methods a path does not serve and paths outside the API are answered 405 (with Allow)
    and 404, as components/responses MethodNotAllowed and NotFound say."""
    method = method.upper()
    path_template = template(path)
    if method == "HEAD":  # no body; the status and Allow must still be right
        if path_template is None:
            assert response.status_code == 404, response.status_code
        else:
            assert response.status_code == 405, response.status_code
            allowed = set(response.headers["Allow"].split(", "))
            assert allowed == documented_methods(path_template)
        return {}
    if path_template in PAGE_PATHS and method in documented_methods(path_template):
        _assert_page_documented(method, path_template, response)
        return {}
    body = envelope_of(response)
    if path_template is None:
        assert response.status_code == 404, body
        component_validator("NotFound").validate(body)
        return body
    if method not in documented_methods(path_template):
        assert response.status_code == 405, body
        assert set(response.headers["Allow"].split(", ")) == documented_methods(path_template)
        component_validator("MethodNotAllowed").validate(body)
        return body
    responses = document()["paths"][path_template][method.lower()]["responses"]
    assert str(response.status_code) in responses, (method, path_template, body)
    _schema()[path_template][method].validate_response(response)
    return body


def _assert_page_documented(method: str, path_template: str, response: Any) -> None:
    """A status page answer: a documented status, content type and required headers."""
    documented = document()["paths"][path_template][method.lower()]["responses"]
    answer = documented.get(str(response.status_code))
    assert answer is not None, (method, path_template, response.status_code)
    types = set(answer.get("content", {}))
    assert response.mimetype in types if types else not response.data, response.mimetype
    _schema()[path_template][method].validate_response(response)
