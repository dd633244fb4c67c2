"""functions/openapi.yaml against the code.

The document is valid OpenAPI 3.1 and names every route the code serves. Schemathesis sends
generated requests, valid and invalid, to `batch_api` (functions-framework's own app, in
process) on the real local cloud: every answer must be documented (status, content type,
headers, schema), in the envelope, and never a 5xx; a refused create leaves nothing behind.
The create body's schema is also checked against the validator itself, in process, and the
answers of a whole life cycle and of backend failures against the spec.

No generated `input_url` is ever looked up or fetched: in the generated requests no host
resolves (`no_lookups`), so every `https://` input is refused by the create's address check
without the network, and the only input by reference that is accepted is an object of the
test's own bucket.
"""

from __future__ import annotations

import collections
import datetime
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import (
    Case,
    CheckContext,
    CheckFunction,
    GenerationMode,
    HookContext,
    Response,
)
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    missing_required_header,
    positive_data_acceptance,
)

from shared.contract import addresses
from shared.errors import InvalidParameters
from shared.http import routes
from shared.model import validation
from shared.model.validation import MAX_ARGV_BYTES, MAX_ENV_BYTES, MAX_OBJECT_NAME, validate_create
from tests.fixtures.api import Functions, zip_bytes
from tests.fixtures.tokens import OPERATOR
from tests.robustness.helpers import create, env, reconfigure, sync_until_final
from tests.robustness.invariants import assert_only_jobs
from tests.robustness.spec import (
    ENVELOPE,
    JSON,
    LIST_ENVELOPE,
    PAGE_PATHS,
    SPEC_PATH,
    assert_documented,
    component_validator,
    document,
    documented_methods,
)

# schemathesis's own strategies draw from the `random` module (generation/dictionaries.py),
# which hypothesis reports as a deprecation now and then; it is theirs, not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Do not use the `random` module inside strategies"
        ":hypothesis.errors.HypothesisDeprecationWarning"
    ),
    # Hypothesis warns when it renders a case's repr over 30 kB (a list of 1,000 arguments
    # is one); the warnings-as-errors setting made that rendering itself fail a passing
    # case, once, and Hypothesis then reported the case as flaky.
    pytest.mark.filterwarnings(
        "ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning"
    ),
]

# Generated cases per operation (schemathesis adds its explicit examples and, for invalid
# methods, a few probes). `test_enough_cases` adds up what ran.
EXAMPLES = 450
MIN_CASES = 1000

CASES: collections.Counter[str] = collections.Counter()
ANSWERS: collections.Counter[tuple[str, int]] = collections.Counter()
# The create's fields added with command/args, input by reference or upload, start_after and
# spot: (field, status answered) for each generated create that sets one (not null), and
# what the accepted and refused ones showed.
NEW_FIELDS = ("command", "args", "input_url", "input_upload", "start_after", "spot")
FIELDS: collections.Counter[tuple[str, int]] = collections.Counter()
OUTCOMES: collections.Counter[str] = collections.Counter()


# -- the document ------------------------------------------------------------------------


def test_the_spec_is_valid_openapi_3_1():
    from openapi_spec_validator import OpenAPIV31SpecValidator, validate

    assert document()["openapi"].startswith("3.1.")
    validate(document(), cls=OpenAPIV31SpecValidator)


def _routes_in_the_code() -> set[tuple[str, str]]:
    """The routes `batch_api` declares in its docstring, with <id> as OpenAPI writes it."""
    doc = routes.batch_api.__doc__ or ""
    found = re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s,]*)", doc)
    return {(method, re.sub(r"<(\w+)>", r"{\1}", path.rstrip(".;"))) for method, path in found}


def test_every_route_of_the_code_is_in_the_spec():
    documented = {
        (method, path) for path in document()["paths"] for method in documented_methods(path)
    }
    assert _routes_in_the_code() == documented
    assert documented_methods("/batch/") == set(routes.COLLECTION_METHODS)
    assert documented_methods("/batch/{id}") == set(routes.JOB_METHODS)
    assert documented_methods("/healthcheck") == set(routes.HEALTHCHECK_METHODS)
    assert documented_methods("/accounts/") == set(routes.ACCOUNTS_METHODS)
    assert documented_methods("/accounts/{account_id}") == set(routes.ACCOUNT_METHODS)
    members = "/accounts/{account_id}/members/{email}"
    assert documented_methods(members) == set(routes.MEMBER_METHODS)
    for page in PAGE_PATHS:
        assert documented_methods(page) == set(routes.UI_METHODS)


@pytest.mark.parametrize(
    "path",
    [
        "/batch/",
        "/batch",
        "/batch/0f2b8c1e-4a8e-4c5e-9a57-000000000000",
        "/healthcheck",
        "/nope",
        "/ui",
        "/ui/",
        "/ui/app.js",
        "/ui/style.css",
        "/ui/index.html",
    ],
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
    f"command and args must total at most {MAX_ARGV_BYTES} bytes",
    "Must be at most 30 days ahead",
    f"The object name must be at most {MAX_OBJECT_NAME} bytes",  # gs://, counted as UTF-8
    # Array jobs: how their fields relate, and the task_environments' total size.
    "Must be at most task_count",
    "Must be at most MAX_PARALLELISM",
    "Only for array jobs: give task_count",
    "Must hold one object per task",
    "Needs a command",
    "Must total at most",
)
# start_after: the shape is the pattern's, a real date and time (no 30 February) is in words.
NOT_A_TIME = "Must be an RFC 3339 time (2026-12-01T08:00:00Z) or epoch milliseconds"
# input_url: what urllib.parse cannot read (a port past 65535, a bad IPv6 literal) or finds
# no host in (`https://:80/`) is in words; the pattern holds the scheme and the authority.
NOT_A_URL = ("Not a valid URL", "Must be a gs:// or https:// URL")
HTTP_URL = re.compile(r"https?://", re.IGNORECASE)


def _leaves(errors: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _leaves(value, (*path, str(key)))
    else:
        yield path, str(errors)


def _stated_in_words(body: dict[str, Any], path: tuple[str, ...], reason: str) -> bool:
    if reason.startswith(RULES_IN_WORDS):
        return True
    value = (
        body.get("job_parameters", {}).get(path[-1]) if path[:1] == ("job_parameters",) else None
    )
    if path == ("job_parameters", "start_after"):
        return isinstance(value, str) and reason == NOT_A_TIME
    if path == ("job_parameters", "input_url"):
        return isinstance(value, str) and bool(HTTP_URL.match(value)) and reason in NOT_A_URL
    return False


def assert_schema_agrees(body: Any) -> None:
    """A body the schema refuses is refused (so clients can trust the schema to reject), and
    one it allows is accepted but for the rules it states in words (so clients can trust it
    to accept)."""
    valid = CREATE_BODY.is_valid(body)
    try:
        # Judged at one moment, the one the generated start times are drawn from: a case
        # gets the same verdict each time hypothesis runs it again.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(validation, "now_ms", lambda: int(_NOW.timestamp() * 1000))
            validate_create(body)
    except InvalidParameters as refused:
        reasons = list(_leaves(refused.data)) or [((), refused.msg)]
        if valid:
            assert all(_stated_in_words(body, *r) for r in reasons), (body, reasons)
        return
    assert valid, f"accepted but the schema refuses it: {body!r}"


def validator(pointer: str) -> Any:
    """A validator of the schema at `pointer` in the document."""
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": pointer}
    return jsonschema_rs.validator_for({**root, **document()})


CREATE_BODY = validator("#/paths/~1batch~1/post/requestBody/content/application~1json/schema")
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
    """In process, no backend: bodies generated from the schema, valid and invalid."""
    # Bodies of other media types are raw bytes: the HTTP tests cover those.
    assume(case.media_type == "application/json" and not isinstance(case.body, bytes | NotSet))
    assert_schema_agrees(case.body)


# Values of the newer fields near the edges the schema draws, valid and not, which generation
# from the schema alone reaches seldom (a start time within 30 days, 1000 items, a URL that
# urllib cannot read, two input sources).
_NOW = datetime.datetime.now(datetime.UTC)
_DAY_MS = 24 * 3600 * 1000
_WORD = st.text(st.characters(codec="utf-8"), max_size=12)
_ARGV = st.one_of(
    st.lists(_WORD, max_size=5),
    st.lists(st.just("x"), min_size=998, max_size=1002),
    st.lists(st.sampled_from(["a", "\x00", "b\x00c", "é"]), min_size=1, max_size=3),
    st.sampled_from([["x" * (MAX_ARGV_BYTES // 2)], ["é" * (MAX_ARGV_BYTES // 4 + 1)]]),
    st.sampled_from(["echo hello", 1, {"a": "b"}, [1, "a"], [None], [["a"]], True]),
)
_BUCKET = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9._-]{1,20}[a-z0-9]", fullmatch=True),
    st.sampled_from(["a", "ab", "Upper", "under_score", "-dash", "x" * 223, "x" * 222]),
)
_OBJECT = st.one_of(
    _WORD,
    st.sampled_from(["a/b.zip", "é" * 512, "é" * 513, "x" * 1024, "x" * 1025, "a b", "a\x7fb"]),
)
_HOST = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True),
    st.sampled_from(
        [
            "example.com",
            "example.com:443",
            "example.com:65535",
            "example.com:65536",
            "example.com:80:90",
            "example.com:x",
            "example.com:",
            ":80",
            "user:pw@example.com",
            "user@",
            "a@b@c",
            "[::1]",
            "[::1]:8443",
            "[::1",
            "[not-v6]",
            "[]",
            "x[]",
            ":[::1]",
            "[::1]@example.com",
            "a\u2100b",  # NFKC: a/cb, a host urllib refuses
            "éxample.com",
            "",
        ]
    ),
    _WORD,
)
_INPUT_URL = st.one_of(
    st.builds(lambda b, o: f"gs://{b}/{o}", _BUCKET, _OBJECT),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["https", "http", "HTTPS", "hTTp", "ftp", "gs", "GS"]),
        _HOST,
        st.sampled_from(["", "/", "/a.zip", "/a b", "?q=1", "#f", "/\t", "/" + "x" * 8200]),
    ),
    st.sampled_from(["", "gs://", "gs://bucket", "gs://bucket/", "https:", "https:/x", "x"]),
    _WORD,
    st.sampled_from([1, True, ["https://example.com"]]),
)
_SPACES = st.sampled_from(["", " ", "\t\n", "\u3000", "\x1c", "\ufeff", "\x85", "\u200b"])
_RFC3339 = st.one_of(
    st.builds(
        lambda moment, sep, zone: moment.isoformat(sep=sep).replace("+00:00", zone),
        st.datetimes(
            min_value=datetime.datetime(2000, 1, 1),
            max_value=datetime.datetime(2100, 1, 1),
            timezones=st.sampled_from(
                [datetime.UTC, datetime.timezone(datetime.timedelta(hours=-9, minutes=-30))]
            ),
        ),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(["+00:00", "Z", "z", ""]),
    ),
    st.builds(  # within 40 days from now: scheduled, or too far ahead
        lambda ms, zone: (
            datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
            .isoformat()
            .replace("+00:00", zone)
        ),
        st.integers(0, 40 * _DAY_MS).map(lambda ahead: int(_NOW.timestamp() * 1000) + ahead),
        st.sampled_from(["Z", "+00:00", "-01:00"]),
    ),
    st.sampled_from(
        [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "0000-01-01T00:00:00Z",
            "2026-01-01T00:00:00+00:60",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.123456789Z",
            "２０２６-01-01T00:00:00Z",
            "2026-01-01",
            "tomorrow",
        ]
    ),
)
_START_AFTER = st.one_of(
    st.builds(lambda before, time_, after: before + time_ + after, _SPACES, _RFC3339, _SPACES),
    st.integers(-1, 10**14),
    st.integers(0, 40 * _DAY_MS).map(lambda ahead: int(_NOW.timestamp() * 1000) + ahead),
    st.floats(allow_nan=False),
    st.sampled_from([True, False, [], {}]),
)
_FLAG = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", [], {}]))
_COUNT: st.SearchStrategy[Any] = st.one_of(
    st.integers(-1, 5), st.sampled_from([10000, 10001, 2.0, 2.5, "3", True, [], None])
)
_TASK_ENV: st.SearchStrategy[Any] = st.dictionaries(
    st.sampled_from(["X", "Y_2", "_", "a-b", "1A", "__x__", "a.b", "", "x" * 257]),
    st.sampled_from(["v", "", 1, 2.5, True, None, "a\x00b", [], "x" * 32769]),
    max_size=3,
)
_TASK_ENVIRONMENTS = st.one_of(
    st.lists(_TASK_ENV, max_size=4),
    st.lists(st.just({"X": "1"}), min_size=9999, max_size=10001),
    st.sampled_from([{}, "X=1", [["X"]], [None], [1]]),
)
_NEW_PARAMETERS = st.fixed_dictionaries(
    {},
    optional={
        "command": st.none() | _ARGV,
        "args": st.none() | _ARGV,
        "input_url": st.none() | _INPUT_URL,
        "input_upload": st.none() | _FLAG,
        "start_after": st.none() | _START_AFTER,
        "spot": st.none() | _FLAG,
        "input_zip": st.sampled_from([None, "", "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", 7]),
        "task_count": _COUNT,
        "parallelism": _COUNT,
        "max_failed_tasks": _COUNT,
        "task_environments": st.none() | _TASK_ENVIRONMENTS,
    },
)


@settings(max_examples=1500, deadline=None, database=None)
@given(_NEW_PARAMETERS)
def test_the_create_schema_agrees_on_the_newer_fields(parameters: dict[str, Any]):
    """In process: command/args, input_url, input_upload, start_after, spot and the array
    fields, alone and together, at and past their limits."""
    assert_schema_agrees({"job_parameters": {"docker_image": "alpine:3", **parameters}})


# -- generated requests against the local cloud ---------------------------------------------


@dataclass
class Target:
    app: Any
    headers: dict[str, str]  # the operator's token: every generated request is let in
    created: set[str] = field(default_factory=set)  # ids of the creates answered 200


class _NoLookups:
    """The socket module as the create's address check (shared/contract/addresses.py) sees it
    in the generated requests: no host resolves, at once. A generated `https://` input_url
    is then refused before anything could fetch it; with real lookups, a name or an address
    literal that happens to be public would be accepted, and its pod's stage-in (a host
    process in the simulator) would download it from the internet."""

    IPPROTO_TCP = socket.IPPROTO_TCP

    @staticmethod
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: no host resolves in this test")


# The `gs://` input some generated creates are pointed at (flatmap_body): an object of a
# bucket of the test's own, so that an input by reference is accepted now and then.
SEEDED_INPUT: dict[str, str] = {}


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
    monkeypatch.setattr(addresses, "socket", _NoLookups)
    inputs = storage_client.create_bucket(f"{bucket}-refs")
    inputs.blob("in/words.zip").upload_from_string(zip_bytes({"words.txt": b"to be or not"}))
    SEEDED_INPUT["url"] = f"gs://{inputs.name}/in/words.zip"
    target = Target(fn.clients["batch_api"].application, fn.as_(OPERATOR))
    try:
        yield target
        assert_only_jobs(
            backends, batch_v1, core_v1, namespace, storage_client, bucket, target.created
        )
    finally:
        SEEDED_INPUT.clear()
        for blob in storage_client.list_blobs(inputs.name):
            blob.delete()
        inputs.delete()


def in_the_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every answer is the envelope; `result` says whether it succeeded and `error` why not.
    But the status page's own answers: a file (200), not modified (304), the redirect."""
    if case.path in PAGE_PATHS and case.method == "GET" and response.status_code in (200, 301, 304):
        return None
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


_IMPORTED_MS = int(time.time() * 1000)
START_AFTER = validator("#/components/schemas/JobParameters/properties/start_after")
INPUT_URL = validator("#/components/schemas/JobParameters/properties/input_url")
TASK_COUNT = validator("#/components/schemas/JobParameters/properties/task_count")


def flatmap_body(ctx: HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Send some creates where random values almost never lead: a start time within the
    next 30 days (a scheduled job), and an input_url that exists (an object of the test's
    own). Only a value the schema allows is replaced, by another it allows, so a case stays
    as valid or invalid as it was generated."""
    params = body.get("job_parameters") if isinstance(body, dict) else None
    if not isinstance(params, dict):
        return st.just(body)
    replacements: dict[str, st.SearchStrategy[Any]] = {}
    start_after = params.get("start_after")
    if start_after is not None and START_AFTER.is_valid(start_after):
        # From one moment fixed at import: a strategy whose bounds moved with the clock
        # would draw differently when hypothesis replays a case (FlakyStrategyDefinition).
        now = _IMPORTED_MS
        replacements["start_after"] = st.one_of(
            st.integers(now + 3_600_000, now + 29 * 24 * 3600 * 1000),
            st.integers(3600, 29 * 24 * 3600).map(
                lambda ahead: (
                    datetime.datetime.fromtimestamp(now / 1000 + ahead, datetime.UTC)
                    .isoformat()
                    .replace("+00:00", "Z")
                )
            ),
        )
    # A valid input_url is always the seeded object: a generated one names no object, and
    # so an accepted input_url does not hang on how the cases happened to be drawn.
    forced: dict[str, st.SearchStrategy[Any]] = {}
    url = params.get("input_url")
    if "url" in SEEDED_INPUT and url is not None and INPUT_URL.is_valid(url):
        forced["input_url"] = st.just(SEEDED_INPUT["url"])
    # An array job runs a pod per task (at most 100 at once): a generated task_count,
    # which may be 10,000, is cut to a few, so that the run tests the API and not how
    # many pods the machine can hold. The value stays one the schema allows.
    if TASK_COUNT.is_valid(params.get("task_count")) and params.get("task_count") is not None:
        forced["task_count"] = st.integers(1, 3)
    # Each replaced in about half the cases, kept in the others.
    return st.fixed_dictionaries(forced, optional=replacements).map(
        lambda new: {**body, "job_parameters": {**params, **new}}
    )


def _count_new_fields(body: Any, response: Response) -> None:
    """How often each newer field was sent, and what the answers showed of it."""
    params = body.get("job_parameters") if isinstance(body, dict) else None
    if not isinstance(params, dict):
        return
    for name in NEW_FIELDS:
        if params.get(name) is not None:
            FIELDS[(name, response.status_code)] += 1
    answer = response.json()
    if response.status_code == 200:
        job = answer["data"]
        kept = job["job_parameters"]
        if answer["msg"].startswith("Repeat of request "):
            OUTCOMES["a repeat of an earlier request_id"] += 1  # its first answer was counted
            return
        if job["status"] == "created" and "input_upload_url" in job:
            OUTCOMES["created, waiting for its upload"] += 1
            assert answer["msg"].startswith(f"Job {job['id']} waits for its input"), answer
        elif job["status"] == "created" and "scheduled_for" in job:
            OUTCOMES["created, scheduled"] += 1
            assert answer["msg"].startswith(f"Job {job['id']} is scheduled to start at "), answer
        for name in NEW_FIELDS:
            if name in kept:
                OUTCOMES[f"accepted with {name}"] += 1
    elif response.status_code == 400 and isinstance(answer["data"], dict):
        refused = answer["data"].get("job_parameters")
        error = refused.get("input_url") if isinstance(refused, dict) else None
        if isinstance(error, str) and error.startswith(("Refused: ", "No such object: ")):
            OUTCOMES[f"input_url: {error.split(':', 1)[0]}"] += 1


@schema.hooks.apply(flatmap_body)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    # The same cases every run: test_enough_cases asserts what they reached (every newer
    # field accepted and refused), which a random draw reaches only most of the time.
    derandomize=True,
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
    # Every case is sent as the operator, so that it reaches past the token check. The
    # checks that resend a case without its token cannot reach an app served in-process;
    # tests/api/test_access.py sends every route each kind of missing and bad token.
    excluded += [ignored_auth, missing_required_header]
    case.headers.update(target.headers)
    response = case.call_and_validate(
        app=target.app, additional_checks=[in_the_envelope], excluded_checks=excluded
    )
    CASES[case.operation.label] += 1
    ANSWERS[(case.operation.label, response.status_code)] += 1
    creates = case.operation.label == "POST /batch/"
    made = creates and response.status_code == 200 and "id" in response.json()["data"]
    if made:  # not a dry run
        target.created.add(response.json()["data"]["id"])
    if creates and (response.status_code != 200 or made):
        _count_new_fields(case.body, response)


def test_enough_cases():
    """Runs after the generated tests above (pytest keeps the file's order)."""
    if len(CASES) < sum(1 for _ in schema.get_all_operations()):
        pytest.skip("the generated tests did not all run")
    print(f"\ngenerated cases: {sum(CASES.values())} {dict(CASES)}")
    print(f"answers: {sorted(ANSWERS.items())}")
    print(f"newer fields sent (field, status): {sorted(FIELDS.items())}")
    print(f"newer fields seen: {sorted(OUTCOMES.items())}")
    assert sum(CASES.values()) >= MIN_CASES, dict(CASES)
    # Both sides of every operation were reached: accepted and refused.
    assert ANSWERS[("POST /batch/", 200)] and ANSWERS[("POST /batch/", 400)], ANSWERS
    assert ANSWERS[("GET /batch/", 200)] and ANSWERS[("GET /batch/", 400)], ANSWERS
    # Every newer field was sent, accepted and refused; both kinds of waiting job were
    # created; an input_url was accepted, and refused by the create's own checks.
    for name in NEW_FIELDS:
        assert FIELDS[(name, 200)] and FIELDS[(name, 400)], (name, FIELDS)
        assert OUTCOMES[f"accepted with {name}"], (name, OUTCOMES)
    for seen in ("created, waiting for its upload", "created, scheduled"):
        assert OUTCOMES[seen], (seen, OUTCOMES)
    assert OUTCOMES["input_url: Refused"] + OUTCOMES["input_url: No such object"], OUTCOMES


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


def test_waiting_jobs_answer_as_documented(fn):
    """The two `created` answers (input by upload, a start time ahead), the same fields in
    get and list while they wait, and kill on both."""
    params = {"docker_image": "alpine:3", "input_upload": True, "command": ["ls"], "args": ["/"]}
    body = {"name": "documented-upload", "job_parameters": params}
    code, upload = call(fn, "POST", "/batch/", json=body)
    job = upload["data"]
    assert (code, job["status"]) == (200, "created"), upload
    assert job["input_upload_expires"] > job["created"] and job["input_upload_url"]
    assert upload["msg"] == (
        f"Job {job['id']} waits for its input: PUT the zip to data.input_upload_url "
        "with Content-Type: application/zip"
    )
    ahead = datetime.datetime.now(datetime.UTC).replace(microsecond=0) + datetime.timedelta(days=2)
    params = {"docker_image": "alpine:3", "start_after": ahead.isoformat(), "spot": True}
    body = {"name": "documented-later", "job_parameters": params}
    code, later = call(fn, "POST", "/batch/", json=body)
    assert (code, later["data"]["status"]) == (200, "created"), later
    assert later["data"]["scheduled_for"] == int(ahead.timestamp() * 1000)
    at = ahead.isoformat().replace("+00:00", "Z")
    assert later["msg"] == f"Job {later['data']['id']} is scheduled to start at {at}"
    # The upload URL is the create's answer's alone: a reader of the job may not write its
    # input. The rest of the answer is the same in get and list.
    shown = {key: value for key, value in job.items() if key != "input_upload_url"}
    code, listed = call(fn, "GET", "/batch/?status=created")
    assert {j["id"]: j for j in listed["data"]}[job["id"]] == shown
    for waiting in (shown, later["data"]):
        assert call(fn, "GET", f"/batch/{waiting['id']}")[1]["data"] == waiting
        code, killed = call(fn, "DELETE", f"/batch/{waiting['id']}")
        assert (code, killed["data"]["status"]) == (200, "killed"), killed
        assert "input_upload_url" not in killed["data"]


def _examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        yield name, example["value"]


def _body_validator(schema: dict[str, Any]) -> Any:
    """A validator of a request body's schema, its references resolved in the document."""
    import jsonschema_rs

    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return jsonschema_rs.validator_for({**root, "components": document()["components"]})


def test_the_examples_are_what_they_document():
    """Every example in the document passes its schema; the create's request examples
    pass the validator too (but for what it states in words: a start time over 30 days
    ahead, when the document is read long before its example's date)."""
    seen = 0
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            where = f"#/paths/{path.replace('/', '~1')}/{method}/responses"
            for code, response in operation["responses"].items():
                schema = f"{where}/{code}/content/application~1json/schema"
                for name, value in _examples(response.get("content", {}).get(JSON, {})):
                    assert validator(schema).is_valid(value), (method, path, code, name)
                    seen += 1
            body = operation.get("requestBody", {}).get("content", {}).get(JSON, {})
            for name, value in _examples(body):
                if path != "/batch/":
                    assert _body_validator(body["schema"]).is_valid(value), (path, name)
                    seen += 1
                    continue
                assert CREATE_BODY.is_valid(value), name
                assert_schema_agrees(value)
                seen += 1
    for name, response in document()["components"]["responses"].items():
        for example, value in _examples(response.get("content", {}).get(JSON, {})):
            assert component_validator(name).is_valid(value), (name, example)
            seen += 1
    assert seen >= 12


def test_backend_failures_answer_as_documented(fn, cluster_faults, namespace, monkeypatch):
    """500 ClusterError with the cluster's answer, 413, and 503 DatabaseError, each as the
    spec describes it."""
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    cluster_faults.inject_fault(verb="create", path=jobs, status=500)
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
