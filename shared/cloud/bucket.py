"""The Cloud Storage adapter: job input and output objects, and the URLs that read them."""

from __future__ import annotations

import datetime
import functools
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote

from shared.errors import BucketError, SigningError
from shared.settings import Settings

if TYPE_CHECKING:
    import requests
    from google.cloud import storage

T = TypeVar("T")
log = logging.getLogger(__name__)
UNSIGNED_RETRY_MS = 5 * 60 * 1000
V4_MAX_LIFETIME = 7 * 24 * 3600  # s: the longest a V4 signed URL may be valid
ZIP_CONTENT_TYPE = "application/zip"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"
RANGED_READ_CHUNK = 256 * 1024  # bytes a ranged read of a zip fetches at a time


class ObjectExistsError(BucketError):
    """The object is already there and was not overwritten."""


class ObjectGoneError(BucketError):
    """The object (or the generation asked for) is no longer there."""


@dataclass(frozen=True)
class ObjectInfo:
    generation: int
    size: int  # bytes


def storage_client(settings: Settings) -> storage.Client:
    """Emulator (STORAGE_EMULATOR_HOST), a key file (GC_CREDENTIALS_FILE_PATH), or ADC."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=settings.project or "local", credentials=AnonymousCredentials()
        )
    if settings.credentials_file:
        return storage.Client.from_service_account_json(
            settings.credentials_file, project=settings.project
        )
    return storage.Client(project=settings.project)


def _wrap(action: str, call: Callable[[], T]) -> T:
    from google.api_core import exceptions
    from google.auth.exceptions import TransportError
    from requests import RequestException

    try:
        return call()
    except exceptions.PreconditionFailed as error:
        raise ObjectExistsError(f"{action}: the object already exists") from error
    except (exceptions.GoogleAPIError, RequestException, TransportError) as error:
        raise BucketError(f"{action}: {error}") from error


class Bucket:
    def __init__(self, client: storage.Client, name: str, timeout: float = 15.0) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.client = client
        self.name = name
        self._timeout = timeout
        self.bucket = client.bucket(name)
        # Every call gives up after `timeout`, retries included: the library's defaults keep
        # retrying an unreachable Cloud Storage for two minutes, past any request's patience.
        self._call: dict[str, Any] = {
            "retry": DEFAULT_RETRY.with_timeout(timeout).with_delay(maximum=2.0),
            "timeout": timeout,
        }

    def upload_input(self, object_name: str, data: bytes, job_id: str) -> None:
        """Upload a job's input zip; never overwrites an existing object."""
        blob = self.bucket.blob(object_name)
        blob.metadata = {"job-id": job_id}
        _wrap(
            f"uploading {object_name}",
            lambda: blob.upload_from_string(
                data, content_type=ZIP_CONTENT_TYPE, if_generation_match=0, **self._call
            ),
        )

    def open_upload(self, object_name: str, job_id: str) -> str:
        """A resumable upload session for `object_name`, as the job's stage-out needs it.

        The session URI is the only thing the pod gets: it creates this one object (with
        ifGenerationMatch=0, so never over another), as a zip, with the job-id metadata,
        and needs no credentials. It stays valid a week, which bounds a job's timeout.
        """
        blob = self.bucket.blob(object_name)
        blob.metadata = {"job-id": job_id}
        url: str = _wrap(
            f"opening the upload of {object_name}",
            lambda: blob.create_resumable_upload_session(
                content_type=ZIP_CONTENT_TYPE,
                if_generation_match=0,
                checksum=None,
                **self._call,
            ),
        )
        return url

    def save_text(
        self, object_name: str, text: bytes, *, job_id: str, metadata: dict[str, str]
    ) -> bool:
        """Write a text object once; False if it was already there (never overwritten)."""
        blob = self.bucket.blob(object_name)
        blob.metadata = {"job-id": job_id, **metadata}
        try:
            _wrap(
                f"uploading {object_name}",
                lambda: blob.upload_from_string(
                    text, content_type=TEXT_CONTENT_TYPE, if_generation_match=0, **self._call
                ),
            )
        except ObjectExistsError:
            return False
        return True

    def read(self, object_name: str) -> tuple[bytes, dict[str, str]] | None:
        """An object's bytes and metadata, or None if it does not exist."""
        blob = _wrap(
            f"reading {object_name}", lambda: self.bucket.get_blob(object_name, **self._call)
        )
        if blob is None:
            return None
        from google.api_core import exceptions

        try:
            data = _wrap(f"reading {object_name}", lambda: blob.download_as_bytes(**self._call))
        except BucketError as error:
            if isinstance(error.__cause__, exceptions.NotFound):
                return None
            raise
        return data, dict(blob.metadata or {})

    def delete(self, object_name: str) -> bool:
        from google.api_core import exceptions

        try:
            _wrap(
                f"deleting {object_name}",
                lambda: self.bucket.blob(object_name).delete(**self._call),
            )
        except BucketError as error:
            if isinstance(error.__cause__, exceptions.NotFound):
                return False
            raise
        return True

    def probe(self) -> None:
        """The health check's read: list at most one object. It needs storage.objects.list,
        which the API's role holds (the bucket's own metadata needs storage.buckets.get,
        which it does not), and fails with 404 when the bucket does not exist."""
        _wrap(
            f"listing gs://{self.name} (health check)",
            lambda: list(self.client.list_blobs(self.bucket, max_results=1, **self._call)),
        )

    def metadata(self, object_name: str) -> dict[str, Any] | None:
        """The object's metadata (job-id, ...) if it exists, else None."""
        blob = _wrap(
            f"reading {object_name}", lambda: self.bucket.get_blob(object_name, **self._call)
        )
        if blob is None:
            return None
        return dict(blob.metadata or {})

    def object_info(self, object_name: str) -> ObjectInfo | None:
        """The object's current generation and size, or None if it does not exist."""
        blob = _wrap(
            f"reading {object_name}", lambda: self.bucket.get_blob(object_name, **self._call)
        )
        if blob is None:
            return None
        return ObjectInfo(generation=int(blob.generation or 0), size=int(blob.size or 0))

    def read_ranges(self, object_name: str, info: ObjectInfo, read: Callable[[BinaryIO], T]) -> T:
        """`read(file)` over one generation of the object, read in ranges as it seeks: a
        zip's central directory and one member cost a few small requests, whatever its
        size. ObjectGoneError if that generation was replaced or deleted meanwhile."""
        from google.api_core import exceptions

        blob = self.bucket.blob(object_name, generation=info.generation)

        def run() -> T:
            with blob.open(
                "rb",
                chunk_size=RANGED_READ_CHUNK,
                retry=self._call["retry"],
                timeout=self._timeout,
            ) as reader:
                return read(reader)

        try:
            return _wrap(f"reading {object_name}", run)
        except BucketError as error:
            if isinstance(error.__cause__, exceptions.NotFound):
                raise ObjectGoneError(f"{object_name}#{info.generation} is gone") from error
            raise

    def put_json(self, object_name: str, body: Any, metadata: dict[str, str]) -> None:
        """Write (or overwrite) a small JSON object."""
        blob = self.bucket.blob(object_name)
        blob.metadata = metadata
        data = json.dumps(body, ensure_ascii=False, indent=2).encode()
        _wrap(
            f"uploading {object_name}",
            lambda: blob.upload_from_string(data, content_type=JSON_CONTENT_TYPE, **self._call),
        )

    def output_url(self, object_name: str, lifetime: int) -> tuple[str, int | None]:
        """A URL the caller can fetch, and when it expires (epoch ms; None = never).

        A signed URL when the credentials can sign; against the emulator its download URL;
        otherwise an authenticated download URL that is signed again a few minutes later.
        """
        emulator = self._emulator_url(object_name)
        if emulator:
            return emulator, None
        lifetime = min(lifetime, V4_MAX_LIFETIME)
        expires_ms = int((datetime.datetime.now(datetime.UTC).timestamp() + lifetime) * 1000)
        try:
            return self._signed_url(self.bucket.blob(object_name), lifetime), expires_ms
        except SigningError as error:
            # No way to sign (say, user credentials): an authenticated download URL, and
            # another try at signing in a few minutes.
            log.warning("cannot sign the output URL: %s", error)
            plain = f"https://storage.googleapis.com/{self.name}/{quote(object_name)}"
            return plain, int(
                datetime.datetime.now(datetime.UTC).timestamp() * 1000
            ) + UNSIGNED_RETRY_MS

    def input_url(
        self,
        object_name: str,
        lifetime: int,
        *,
        bucket: str | None = None,
        generation: int | None = None,
    ) -> str:
        """A GET URL for a job's input that needs no identity, valid `lifetime` seconds: the
        job's own `<name>-input.zip`, or a user's `gs://` object in `bucket`.

        The stage-in container downloads with it, so no pod that runs user code needs
        access to the bucket. SigningError when the credentials cannot sign: an unsigned
        URL would be useless to a pod without an identity.
        """
        bucket = bucket or self.name
        emulator = self._emulator_url(object_name, bucket)
        if emulator:
            return f"{emulator}&generation={generation}" if generation else emulator
        return self._signed_url(
            self.client.bucket(bucket).blob(object_name), lifetime, generation=generation
        )

    def upload_url(self, object_name: str, lifetime: int, job_id: str) -> str:
        """Where a client PUTs a job's input zip (input_upload): a V4 signed URL for one
        PUT with `Content-Type: application/zip`, valid `lifetime` seconds.

        fake-gcs-server has no XML API to take a signed PUT, so against the emulator this is
        a resumable upload session instead, which takes the same single PUT.
        """
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return self.open_upload(object_name, job_id)
        blob = self.bucket.blob(object_name)
        return self._signed_url(blob, lifetime, method="PUT", content_type=ZIP_CONTENT_TYPE)

    def task_upload(self, prefix: str, job_id: str, lifetime: int, max_bytes: int) -> str:
        """How an array job's tasks upload their outputs, as JSON for OUTPUT_UPLOAD_PLAN:
        one plan for every task, made in one step whatever their number. Task i writes
        `prefix` + `i.zip` (the stager fills in `{index}` in `object`).

        - On Google Cloud, a V4 signed POST policy: a form upload of any object whose name
          starts with `prefix`, as a zip, with the job-id metadata, for `lifetime` seconds
          (https://cloud.google.com/storage/docs/xml-api/post-object-forms). A signed URL
          names one object, so a thousand tasks would need a thousand signatures.
        - On the emulator, which has no form uploads and checks no credentials, the JSON
          API's resumable upload: each task opens its own session.
        """
        obj = prefix + "{index}.zip"
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            start = f"{emulator.rstrip('/')}/upload/storage/v1/b/{self.name}/o"
            url = f"{start}?uploadType=resumable&ifGenerationMatch=0"
            plan = {"kind": "session", "url": url, "object": obj, "job_id": job_id}
            return json.dumps(plan)
        fields = self._post_policy(prefix, job_id, min(lifetime, V4_MAX_LIFETIME), max_bytes)
        url = f"https://storage.googleapis.com/{self.name}/"
        return json.dumps({"kind": "form", "url": url, "object": obj, "fields": fields})

    def _post_policy(
        self, prefix: str, job_id: str, lifetime: int, max_bytes: int
    ) -> dict[str, str]:
        """The form fields of a V4 POST policy for keys under `prefix`. google-cloud-storage
        only signs policies for one exact key, so the policy is built here, as its
        generate_signed_post_policy_v4 does, and signed like the URLs (_signing)."""
        import base64
        import binascii

        credentials = self._signing()
        now = datetime.datetime.now(datetime.UTC)
        timestamp, datestamp = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        credential = f"{credentials.signer_email}/{datestamp}/auto/storage/goog4_request"
        fields = {
            "Content-Type": ZIP_CONTENT_TYPE,
            "x-goog-meta-job-id": job_id,
            "x-goog-date": timestamp,
            "x-goog-credential": credential,
            "x-goog-algorithm": "GOOG4-RSA-SHA256",
        }
        conditions: list[Any] = [
            {"bucket": self.name},
            ["starts-with", "$key", prefix],
            ["content-length-range", 0, max_bytes],
            *({key: value} for key, value in fields.items()),
        ]
        expires = (now + datetime.timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
        policy = json.dumps(
            {"conditions": conditions, "expiration": expires}, separators=(",", ":")
        )
        encoded = base64.b64encode(policy.encode())
        try:
            signature = binascii.hexlify(credentials.sign_bytes(encoded)).decode()
        except SigningError as error:
            raise type(error)(f"signing the output policy of {prefix}*: {error}") from error
        return {**fields, "policy": encoded.decode(), "x-goog-signature": signature}

    def _signing(self) -> Any:
        """Credentials that sign: a key file's own, or IAM signBlob as the function's
        service account, within the call timeout (shared/cloud/signing.py)."""
        from shared.cloud.signing import iam_signing_credentials

        credentials = self.client._credentials  # noqa: SLF001 - the client's own credentials
        if hasattr(credentials, "sign_bytes") and getattr(credentials, "signer", None):
            return credentials
        return iam_signing_credentials(credentials, self._session, self._timeout)

    def listing(self, prefix: str) -> dict[str, dict[str, str]]:
        """The objects under `prefix` and their metadata (one listing, paged by the client)."""
        return _wrap(
            f"listing {prefix}*",
            lambda: {
                blob.name: dict(blob.metadata or {})
                for blob in self.client.list_blobs(self.bucket, prefix=prefix, **self._call)
            },
        )

    def object_size(self, bucket: str, object_name: str) -> int | None:
        """The size of a user's `gs://bucket/object`, or None if it does not exist.
        BucketError (Forbidden as its cause) when the functions may not read it."""
        blob = _wrap(
            f"reading gs://{bucket}/{object_name}",
            lambda: self.client.bucket(bucket).get_blob(object_name, **self._call),
        )
        return None if blob is None else int(blob.size or 0)

    def _emulator_url(self, object_name: str, bucket: str | None = None) -> str | None:
        """The emulator's download URL (it checks no signature), or None off the emulator."""
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if not emulator:
            return None
        path = f"/download/storage/v1/b/{bucket or self.name}/o/{quote(object_name, safe='')}"
        return f"{emulator.rstrip('/')}{path}?alt=media"

    def _signed_url(
        self,
        blob: storage.Blob,
        lifetime: int,
        *,
        method: str = "GET",
        content_type: str | None = None,
        generation: int | None = None,
    ) -> str:
        """A V4 signed URL. A key file signs locally; other service-account credentials
        (the function's own) sign through the IAM signBlob API within the call timeout.
        SigningError when they cannot (SigningUnavailableError: IAM did not answer)."""
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        expiration = datetime.timedelta(seconds=min(lifetime, V4_MAX_LIFETIME))
        try:
            credentials = self._signing()
            return str(
                blob.generate_signed_url(
                    version="v4",
                    expiration=expiration,
                    credentials=credentials,
                    method=method,
                    content_type=content_type,
                    generation=generation,
                )
            )
        except SigningError as error:
            raise type(error)(f"signing a URL for {blob.name}: {error}") from error
        except (GoogleAPIError, GoogleAuthError) as error:
            raise SigningError(f"signing a URL for {blob.name}: {error}") from error

    @functools.cached_property
    def _session(self) -> requests.Session:
        """The HTTP session of IAM signing, made on first use (the emulator never signs)."""
        import requests

        return requests.Session()
