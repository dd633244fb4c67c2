"""A job's input by reference (`input_url`): checked at create, turned into the URL that
stage-in reads when the job is deployed.

- `gs://BUCKET/OBJECT`: the caller must be allowed it (an object of its own accounts' jobs,
  or of a bucket its account lists), and the functions must be able to read it. The create
  checks that it exists and is at most MAX_INPUT_URL_BYTES; the deploy signs a download URL
  for it, so the pod needs no identity.
- `https://...`: fetched by stage-in as it is. Its host must resolve only to public
  addresses, never loopback, link-local (the metadata server) or private ones, unless
  ALLOW_PRIVATE_INPUT_URLS (which also allows http) is set. Stage-in checks again before
  each request and redirect, since a name may resolve elsewhere by then.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.cloud.backends import Backends
from shared.contract.addresses import AddressRefusedError, check_url
from shared.errors import BucketError, InvalidParameters
from shared.model.access import Caller, Role

FIELD = "input_url"


@dataclass(frozen=True)
class StageInSource:
    url: str  # what stage-in downloads
    public: bool  # a user's own URL: stage-in checks its address before each request


def _refuse(message: str) -> InvalidParameters:
    return InvalidParameters(data={"job_parameters": {FIELD: message}})


def split_gs(url: str) -> tuple[str, str]:
    bucket, _, name = url.removeprefix("gs://").partition("/")
    return bucket, name


def check(url: str, backends: Backends, caller: Caller, account_id: str | None) -> None:
    """InvalidParameters naming `input_url` unless the create may accept it."""
    settings = backends.settings
    if url.startswith("gs://"):
        bucket, name = split_gs(url)
        _may_read(bucket, name, backends, caller, account_id)
        try:
            size = backends.bucket.object_size(bucket, name)
        except BucketError as error:
            from google.api_core import exceptions

            if isinstance(error.__cause__, exceptions.Forbidden | exceptions.Unauthorized):
                raise _refuse(f"The service may not read {url}") from None
            if isinstance(error.__cause__, exceptions.NotFound):  # the bucket itself
                raise _refuse(f"No such object: {url}") from None
            raise
        if size is None:
            raise _refuse(f"No such object: {url}")
        if size > settings.max_input_url_bytes:
            raise _refuse(f"{url} is {size} bytes, more than {settings.max_input_url_bytes}")
        return
    # A slow DNS server must not hold the create past the backends' own timeout.
    lookup = _lookups().submit(check_url, url, allow_private=settings.allow_private_inputs)
    try:
        lookup.result(timeout=settings.backend_timeout)
    except AddressRefusedError as refused:
        raise _refuse(f"Refused: {refused}") from None
    except TimeoutError:
        raise _refuse(
            f"Refused: its host did not resolve within {settings.backend_timeout:g} s"
        ) from None


def _may_read(
    bucket: str, name: str, backends: Backends, caller: Caller, account_id: str | None
) -> None:
    """The caller's own right to the object, never the functions' (operators may read
    anything the functions can):

    - an object of the jobs bucket: one of a job of an account the caller belongs to, or
      one under `submissions/<account_id>/` of such an account;
    - an object of another bucket: the job's account must list the bucket (`buckets`,
      which operators set).
    """
    if caller.operator:
        return
    url = f"gs://{bucket}/{name}"
    if bucket != backends.settings.bucket:
        account = backends.accounts.get(account_id) if account_id is not None else None
        if account is None or bucket not in account.buckets:
            raise _refuse(
                f"Refused: account {account_id} may not read bucket {bucket} (an operator "
                "lists the buckets it may); hand over a signed https:// URL instead"
            )
        return
    owner = _owner(name, backends)
    if owner is None or not caller.can(owner, Role.VIEWER):
        raise _refuse(f"Refused: {url} is not of an account of yours")


def _owner(name: str, backends: Backends) -> str | None:
    """The account an object of the jobs bucket belongs to: that of the job it is of (its
    `job-id` metadata), or the one its submissions/ folder names."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "submissions":
        return parts[1]
    metadata = backends.bucket.metadata(name)
    job_id = (metadata or {}).get("job-id")
    job = backends.store.get(job_id) if isinstance(job_id, str) else None
    return job.account_id if job is not None else None


@functools.cache
def _lookups() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")


def stage_in_source(url: str, backends: Backends, lifetime: int) -> StageInSource:
    """Where stage-in reads a checked `input_url`: a signed URL valid `lifetime` seconds
    for a gs:// object, the URL itself otherwise."""
    if url.startswith("gs://"):
        bucket, name = split_gs(url)
        return StageInSource(backends.bucket.input_url(name, lifetime, bucket=bucket), False)
    return StageInSource(url, public=not backends.settings.allow_private_inputs)
