"""The URLs the bucket adapter hands out: the stage-in URL (signed with a key file, signed
through IAM by a key-less identity, or the emulator's) and the failures when signing
cannot be done."""

from __future__ import annotations

import time
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from google.auth import compute_engine
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.oauth2 import service_account

from shared.cloud.bucket import V4_MAX_LIFETIME, Bucket
from shared.errors import SigningError, SigningUnavailableError
from tests.fixtures.identity import Identity
from tests.fixtures.keys import key_credentials

EMAIL = "task-runner-api@example-project.iam.gserviceaccount.com"


def key_file_credentials() -> service_account.Credentials:
    """Credentials of a service-account key made up on the spot: they sign locally."""
    return key_credentials(EMAIL)


@pytest.fixture
def off_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)


@pytest.mark.usefixtures("off_emulator")
@pytest.mark.parametrize(("asked", "granted"), [(7200, 7200), (30 * 86400, V4_MAX_LIFETIME)])
def test_input_url_is_a_v4_signature_for_one_object(asked: int, granted: int) -> None:
    client = storage.Client(project="example-project", credentials=key_file_credentials())
    url = Bucket(client, "bkt").input_url("hello world-input.zip", asked)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc) == ("https", "storage.googleapis.com")
    assert parts.path == "/bkt/hello%20world-input.zip"
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == [str(granted)]
    assert query["X-Goog-Credential"][0].startswith(EMAIL + "/")
    assert len(query["X-Goog-Signature"][0]) == 512  # hex of a 2048-bit RSA signature


@pytest.mark.usefixtures("off_emulator")
def test_credentials_that_cannot_sign_are_a_signing_error() -> None:
    client = storage.Client(project="p", credentials=AnonymousCredentials())
    with pytest.raises(SigningError, match="signing a URL for in.zip"):
        Bucket(client, "bkt").input_url("in.zip", 3600)


def test_on_the_emulator_the_input_url_reads_the_object(storage_client, bucket: str) -> None:
    storage_client.bucket(bucket).blob("a b+c-input.zip").upload_from_string(b"PK\x05\x06")
    url = Bucket(storage_client, bucket).input_url("a b+c-input.zip", 60)
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == b"PK\x05\x06"


# -- the function's own identity: no key, signed by IAM signBlob ----------------------------


def function_client() -> storage.Client:
    """The client a deployed function builds: Application Default Credentials."""
    client = storage.Client(project="example-project")
    assert isinstance(client._credentials, compute_engine.Credentials)  # noqa: SLF001
    return client


def test_a_key_less_identity_signs_through_iam(google_identity: Identity, bucket: str) -> None:
    url = Bucket(function_client(), bucket, timeout=5).input_url("a b-input.zip", 3600)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Credential"][0].startswith(google_identity.email + "/")
    [payload] = google_identity.signed
    assert payload.startswith(b"GOOG4-RSA-SHA256\n")
    signature = bytes.fromhex(query["X-Goog-Signature"][0])
    google_identity.key.public_key().verify(signature, payload, PKCS1v15(), SHA256())


def test_the_signed_url_reads_the_object(google_identity: Identity, bucket: str) -> None:
    """With the storage endpoint overridden (here: fake-gcs-server), the URL points there."""
    client = function_client()
    client.bucket(bucket).blob("in-input.zip").upload_from_string(b"PK\x05\x06")
    url = Bucket(client, bucket, timeout=5).input_url("in-input.zip", 60)
    assert "X-Goog-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == b"PK\x05\x06"


def test_iam_refusing_to_sign_is_a_signing_error(google_identity: Identity) -> None:
    google_identity.answer = "403"
    with pytest.raises(SigningError, match="IAM signBlob") as refused:
        Bucket(function_client(), "bkt", timeout=5).input_url("in.zip", 3600)
    assert not isinstance(refused.value, SigningUnavailableError)


@pytest.mark.parametrize("answer", ["503", "stall"])
def test_iam_out_of_service_gives_up_within_the_call_timeout(
    google_identity: Identity, answer: str
) -> None:
    """Failures and silence are retried only until the call's timeout: the libraries
    alone would keep a create waiting for minutes."""
    google_identity.answer = answer
    started = time.monotonic()
    with pytest.raises(SigningUnavailableError):
        Bucket(function_client(), "bkt", timeout=1).input_url("in.zip", 3600)
    assert time.monotonic() - started < 30  # 1 s and a backoff wait; not minutes
    assert google_identity.sign_requests >= 1
