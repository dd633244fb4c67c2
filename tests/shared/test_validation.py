"""Create requests: field-level errors in the earlier API's shape; nothing the cluster rejects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.errors import InvalidParameters
from shared.model.validation import (
    MAX_DERIVED_NAMES,
    MAX_NAME,
    NAME_RE,
    derived_name,
    derived_names,
    valid_image,
    validate_create,
)
from shared.quantity import parse_quantity


def errors_of(body) -> Any:
    with pytest.raises(InvalidParameters) as caught:
        validate_create(body)
    return caught.value.data


def test_missing_image_reads_as_before():
    assert errors_of({"job_parameters": {}}) == {
        "job_parameters": {"docker_image": "Field is required"}
    }
    assert errors_of({}) == {"job_parameters": {"docker_image": "Field is required"}}


def test_a_minimal_request_and_the_earlier_sample_status_are_accepted():
    request = validate_create({"status": "created", "job_parameters": {"docker_image": "python"}})
    assert request.job_parameters == {"docker_image": "python"}
    assert request.name is None and request.input_zip is None


@pytest.mark.parametrize("field", ["id", "created", "start_time", "stop_time", "output_file_url"])
def test_read_only_and_unknown_fields_are_refused(field):
    body = {field: 1, "job_parameters": {"docker_image": "alpine"}}
    assert errors_of(body) == {field: "Unknown field"}


def test_a_null_status_is_the_default_as_the_earlier_test_client_sends_it():
    request = validate_create({"status": None, "job_parameters": {"docker_image": "python"}})
    assert request.job_parameters == {"docker_image": "python"}


@pytest.mark.parametrize("status", ["succeeded", "running", "", "Created", 0, False, [], {}])
def test_status_other_than_created_is_refused(status):
    assert errors_of({"status": status, "job_parameters": {"docker_image": "a"}}) == {
        "status": "Read-only field"
    }


def test_unknown_job_parameters_are_refused():
    body = {"job_parameters": {"docker_image": "a", "some_key": "x"}}
    assert errors_of(body) == {"job_parameters": {"some_key": "Unknown field"}}


@pytest.mark.parametrize(
    "name",
    ["UPPER", "-lead", "trail-", "under_score", "dot.ted", "a" * (MAX_NAME + 1), "ü", 7],
)
def test_bad_names(name):
    assert "name" in errors_of({"name": name, "job_parameters": {"docker_image": "a"}})


def test_name_at_the_limit_is_accepted():
    assert validate_create({"name": "a" * MAX_NAME, "job_parameters": {"docker_image": "a"}}).name


@pytest.mark.parametrize(
    "image",
    [
        "python",
        "python:3.12-slim",
        "gcr.io/project/image:tag",
        "localhost:5000/x/y",
        "us-docker.pkg.dev/p/r/img@sha256:" + "a" * 64,
        "library/alpine",
    ],
)
def test_valid_images(image):
    assert valid_image(image)


@pytest.mark.parametrize(
    "image", ["", "Python", "has space", "a:b:c", "-x", "x/-y", "img@sha256:xyz", "a" * 256]
)
def test_invalid_images(image):
    assert not valid_image(image)


def test_environment_names_and_values():
    body = {
        "job_parameters": {
            "docker_image": "a",
            "environment_variables": {"OK": "1", "1BAD": "x", "A=B": "y", "N": 3, "L": [1]},
        }
    }
    assert errors_of(body)["job_parameters"]["environment_variables"] == {
        "1BAD": "Invalid name: use letters, digits, '_', '-' or '.', not starting with a digit",
        "A=B": "Invalid name: use letters, digits, '_', '-' or '.', not starting with a digit",
        "L": "Value must be a string",
    }
    ok = validate_create(
        {"job_parameters": {"docker_image": "a", "environment_variables": {"N": 3, "T": True}}}
    )
    assert ok.job_parameters["environment_variables"] == {"N": "3", "T": "true"}


def test_resources():
    good = {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "0.25", "memory": "64Mi"},
    }
    assert validate_create({"job_parameters": {"docker_image": "a", "resources": good}})
    bad = {
        "limits": {"cpu": "lots", "gpu": "1", "memory": "1Gi"},
        "requests": {"memory": "2Gi"},
        "extra": {},
    }
    assert errors_of({"job_parameters": {"docker_image": "a", "resources": bad}}) == {
        "job_parameters": {
            "resources": {
                "limits": {
                    "cpu": "Must be a positive Kubernetes quantity such as '500m' or '128Mi'",
                    "gpu": "Unknown resource: use 'cpu' or 'memory'",
                },
                "requests": {"memory": "Must be less than or equal to the limit"},
                "extra": "Unknown field",
            }
        }
    }


def test_quantities():
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("128Mi") == 128 * 2**20
    assert parse_quantity("1e3") == 1000
    assert parse_quantity("-1") is None
    assert parse_quantity("1.2.3") is None


@pytest.mark.parametrize(
    ("field", "value"), [("timeout_seconds", 0), ("retries", -1), ("retries", True)]
)
def test_limits_of_timeout_and_retries(field, value):
    assert (
        field
        in errors_of({"job_parameters": {"docker_image": "a", field: value}})["job_parameters"]
    )


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("python", "python-1527121792553"),
        ("python:3.11", "python-3-11-1527121792553"),
        ("gcr.io/my-proj/my-image:v1", "gcr-io-my-proj-my-image-v1-1527121792553"),
        ("GCR.io/p/My_Image:3.1", "gcr-io-p-my-image-3-1-1527121792553"),
        ("localhost:5000/a__b--c", "localhost-5000-a-b-c-1527121792553"),
        (
            "alpine@sha256:" + "ab" * 32,
            "alpine-sha256-" + "ab" * 13 + "a-1527121792553",
        ),
    ],
)
def test_derived_name_is_the_slug_of_the_whole_image(image, name):
    assert derived_name(image, 1527121792553) == name
    assert len(name) <= MAX_NAME and NAME_RE.fullmatch(name)


@pytest.mark.parametrize("image", ["x" * 100, "a/" + "b-" * 60 + "c", "registry.example.com/" * 5])
def test_a_long_derived_name_cuts_the_slug_not_the_timestamp(image):
    name = derived_name(image.rstrip("/"), 1527121792553)
    assert len(name) <= MAX_NAME and NAME_RE.fullmatch(name), name
    assert name.endswith("-1527121792553") and "--" not in name


def test_derived_names_move_on_in_the_same_format():
    """The first is the name of the creation time; each next one is of a later millisecond,
    further on after each taken name, so that creates of one millisecond spread out."""
    names = list(derived_names("alpine:3", 1527121792553))
    assert names[0] == "alpine-3-1527121792553" and len(names) == MAX_DERIVED_NAMES
    stamps = [int(name.removeprefix("alpine-3-")) for name in names]
    steps = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    assert all(1 <= step <= 2**attempt for attempt, step in enumerate(steps)), steps
    assert all(len(name) <= MAX_NAME and NAME_RE.fullmatch(name) for name in names)


@pytest.mark.parametrize("name", ["abc\n", "abc\r", "a\nb"])
def test_a_trailing_newline_is_not_part_of_a_valid_name(name):
    assert "name" in errors_of({"name": name, "job_parameters": {"docker_image": "a"}})


@pytest.mark.parametrize("image", ["alpine\n", "alpine:\u00e9", "alpine:3\n"])
def test_images_are_ascii_to_their_end(image):
    assert not valid_image(image)


@pytest.mark.parametrize("image", ["alpine:Latest", "alpine:V1.2", "img@sha256:" + "A" * 64])
def test_uppercase_tags_and_digests_without_a_registry(image):
    assert valid_image(image)


@pytest.mark.parametrize("quantity", ["1\n", "1e999999999", "1e-999999999"])
def test_quantities_that_no_cluster_takes(quantity):
    resources = {"limits": {"cpu": quantity}}
    errors = errors_of({"job_parameters": {"docker_image": "a", "resources": resources}})
    assert errors["job_parameters"]["resources"]["limits"]["cpu"].startswith("Must be a positive")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"A\n": "x"}, "Invalid name"),
        ({"__x__": "x"}, "Names that start and end with '__' are reserved"),
        ({".": "x"}, "Invalid name: must not be '.'"),
        ({"..x": "x"}, "Invalid name: must not be '.'"),
        ({"N" * 257: "x"}, "Name must be at most 256 characters"),
        ({"A": "x\x00y"}, "Value must not contain NUL characters"),
    ],
)
def test_environment_names_and_values_the_backends_refuse(env, reason):
    body = {"job_parameters": {"docker_image": "a", "environment_variables": env}}
    (message,) = errors_of(body)["job_parameters"]["environment_variables"].values()
    assert message.startswith(reason)


def test_environment_total_size():
    env = {f"V{i}": "x" * 30_000 for i in range(9)}  # 270 kB
    body = {"job_parameters": {"docker_image": "a", "environment_variables": env}}
    message = errors_of(body)["job_parameters"]["environment_variables"]
    assert message == "Names and values must total at most 262144 bytes (UTF-8)"
    env.popitem()
    assert validate_create(body)


def test_whole_numbers_written_as_floats():
    params = {"docker_image": "a", "timeout_seconds": 60.0, "retries": 2.0}
    assert validate_create({"job_parameters": params}).job_parameters == {
        "docker_image": "a",
        "timeout_seconds": 60,
        "retries": 2,
    }
    assert (
        "retries"
        in errors_of({"job_parameters": {"docker_image": "a", "retries": 1.5}})["job_parameters"]
    )


@pytest.mark.parametrize("empty", ["", "  \n"])
def test_an_empty_input_zip_is_refused_as_no_zip(empty):
    with pytest.raises(InvalidParameters) as refused:
        validate_create({"job_parameters": {"docker_image": "alpine", "input_zip": empty}})
    assert refused.value.data == {
        "job_parameters": {
            "input_zip": "Not a zip: it is empty (leave input_zip out for a job without input)"
        }
    }
    assert validate_create({"job_parameters": {"docker_image": "a", "input_zip": None}})
