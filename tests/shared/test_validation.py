"""Create requests: field-level errors in the earlier API's shape; nothing the cluster rejects."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.errors import InvalidParameters
from shared.validation import (
    MAX_NAME,
    derived_name,
    parse_quantity,
    valid_image,
    validate_create,
)


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


def test_status_other_than_created_is_refused():
    assert errors_of({"status": "succeeded", "job_parameters": {"docker_image": "a"}}) == {
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


def test_derived_name():
    assert derived_name("python", 1527121792553) == "python-1527121792553"
    assert derived_name("gcr.io/p/My_Image:3.1", 1) == "my-image-1"
    long = derived_name("x" * 100, 1527121792553)
    assert len(long) == MAX_NAME and long.endswith("-1527121792553")
