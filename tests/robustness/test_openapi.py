"""functions/openapi.yaml against the code.

The document is valid OpenAPI 3.1 and names every route the code serves. Schemathesis sends
generated requests, valid and invalid, to `batch_api` (functions-framework's own app, in
process) on the real local cloud: every answer must be documented (status, content type,
headers, schema), in the envelope, and never a 5xx; a refused create leaves nothing behind.
The create body's schema is also checked against the validator itself, in process, and the
answers of a whole life cycle and of backend failures against the spec.
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import positive_data_acceptance

from shared.errors import InvalidParameters
from shared.http import routes
from shared.model.validation import MAX_ENV_BYTES, validate_create
from tests.fixtures.api import Functions
from tests.robustness.helpers import create, env, reconfigure, sync_until_final
from tests.robustness.invariants import assert_only_jobs
from tests.robustness.spec import (
    ENVELOPE,
    LIST_ENVELOPE,
    SPEC_PATH,
    assert_documented,
    document,
    documented_methods,
)

# schemathesis's own strategies draw from the `random` module (generation/dictionaries.py),
# which hypothesis reports as a deprecation now and then; it is theirs, not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

# Generated cases per operation (schemathesis adds its explicit examples and, for invalid
# methods, a few probes). `test_enough_cases` adds up what ran.
EXAMPLES = 400
MIN_CASES = 1000

CASES: collections.Counter[str] = collections.Counter()
ANSWERS: collections.Counter[tuple[str, int]] = collections.Counter()


# -- the document ------------------------------------------------------------------------


def test_the_spec_is_valid_openapi_3_1():
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    assert document()["openapi"].startswith("3.1.")
    validate(document(), cls=OpenAPIV31SpecValidator)


def _routes_in_the_code() -> set[tuple[str, str]]:
    """The routes `batch_api` declares in its docstring, with <id> as OpenAPI writes it."""
    doc = routes.batch_api.__doc__ or ""
    found = re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s,]*)", doc)
    return {(method, path.rstrip(".").replace("<id>", "{id}")) for method, path in found}


def test_every_route_of_the_code_is_in_the_spec():
    documented = {
        (method, path) for path in document()["paths"] for method in documented_methods(path)
    }
    assert _routes_in_the_code() == documented
    assert documented_methods("/batch/") == set(routes.COLLECTION_METHODS)
    assert documented_methods("/batch/{id}") == set(routes.JOB_METHODS)
    assert documented_methods("/healthcheck") == set(routes.HEALTHCHECK_METHODS)


@pytest.mark.parametrize(
    "path",
    ["/batch/", "/batch", "/batch/0f2b8c1e-4a8e-4c5e-9a57-000000000000", "/healthcheck", "/nope"],
)
@pytest.mark.parametrize(
    "method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"]
)
def test_the_app_serves_exactly_the_documented_methods(fn_store, path, method):
    """A documented method is served; any other is a 405 whose Allow names the documented
    ones; a path outside the API is a 404. Each in the envelope, as the spec says."""
    response = fn_store.clients["batch_api"].open(
        path, method=method, data=b"{}", content_type="application/json"
    )
    assert_documented(method, path, response)


# -- the create body's schema is the validator's -------------------------------------------

# Rules the spec states in words because JSON Schema cannot: the only reasons a body valid
# under the schema may still be refused by validation.
RULES_IN_WORDS = (
    "Must be less than or equal to the limit",
    "Must be a positive Kubernetes quantity",  # only a number no cluster holds (1e999999999)
    f"Names and values must total at most {MAX_ENV_BYTES} bytes",
)


def _leaves(errors: Any) -> Iterator[str]:
    if isinstance(errors, dict):
        for value in errors.values():
            yield from _leaves(value)
    else:
        yield str(errors)


def _create_body_validator() -> Any:
    pointer = "#/paths/~1batch~1/post/requestBody/content/application~1json/schema"
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": pointer}
    return jsonschema_rs.validator_for({**root, **document()})


CREATE_BODY = _create_body_validator()
_create = schemathesis.openapi.from_path(SPEC_PATH)["/batch/"]["POST"]


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much],
)
@given(
    st.one_of(
        _create.as_strategy(GenerationMode.POSITIVE), _create.as_strategy(GenerationMode.NEGATIVE)
    )
)
def test_the_create_schema_accepts_what_validation_accepts(case: Case):
    """In process, no backend: a body the schema refuses is refused (so clients can trust
    the schema to reject), and one it allows is accepted but for the rules it states in
    words (so clients can trust it to accept)."""
    # Bodies of other media types are raw bytes: the HTTP tests cover those.
    assume(case.media_type == "application/json" and not isinstance(case.body, bytes | NotSet))
    valid = CREATE_BODY.is_valid(case.body)
    try:
        validate_create(case.body)
    except InvalidParameters as refused:
        reasons = list(_leaves(refused.data)) or [refused.msg]
        if valid:
            assert all(r.startswith(RULES_IN_WORDS) for r in reasons), (case.body, reasons)
        return
    assert valid, f"accepted but the schema refuses it: {case.body!r}"


# -- generated requests against the local cloud ---------------------------------------------


@dataclass
class Target:
    app: Any
    created: set[str] = field(default_factory=set)  # ids of the creates answered 200


@pytest.fixture
def target(
    fn: Functions,
    monkeypatch: pytest.MonkeyPatch,
    batch_v1: Any,
    core_v1: Any,
    namespace: str,
    storage_client: Any,
    bucket: str,
) -> Iterator[Target]:
    """functions-framework's app of `batch_api`, on this test's namespace, bucket and
    collection; afterwards, nothing exists but what the accepted creates made."""
    # Create answers as soon as the Job exists; no sync runs, and the namespace (with every
    # pod the run started) is deleted after the test.
    backends = reconfigure(monkeypatch, CREATE_WAIT_SECONDS="0")
    target = Target(fn.clients["batch_api"].application)
    yield target
    assert_only_jobs(backends, batch_v1, core_v1, namespace, storage_client, bucket, target.created)


def in_the_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every answer is the envelope; `result` says whether it succeeded and `error` why not."""
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"not JSON: {response.text[:300]!r}") from None
    listed = case.method == "GET" and case.path == "/batch/" and response.status_code == 200
    assert isinstance(body, dict) and set(body) == (LIST_ENVELOPE if listed else ENVELOPE), body
    assert body["result"] is (response.status_code < 400), body
    assert (body["error"] == "") is body["result"], body
    assert isinstance(body["msg"], str), body
    return None


schema = schemathesis.openapi.from_path(SPEC_PATH)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_answer_is_documented(case: Case, target: Target) -> None:
    """Schemathesis' checks (not_a_server_error, status_code_conformance,
    content_type_conformance, response_schema_conformance, response_headers_conformance,
    negative_data_rejection, unsupported_method, ...) and the envelope."""
    # A create the schema allows may still be refused for a rule the spec states in words (a
    # name in use, requests above limits, a zip the stager refuses): that 400 is documented,
    # so the create is exempt from positive_data_acceptance alone.
    # So is a list given a page_token: a token is valid only as a previous page gave it, and
    # for the same status and account_id, which no schema can say (any other is a 400).
    token = isinstance(case.query, dict) and bool(case.query.get("page_token"))
    excluded: list[CheckFunction] = (
        [positive_data_acceptance] if case.method == "POST" or token else []
    )
    response = case.call_and_validate(
        app=target.app, additional_checks=[in_the_envelope], excluded_checks=excluded
    )
    CASES[case.operation.label] += 1
    ANSWERS[(case.operation.label, response.status_code)] += 1
    if case.method == "POST" and response.status_code == 200:
        target.created.add(response.json()["data"]["id"])


def test_enough_cases():
    """Runs after the generated tests above (pytest keeps the file's order)."""
    if len(CASES) < sum(1 for _ in schema.get_all_operations()):
        pytest.skip("the generated tests did not all run")
    print(f"\ngenerated cases: {sum(CASES.values())} {dict(CASES)}")
    print(f"answers: {sorted(ANSWERS.items())}")
    assert sum(CASES.values()) >= MIN_CASES, dict(CASES)
    # Both sides of every operation were reached: accepted and refused.
    assert ANSWERS[("POST /batch/", 200)] and ANSWERS[("POST /batch/", 400)], ANSWERS
    assert ANSWERS[("GET /batch/", 200)] and ANSWERS[("GET /batch/", 400)], ANSWERS


# -- answers the generator cannot reach ------------------------------------------------------


def dead_address() -> str:
    from infra.local.procs import free_port

    return f"127.0.0.1:{free_port()}"  # nothing listens there


def call(fn: Functions, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = fn.clients["batch_api"].open(path, method=method, **kwargs)
    return response.status_code, assert_documented(method, path, response)


def test_a_life_cycle_answers_as_documented(fn):
    """200s with every field a job can carry, and the 400s of a name in use and of killing
    a job that is over."""
    body = {
        "name": "documented",
        "account_id": "acct-7",
        "job_parameters": {
            "docker_image": "alpine:3",
            **env(KUBESIM_RUN_SECONDS=600),
            "resources": {"limits": {"cpu": "1", "memory": "64Mi"}},
            "timeout_seconds": 900.0,
            "retries": 1,
        },
    }
    code, created = call(fn, "POST", "/batch/", json=body)
    assert code == 200 and created["data"]["job_parameters"]["timeout_seconds"] == 900
    job_id = created["data"]["id"]
    assert call(fn, "GET", f"/batch/{job_id}")[0] == 200
    code, listed = call(fn, "GET", "/batch/?status=running&account_id=acct-7")
    assert [job["id"] for job in listed["data"]] == [job_id]
    code, taken = call(fn, "POST", "/batch/", json=body)
    assert (code, taken["data"]) == (400, {"name": "A job with this name already exists"})
    assert call(fn, "DELETE", f"/batch/{job_id}")[0] == 200
    code, again = call(fn, "DELETE", f"/batch/{job_id}")
    assert code == 400 and again["msg"].endswith("Status is: killed.")
    assert call(fn, "GET", f"/batch/{job_id}")[1]["data"]["status"] == "killed"

    done = create(fn, "documented-ok", **env(KUBESIM_RUN_SECONDS=0))
    failed = create(fn, "documented-ko", **env(KUBESIM_EXIT_CODE=3))
    sync_until_final(fn, [done["id"], failed["id"]])
    assert "output_file_url" in call(fn, "GET", f"/batch/{done['id']}")[1]["data"]
    code, ko = call(fn, "GET", f"/batch/{failed['id']}")
    assert (ko["data"]["reason"], ko["data"]["exit_code"]) == ("Error", 3)
    for status in ("succeeded", "failed", "killed"):
        assert call(fn, "GET", f"/batch/?status={status}")[0] == 200


def test_backend_failures_answer_as_documented(fn, kubesim, namespace, monkeypatch):
    """500 ClusterError with the cluster's answer, 413, and 503 DatabaseError, each as the
    spec describes it."""
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    kubesim.inject_fault(verb="create", path=jobs, status=500)
    body = {"name": "refused", "job_parameters": {"docker_image": "alpine:3"}}
    code, refused = call(fn, "POST", "/batch/", json=body)
    assert (code, refused["error"]) == (500, "ClusterError")
    assert "cluster_response" in refused["data"]

    reconfigure(monkeypatch, MAX_REQUEST_BYTES="2048")
    code, large = call(fn, "POST", "/batch/", json={"job_parameters": {"x": "y" * 4096}})
    assert (code, large["error"]) == (413, "PayloadTooLarge")

    reachable = os.environ["FIRESTORE_EMULATOR_HOST"]
    reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=dead_address(), BACKEND_TIMEOUT_SECONDS="1")
    some_id = "0f2b8c1e-4a8e-4c5e-9a57-000000000000"
    for method, path, kwargs in [
        ("GET", "/batch/", {}),
        ("POST", "/batch/", {"json": {"job_parameters": {"docker_image": "alpine:3"}}}),
        ("GET", f"/batch/{some_id}", {}),
        ("DELETE", f"/batch/{some_id}", {}),
    ]:
        code, down = call(fn, method, path, **kwargs)
        assert (code, down["error"]) == (503, "DatabaseError"), (method, path)
    reconfigure(monkeypatch, FIRESTORE_EMULATOR_HOST=reachable)
