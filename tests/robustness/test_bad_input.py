"""Hostile and careless requests to `batch_api` on the real local cloud: oversized and deeply
nested bodies, huge environment maps, Unicode in every string, unsafe zips and zip bombs,
every length limit and its next value, wrong types, wrong content types, unknown routes
and methods. Each answer is a documented 4xx in the envelope (functions/openapi.yaml), and
afterwards nothing exists but what the accepted creates made: no record or reserved name in
Firestore, no Job or volume claim in the cluster, no object in the bucket."""

from __future__ import annotations

import base64
import io
import json
import random
import stat
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.model.validation import (
    MAX_ACCOUNT_ID,
    MAX_ENV_BYTES,
    MAX_ENV_NAME,
    MAX_ENV_VALUE,
    MAX_ENV_VARS,
    MAX_IMAGE,
    MAX_NAME,
    MAX_RETRIES,
    MAX_TIMEOUT,
)
from shared.settings import MIB
from tests.fixtures.api import Functions
from tests.fixtures.zips import directory_bomb
from tests.robustness.helpers import reconfigure
from tests.robustness.invariants import assert_only_jobs
from tests.robustness.spec import assert_documented

pytestmark = pytest.mark.usefixtures("app_env")

Answer = tuple[int, dict[str, Any]]
JOB_ID = "0f2b8c1e-4a8e-4c5e-9a57-000000000000"  # a well-formed id no job has


@pytest.fixture
def nothing_left(
    backends: Any, batch_v1: Any, core_v1: Any, namespace: str, storage_client: Any, bucket: str
) -> Callable[..., None]:
    """Call with the ids of the creates that were accepted: nothing else may exist."""
    return lambda *job_ids: assert_only_jobs(
        backends, batch_v1, core_v1, namespace, storage_client, bucket, job_ids
    )


def send(fn: Functions, method: str, path: str, **kwargs: Any) -> Answer:
    """The answer, checked against the spec and the envelope."""
    response = fn.clients["batch_api"].open(path, method=method, **kwargs)
    return response.status_code, assert_documented(method, path, response)


def post(fn: Functions, body: Any) -> Answer:
    return send(fn, "POST", "/batch/", json=body)


def params(**fields: Any) -> dict[str, Any]:
    return {"job_parameters": {"docker_image": "alpine:3", **fields}}


def field_error(answer: Answer, *path: str) -> str:
    """The refusal's field-level message at `path` (a 400 InvalidParameters)."""
    code, body = answer
    assert (code, body["error"]) == (400, "InvalidParameters"), body
    data: Any = body["data"]
    for key in path:
        assert isinstance(data, dict) and key in data, (path, body["data"])
        data = data[key]
    assert isinstance(data, str), data
    return data


def refused(answer: Answer) -> str:
    """The refusal's message, for a 400 about the body as a whole."""
    code, body = answer
    assert (code, body["error"], body["data"]) == (400, "InvalidParameters", ""), body
    return str(body["msg"])


# -- size ---------------------------------------------------------------------------------


def test_a_body_over_max_request_bytes(fn, nothing_left):
    """Refused from its Content-Length, before it is read: 413 in the envelope."""
    body = b'{"job_parameters": {"docker_image": "alpine:3", "x": "' + b"y" * (32 * MIB) + b'"}}'
    code, answer = send(fn, "POST", "/batch/", data=body, content_type="application/json")
    assert (code, answer["error"], answer["data"]) == (413, "PayloadTooLarge", "")
    nothing_left()


def test_a_streamed_body_over_max_request_bytes(fn, monkeypatch, nothing_left):
    """No Content-Length (chunked): read up to the limit, then refused."""
    reconfigure(monkeypatch, MAX_REQUEST_BYTES="4096")
    body = json.dumps(params(environment_variables={"A": "b" * 8192})).encode()
    environ = EnvironBuilder(
        path="/batch/",
        method="POST",
        input_stream=io.BytesIO(body),
        headers=[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True  # what a server says of a chunked body it ends
    response = fn.clients["batch_api"].open(Request(environ))  # this environ, as it is
    assert response.status_code == 413, response.data
    assert assert_documented("POST", "/batch/", response)["error"] == "PayloadTooLarge"
    nothing_left()


def test_an_input_zip_over_max_input_bytes(fn, nothing_left):
    """27 MB of base64 (20 MiB + 3 bytes decoded) fits the body but not the input limit."""
    text = "A" * ((20 * MIB + 3) // 3 * 4 + 4)
    message = field_error(post(fn, params(input_zip=text)), "job_parameters", "input_zip")
    assert message == f"Larger than {20 * MIB} bytes once decoded"
    nothing_left()


def test_an_input_zip_at_a_lowered_limit(fn, monkeypatch, nothing_left):
    reconfigure(monkeypatch, MAX_INPUT_BYTES="1024")
    small = zip_of({"a.txt": b"a" * 100})
    big = zip_of({"a.bin": random.Random(0).randbytes(2048)})  # does not compress
    code, accepted = post(fn, params(input_zip=small))
    assert code == 200, accepted
    message = field_error(post(fn, params(input_zip=big)), "job_parameters", "input_zip")
    assert message.startswith("Larger than 1024 bytes")
    nothing_left(accepted["data"]["id"])


# -- structure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"job_parameters": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    ],
    ids=["arrays", "objects", "inside-the-body"],
)
def test_deeply_nested_json(fn, nothing_left, data):
    assert refused(send(fn, "POST", "/batch/", data=data, content_type="application/json")) == (
        "Malformed JSON: nested too deeply"
    )
    nothing_left()


def test_nesting_that_parses_is_refused_by_field(fn, nothing_left):
    deep: Any = "x"
    for _ in range(500):
        deep = [deep]
    answer = post(fn, params(environment_variables={"DEEP": deep}, resources={"limits": deep}))
    assert field_error(answer, "job_parameters", "environment_variables", "DEEP") == (
        "Value must be a string"
    )
    assert field_error(answer, "job_parameters", "resources", "limits").startswith("Must be")
    nothing_left()


# -- environment maps ------------------------------------------------------------------------


def test_a_hundred_thousand_variables(fn, nothing_left):
    env = {f"VAR_{i}": str(i) for i in range(100_000)}
    answer = post(fn, params(environment_variables=env))
    assert field_error(answer, "job_parameters", "environment_variables") == (
        f"At most {MAX_ENV_VARS} variables"
    )
    nothing_left()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BIG": "v" * (4 * MIB)}, f"Value must be at most {MAX_ENV_VALUE} characters"),
        ({"N" * 100_000: "v"}, f"Name must be at most {MAX_ENV_NAME} characters"),
        ({"A": "x\x00y"}, "Value must not contain NUL characters"),
        ({"__FIRESTORE__": "x"}, "Names that start and end with '__' are reserved"),
        ({"..HIDDEN": "x"}, "Invalid name: must not be '.' or start with '..'"),
        ({"A\n": "x"}, "Invalid name"),
        ({"A=B": "x"}, "Invalid name"),
        ({"": "x"}, "Invalid name"),
    ],
    ids=["long-value", "long-name", "nul", "reserved", "dotdot", "newline", "equals", "empty"],
)
def test_variables_the_backends_would_refuse(fn, nothing_left, env, expected):
    answer = post(fn, params(environment_variables=env))
    (name,) = env
    message = field_error(answer, "job_parameters", "environment_variables", name)
    assert message.startswith(expected)
    nothing_left()


def test_variables_that_fill_a_record(fn, nothing_left):
    """200 variables of 32 KiB each are 6.4 MB: more than a Firestore document holds."""
    env = {f"V{i}": "v" * MAX_ENV_VALUE for i in range(MAX_ENV_VARS)}
    answer = post(fn, params(environment_variables=env))
    assert field_error(answer, "job_parameters", "environment_variables") == (
        f"Names and values must total at most {MAX_ENV_BYTES} bytes (UTF-8)"
    )
    nothing_left()


# -- Unicode ----------------------------------------------------------------------------------

ROCKET = "\U0001f680"  # outside the BMP: one character, four UTF-8 bytes, two UTF-16 units


def test_unicode_where_text_is_free(fn, nothing_left):
    """account_id and env values are free text: kept exactly, and found again by a list."""
    account = "Ünïcødé-" + ROCKET * 10 + "-账户"
    env = {"GREETING": "héllo wörld " + ROCKET, "RTL": "\u05e9\u05dc\u05d5\u05dd", "ZW": "\u200b"}
    code, created = post(fn, {"account_id": account, **params(environment_variables=env)})
    assert code == 200, created
    job = created["data"]
    assert (job["account_id"], job["job_parameters"]["environment_variables"]) == (account, env)
    code, listed = send(fn, "GET", "/batch/", query_string={"account_id": account})
    assert [j["id"] for j in listed["data"]] == [job["id"]]
    assert send(fn, "GET", f"/batch/{job['id']}")[1]["data"]["account_id"] == account
    nothing_left(job["id"])


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "jöb", **params()}, ("name",)),
        ({"name": "job-" + ROCKET, **params()}, ("name",)),
        ({"job_parameters": {"docker_image": "alpïne:3"}}, ("job_parameters", "docker_image")),
        ({"job_parameters": {"docker_image": "alpine:é"}}, ("job_parameters", "docker_image")),
        (params(environment_variables={"CLÉ": "v"}), ("job_parameters", "environment_variables")),
        (params(resources={"limits": {"cpu": "１"}}), ("job_parameters", "resources")),
        (params(input_zip="UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==" + ROCKET), ("job_parameters",)),
        ({"status": "créé", **params()}, ("status",)),
        ({"nämé": "x", **params()}, ("nämé",)),
    ],
    ids=[
        "name",
        "name-emoji",
        "image",
        "tag",
        "env-name",
        "fullwidth-digit",
        "zip",
        "status",
        "key",
    ],
)
def test_unicode_where_the_cluster_wants_ascii(fn, nothing_left, body, path):
    code, answer = post(fn, body)
    assert (code, answer["error"]) == (400, "InvalidParameters"), answer
    data: Any = answer["data"]
    for key in path:
        data = data[key]
    assert data
    nothing_left()


@pytest.mark.parametrize(
    "raw",
    [
        '{"account_id": "\\ud800", "job_parameters": {"docker_image": "alpine:3"}}',
        '{"job_parameters": {"docker_image": "a", "environment_variables": {"A": "\\udc00"}}}',
        '{"job_parameters": {"docker_image": "alpine:3"}, "\\ud83d": 1}',
    ],
    ids=["account", "env-value", "key"],
)
def test_lone_surrogates(fn, nothing_left, raw):
    """Valid JSON, but no Unicode: nothing downstream can carry it."""
    answer = send(fn, "POST", "/batch/", data=raw.encode(), content_type="application/json")
    assert "lone UTF-16 surrogate" in refused(answer)
    nothing_left()


def test_a_surrogate_pair_is_one_character(fn, nothing_left):
    raw = '{"account_id": "\\ud83d\\ude80", "job_parameters": {"docker_image": "alpine:3"}}'
    code, answer = send(fn, "POST", "/batch/", data=raw.encode(), content_type="application/json")
    assert (code, answer["data"]["account_id"]) == (200, ROCKET)
    nothing_left(answer["data"]["id"])


@pytest.mark.parametrize(
    "query",
    [
        {"status": "rünning"},
        {"status": ROCKET},
        {"account_id": "x" * (MAX_ACCOUNT_ID + 1)},
        {"account_id": "é" * (MAX_ACCOUNT_ID + 1)},
    ],
    ids=["status", "status-emoji", "long-account", "long-unicode-account"],
)
def test_unicode_and_length_in_query_parameters(fn, nothing_left, query):
    code, answer = send(fn, "GET", "/batch/", query_string=query)
    assert (code, answer["error"]) == (400, "InvalidParameters"), answer
    assert set(answer["data"]) == set(query)
    nothing_left()


@pytest.mark.parametrize(
    "query",
    [{"account_id": ROCKET * MAX_ACCOUNT_ID}, {"account_id": "\x00"}, {"other": "ignored"}],
    ids=["emoji-account-at-limit", "nul-account", "unknown-parameter"],
)
def test_query_parameters_that_find_nothing(fn, nothing_left, query):
    assert send(fn, "GET", "/batch/", query_string=query) == (
        200,
        {"data": [], "error": "", "msg": "", "result": True, "next_page_token": ""},
    )
    nothing_left()


@pytest.mark.parametrize(
    "job_id",
    [
        "jöb",
        ROCKET,
        "%F0%9F%9A%80",
        "%ED%A0%80",  # a UTF-8-encoded lone surrogate
        "%FF%FE",
        "%00",
        "a%0Ab",  # a newline: no route of functions-framework matches
        "0F2B8C1E-4A8E-4C5E-9A57-000000000000",
        JOB_ID.replace("-", ""),
        "x" * 10_000,
    ],
    ids=[
        "latin",
        "emoji",
        "encoded-emoji",
        "surrogate",
        "bad-utf8",
        "nul",
        "newline",
        "upper",
        "hex",
        "long",
    ],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_ids_that_name_no_job(fn, nothing_left, job_id, method):
    code, answer = send(fn, method, f"/batch/{job_id}")
    assert (code, answer["error"], answer["data"]) == (404, "DoesNotExist", ""), answer
    assert answer["msg"].startswith("Batch job ") and answer["msg"].endswith(" not found.")
    nothing_left()


# -- zips ------------------------------------------------------------------------------------


def zip_of(files: dict[str, bytes], **info: Any) -> str:
    """Base64 of a zip of `files`; `info` sets ZipInfo attributes on every entry."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            entry = zipfile.ZipInfo(name)
            entry.compress_type = zipfile.ZIP_DEFLATED
            for key, value in info.items():
                setattr(entry, key, value)
            archive.writestr(entry, content)
    return base64.b64encode(buffer.getvalue()).decode()


def declaring(size: int) -> str:
    """A one-file zip whose central directory claims `size` bytes uncompressed."""
    data = bytearray(base64.b64decode(zip_of({"big.bin": b"x"})))
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", size)
    return base64.b64encode(bytes(data)).decode()


def flagged_encrypted(encoded: str) -> str:
    """The zip with its entry marked encrypted (general purpose flag bit 0)."""
    data = bytearray(base64.b64decode(encoded))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature) + offset
        data[at] |= 0x1
    return base64.b64encode(bytes(data)).decode()


def many_files(count: int) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(count):
            archive.writestr(f"f{i}", b"")
    return base64.b64encode(buffer.getvalue()).decode()


UNSAFE_ZIPS: dict[str, tuple[Callable[[], str], str]] = {
    "parent": (lambda: zip_of({"../../etc/cron.d/evil": b"x"}), "has a '..' component"),
    "inner-parent": (lambda: zip_of({"a/../../evil": b"x"}), "has a '..' component"),
    "absolute": (lambda: zip_of({"/etc/passwd": b"x"}), "is an absolute path"),
    "drive": (lambda: zip_of({"C:/Windows/evil": b"x"}), "is an absolute path"),
    "backslash": (lambda: zip_of({"..\\evil": b"x"}), "uses '\\'"),
    "symlink": (
        lambda: zip_of({"link": b"/etc/passwd"}, external_attr=(stat.S_IFLNK | 0o777) << 16),
        "is a symbolic link",
    ),
    "device": (
        lambda: zip_of({"dev": b""}, external_attr=(stat.S_IFCHR | 0o666) << 16),
        "is a device or special file",
    ),
    "encrypted": (lambda: flagged_encrypted(zip_of({"a": b"x"})), "is encrypted"),
    "duplicate": (lambda: base64.b64encode(_duplicate_zip()).decode(), "appears twice"),
    "ratio-bomb": (lambda: zip_of({"zeros": bytes(16 * MIB)}), "has compression ratio"),
    "declared-bomb": (lambda: declaring(3 * 1024 * MIB), "bytes uncompressed, above"),
    "too-many-files": (lambda: many_files(10_001), "entries, above the limit of 10000"),
    "not-a-zip": (lambda: base64.b64encode(b"PK\x03\x04 truncated").decode(), "not a valid zip"),
    "directory-bomb": (
        lambda: base64.b64encode(directory_bomb(300_000, declared=5)).decode(),
        "central directory is",
    ),
    "directory-longer-than-declared": (
        lambda: base64.b64encode(directory_bomb(10_001, declared=5)).decode(),
        "more than 10000 entries",
    ),
    "path-too-long": (lambda: zip_of({"/".join(["d" * 250] * 16): b"x"}), "longer than 3840"),
}


def _duplicate_zip() -> bytes:
    buffer = io.BytesIO()
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(buffer, "w") as archive,
    ):
        archive.writestr("a", b"1")
        archive.writestr("a", b"2")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", sorted(UNSAFE_ZIPS))
def test_unsafe_zips_are_refused_at_create(fn, nothing_left, kind):
    """What stage-in would refuse later is refused now, with field-level data, and nothing
    is stored: no record, no input object, no volume claim."""
    make, reason = UNSAFE_ZIPS[kind]
    answer = post(fn, {"name": f"zip-{kind}", **params(input_zip=make())})
    message = field_error(answer, "job_parameters", "input_zip")
    assert message.startswith("Not an acceptable zip") and reason in message, message
    nothing_left()


@pytest.mark.parametrize(
    "text", ["%%% not base64", "QUJD=", "QUJD\x00", "QUJDRA", "////"], ids=lambda t: repr(t)
)
def test_input_that_is_not_base64(fn, nothing_left, text):
    message = field_error(post(fn, params(input_zip=text)), "job_parameters", "input_zip")
    assert message in ("Not valid base64",) or message.startswith("Not an acceptable zip")
    nothing_left()


# -- every limit, and one past it -----------------------------------------------------------

TAGGED = "a" * (MAX_IMAGE - 2) + ":1"
LIMITS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    # name: (at the limit, just over it, where the refusal is)
    "name": ({"name": "n" * MAX_NAME}, {"name": "n" * (MAX_NAME + 1)}, ("name",)),
    "account_id": (
        {"account_id": ROCKET * MAX_ACCOUNT_ID},
        {"account_id": "a" * (MAX_ACCOUNT_ID + 1)},
        ("account_id",),
    ),
    "docker_image": (
        {"image": TAGGED},
        {"image": "a" + TAGGED},
        ("job_parameters", "docker_image"),
    ),
    "env_value": (
        {"env": {"V": "é" * MAX_ENV_VALUE}},
        {"env": {"V": "v" * (MAX_ENV_VALUE + 1)}},
        ("job_parameters", "environment_variables", "V"),
    ),
    "env_name": (
        {"env": {"N" * MAX_ENV_NAME: "v"}},
        {"env": {"N" * (MAX_ENV_NAME + 1): "v"}},
        ("job_parameters", "environment_variables", "N" * (MAX_ENV_NAME + 1)),
    ),
    "env_count": (
        {"env": {f"V{i}": "v" for i in range(MAX_ENV_VARS)}},
        {"env": {f"V{i}": "v" for i in range(MAX_ENV_VARS + 1)}},
        ("job_parameters", "environment_variables"),
    ),
    "env_bytes": (
        # 8 names of 2 bytes, 8 values filling the rest of the budget exactly
        {"env": {f"V{i}": "v" * (MAX_ENV_BYTES // 8 - 2) for i in range(8)}},
        {
            "env": {
                f"V{i}": "v" * (MAX_ENV_BYTES // 8 - 2) + ("v" if i == 0 else "") for i in range(8)
            }
        },
        ("job_parameters", "environment_variables"),
    ),
    "timeout_high": (
        {"timeout_seconds": MAX_TIMEOUT},
        {"timeout_seconds": MAX_TIMEOUT + 1},
        ("job_parameters", "timeout_seconds"),
    ),
    "timeout_low": (
        {"timeout_seconds": 1},
        {"timeout_seconds": 0},
        ("job_parameters", "timeout_seconds"),
    ),
    "retries_high": (
        {"retries": MAX_RETRIES},
        {"retries": MAX_RETRIES + 1},
        ("job_parameters", "retries"),
    ),
    "retries_low": ({"retries": 0}, {"retries": -1}, ("job_parameters", "retries")),
}


def _body(spec: dict[str, Any]) -> dict[str, Any]:
    job_parameters: dict[str, Any] = {"docker_image": spec.get("image", "alpine:3")}
    if "env" in spec:
        job_parameters["environment_variables"] = spec["env"]
    for key in ("timeout_seconds", "retries"):
        if key in spec:
            job_parameters[key] = spec[key]
    body: dict[str, Any] = {"job_parameters": job_parameters}
    for key in ("name", "account_id"):
        if key in spec:
            body[key] = spec[key]
    return body


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_each_limit_and_one_past_it(fn, nothing_left, limit):
    at, over, where = LIMITS[limit]
    code, accepted = post(fn, _body(at))
    assert code == 200, accepted
    field_error(post(fn, _body(over)), *where)
    nothing_left(accepted["data"]["id"])


def test_an_account_id_at_the_limit_is_found_and_one_past_it_refused(fn, nothing_left):
    assert send(fn, "GET", "/batch/", query_string={"account_id": "a" * MAX_ACCOUNT_ID})[0] == 200
    code, answer = send(fn, "GET", "/batch/", query_string={"account_id": "a" * 129})
    assert answer["data"] == {"account_id": f"At most {MAX_ACCOUNT_ID} characters"}
    nothing_left()


# -- wrong types ------------------------------------------------------------------------------

WRONG: list[Any] = [5, 1.5, True, None, [], {}, "text"]


def _wrong_types(path: tuple[str, ...], allowed: tuple[Any, ...]) -> list[Any]:
    """Values of every JSON type but those the field takes (`None` counts as leaving an
    optional field out, so it is among the allowed ones where that holds)."""
    return [
        pytest.param(path, value, id=f"{'.'.join(path)}={json.dumps(value)}")
        for value in WRONG
        if not any(type(value) is type(a) and value == a for a in allowed)
    ]


FIELDS = [
    *_wrong_types(("name",), (None, "text")),  # "text" is a valid name
    *_wrong_types(("account_id",), (None, "text")),
    *_wrong_types(("status",), (None,)),  # null is the default, as the earlier client sent it
    *_wrong_types(("job_parameters",), ()),
    *_wrong_types(("job_parameters", "docker_image"), ("text",)),
    *_wrong_types(("job_parameters", "environment_variables"), (None, {})),
    *_wrong_types(("job_parameters", "environment_variables", "A"), (5, 1.5, True, "text")),
    *_wrong_types(("job_parameters", "resources"), (None, {})),
    *_wrong_types(("job_parameters", "resources", "limits"), ({},)),
    *_wrong_types(("job_parameters", "resources", "limits", "cpu"), ()),
    *_wrong_types(("job_parameters", "timeout_seconds"), (5, None)),
    *_wrong_types(("job_parameters", "retries"), (5, None)),
    *_wrong_types(("job_parameters", "input_zip"), (None,)),
]


@pytest.mark.parametrize(("path", "value"), FIELDS)
def test_wrong_types_for_every_field(fn, nothing_left, path, value):
    body: dict[str, Any] = {"job_parameters": {"docker_image": "alpine:3"}}
    container = body
    for key in path[:-1]:
        container = container.setdefault(key, {})
    container[path[-1]] = value
    code, answer = post(fn, body)
    assert (code, answer["error"]) == (400, "InvalidParameters"), answer
    # The refusal names the field, or the object holding it when that has the wrong type.
    assert path[0] in answer["data"], answer
    nothing_left()


@pytest.mark.parametrize("body", [[], "job", 5, None, True, [params()]], ids=json.dumps)
def test_a_body_that_is_not_an_object(fn, nothing_left, body):
    data = json.dumps(body).encode()
    answer = send(fn, "POST", "/batch/", data=data, content_type="application/json")
    assert refused(answer) == "Request body must be a JSON object"
    nothing_left()


# -- content types -----------------------------------------------------------------------------

JSON_BODY = json.dumps(params()).encode()


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (JSON_BODY, "text/plain"),
        (JSON_BODY, "application/xml"),
        (b"job_parameters=alpine", "application/x-www-form-urlencoded"),
        (b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
        (JSON_BODY, "application/octet-stream"),
        (b"", "application/json"),
        (b"{'single': 'quotes'}", "application/json"),
        (b'{"a": 1,}', "application/json"),
        (b"\xff\xfe\xfd", "application/json"),
        (JSON_BODY + b"trailing", "application/json"),
        (b'{"a": NaN', "application/json"),
    ],
    ids=[
        "text",
        "xml",
        "form",
        "multipart",
        "octet-stream",
        "empty",
        "single-quotes",
        "trailing-comma",
        "not-utf8",
        "trailing-data",
        "truncated",
    ],
)
def test_bodies_that_are_not_json(fn, nothing_left, data, content_type):
    message = refused(send(fn, "POST", "/batch/", data=data, content_type=content_type))
    assert message.startswith(("Malformed JSON", "Content-Type must be application/json"))
    nothing_left()


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (JSON_BODY, "application/json; charset=utf-8"),
        (JSON_BODY, "application/vnd.api+json"),
        (JSON_BODY.decode().encode("utf-16"), "application/json"),
    ],
    ids=["charset", "suffix", "utf-16"],
)
def test_json_in_other_spellings_is_accepted(fn, nothing_left, data, content_type):
    code, answer = send(fn, "POST", "/batch/", data=data, content_type=content_type)
    assert code == 200, answer
    nothing_left(answer["data"]["id"])


# -- routes and methods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/batches/",
        "/batch/x/y",
        f"/batch/{JOB_ID}/kill",
        "/api/batch/",
        "/robots.txt",
        "/favicon.ico",
        "/%0A",
        "/" + "x" * 5000,
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_routes(fn, nothing_left, path, method):
    code, answer = send(fn, method, path, json=params())
    assert (code, answer["error"], answer["data"]) == (404, "NotFound", ""), answer
    nothing_left()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/batch/"),
        ("PATCH", "/batch/"),
        ("DELETE", "/batch/"),
        ("POST", f"/batch/{JOB_ID}"),
        ("PUT", f"/batch/{JOB_ID}"),
        ("OPTIONS", f"/batch/{JOB_ID}"),
        ("TRACE", "/batch/"),
        ("HEAD", "/batch/"),
        ("PROPFIND", "/batch/"),
    ],
)
def test_methods_a_path_does_not_serve(fn, nothing_left, method, path):
    response = fn.clients["batch_api"].open(path, method=method, json=params())
    assert response.status_code == 405
    assert_documented(method, path, response)  # the envelope, and Allow as documented
    nothing_left()
