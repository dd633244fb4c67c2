"""Stage-out's upload: the output zip, streamed through a Cloud Storage resumable upload
session that the functions opened for this one object (OUTPUT_UPLOAD_URL).

The session URI is a capability: it needs no credentials and creates exactly one object,
with the name, content type, metadata and ifGenerationMatch=0 precondition chosen when it
was opened. Only the standard library; memory is one request's worth of zip.

The protocol, as Cloud Storage documents it ("Perform resumable uploads"):

- Each request is a PUT of the next bytes with `Content-Range: bytes START-END/*`, a
  multiple of 256 KiB long, and the last one says the total: `bytes START-END/TOTAL`.
- 308 means "not finished": its `Range: bytes=0-N` says what the session has persisted
  (nothing when absent), which may be less than was sent. The bytes not persisted are sent
  again, from N+1. 200 or 201 means the object was created; the body is its resource.
- The last request carries `X-Goog-Hash: md5=...` of the whole zip: Cloud Storage refuses to
  create an object whose bytes do not hash to it.
- Every request says `Content-Type: application/zip`, as Google's client libraries do.

Normal path: one PUT per chunk and nothing else; no status query.

Retry path: a request that fails with a connection error, a timeout, 408, 429 or 5xx (or
is answered by a 308 that persisted none of it) is retried with exponential backoff (1 s
doubling to 30 s, or Retry-After) for at most `retry_seconds` of trouble over the whole
upload, then TransientStorageError (exit 75).
Before sending again, the stager asks the session what it persisted, as documented
("Check the status of a resumable upload"): a PUT with an empty body and
`Content-Range: bytes */*`. A 308 gives the offset to resume from (the in-memory chunk
still holds the bytes from there); a 200/201 says the object is complete. When the
connection could not even be opened, nothing reached the server and the request is simply
sent again.

Outcomes: success only when the object the session reports is this attempt's zip (same
size, same MD5): a session already completed with exactly these bytes (an earlier attempt
of the same pod, or a request whose answer was lost) is success too. 412 is
OutputExistsError; 404, 410 and 499 (the session is gone) and 400, 401, 403 (refused) are
UploadSessionError: both exit 73, like MixedAttemptsError below.

An earlier attempt of the same job (a pod stopped mid-upload, its job run again by a new
pod, whose zip differs) may have left bytes in the session. They are never mixed with this
attempt's: a session that reports more persisted bytes than this process sent, a 308 whose
object resource carries an MD5 other than that of the bytes sent (fake-gcs-server appends
instead of deduplicating, and says so that way), Cloud Storage's refusal of the final
request's X-Goog-Hash, or a completed object that is not this zip, are MixedAttemptsError
(exit 73) with a message saying so.

fake-gcs-server differs (measured with 1.54): a status query finalizes the object with the
bytes it holds instead of answering 308, a finished session answers 404, bytes sent twice
are appended twice, and the session's ifGenerationMatch is not enforced. The normal path is
the same on both; after a failure that may have reached the server, the status query
finalizes a truncated object there, which the stager reports (exit 73) instead of success.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.contract.exits import StagerError
from shared.stager.errors import (
    MixedAttemptsError,
    OutputExistsError,
    ProtocolError,
    TransientStorageError,
    UploadSessionError,
)
from shared.stager.fetch import where

log = logging.getLogger(__name__)

QUANTUM = 256 * 1024  # every request but the last carries a multiple of this
ZIP_CONTENT_TYPE = "application/zip"
SOCKET_TIMEOUT = 60.0  # s without progress on the socket before a request counts as failed
IDLE_REUSE = 30.0  # s: an idle connection older than this is reopened, not reused
FIRST_PAUSE = 1.0  # s: backoff after the first failure, doubled each time
MAX_PAUSE = 30.0
TRANSIENT_STATUS = frozenset({408, 429, *range(500, 600)})  # every 5xx
GONE_STATUS = frozenset({404, 410, 499})
REFUSED_STATUS = frozenset({400, 401, 403})
_RANGE = re.compile(r"\s*bytes[= ]0-(\d+)\s*$", re.IGNORECASE)
_HASH_WORDS = ("hash", "md5", "checksum", "crc32c")


def describe(url: str) -> str:
    """`gs://BUCKET/NAME` for a JSON API upload session URI, never its upload_id."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    bucket = name = None
    if "b" in segments and segments.index("b") + 1 < len(segments):
        bucket = unquote(segments[segments.index("b") + 1])
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if key == "name" and value:
            name = unquote(value)
    if bucket and name:
        return f"gs://{bucket}/{name}"
    return where(url)


def _b64_md5(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class Answer:
    """What the session said to one request."""

    status: int
    persisted: int  # from `Range: bytes=0-N` (N + 1); 0 without one
    resource: dict[str, Any] | None  # the JSON body: an object resource or an error
    retry_after: float | None

    def message(self) -> str:
        """The server's error message, short, for the one line a user reads."""
        error = (self.resource or {}).get("error")
        text = error.get("message") if isinstance(error, dict) else None
        return str(text or "").strip().splitlines()[0][:200] if text else ""


class Unreachable(Exception):  # noqa: N818 - the request never left this process
    pass


class Lost(Exception):  # noqa: N818 - sent, at least in part; what the server did is unknown
    pass


class Connection:
    """One keep-alive HTTP(S) connection to the session's host, reopened after any error."""

    def __init__(self, url: str, *, timeout: float = SOCKET_TIMEOUT) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0.0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _open(self) -> http.client.HTTPConnection:
        if self._conn is not None and time.monotonic() - self._used < IDLE_REUSE:
            return self._conn
        self.close()
        conn: http.client.HTTPConnection
        if self._https:
            context = ssl.create_default_context()
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout, context=context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.connect()
        except OSError as error:
            conn.close()
            raise Unreachable(f"cannot connect: {error}") from None
        self._conn = conn
        return conn

    def put(self, body: bytes | memoryview, headers: dict[str, str]) -> Answer:
        return _answer(*self._request("PUT", body, headers))

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        """One POST (opening a session, or a form upload): its status and Location."""
        response, _ = self._request("POST", body, headers)
        return response.status, response.getheader("Location")

    def _request(
        self, method: str, body: bytes | memoryview, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        conn = self._open()
        try:
            # A memoryview goes to the socket as it is (http.client copies `bytes` bodies).
            conn.request(method, self._target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise Lost(str(error) or type(error).__name__) from None
        finally:
            self._used = time.monotonic()
        if response.will_close:
            self.close()
        return response, data


def _answer(response: http.client.HTTPResponse, data: bytes) -> Answer:
    persisted = 0
    if (match := _RANGE.match(response.getheader("Range") or "")) is not None:
        persisted = int(match.group(1)) + 1
    retry_after = None
    raw = (response.getheader("Retry-After") or "").strip()
    if raw.isdigit():
        retry_after = float(raw)
    resource = None
    if data:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            resource = parsed
    return Answer(response.status, persisted, resource, retry_after)


@dataclass(frozen=True)
class Stored:
    """The object the session created: this attempt's zip."""

    name: str  # gs://bucket/name
    size: int
    md5: str
    already_complete: bool  # the session was complete before this attempt's last request
    requests: int


class ResumableUpload:
    """A write-only stream (archive.Sink) that becomes the session's object at `finish()`.

    Holds the bytes from the last offset the session confirmed up to what was written, in
    one chunk-sized buffer: a write that does not fit waits for the chunk to be sent.
    """

    def __init__(
        self,
        url: str,
        *,
        chunk_size: int,
        retry_seconds: float,
        connection: Connection | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if chunk_size <= 0 or chunk_size % QUANTUM:
            raise ValueError(f"chunk_size must be a positive multiple of {QUANTUM}")
        self.name = describe(url)
        self._http = connection or Connection(url)
        self._chunk = chunk_size
        self._budget = retry_seconds
        self._sleep = sleep
        self._clock = clock
        # One chunk, allocated once and never resized: bytes [acked, acked + held).
        self._view = memoryview(bytearray(chunk_size))
        self._held = 0
        self._acked = 0  # bytes the session confirmed it persisted
        self._written = 0  # bytes of zip written so far
        self._sent = 0  # end of the furthest range this process has sent
        self._final_sent = False  # a request with the total size went out
        self._md5 = hashlib.md5(usedforsecurity=False)  # of [0, acked); of all once complete
        self._complete: dict[str, Any] | None = None  # the object resource, once complete
        self._complete_early = False
        self._failed: BaseException | None = None
        self._requests = 0
        self._trouble_since: float | None = None  # when the current run of failures began
        self._trouble_spent = 0.0  # s of earlier runs of failures
        self._pause = FIRST_PAUSE

    # -- the Sink that archive.write_zip writes into --------------------------------------

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Nothing: only a full chunk or the end of the zip can be sent."""

    def close(self) -> None:
        """Drop the connection. Never finalizes: only `finish()` creates the object."""
        self._http.close()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._failed is not None:
            # ZipFile.close() writes its central directory even after a failed write.
            raise self._failed
        with memoryview(data) as given, given.cast("B") as incoming:
            size = incoming.nbytes
            self._written += size
            try:
                self._take(incoming)
            except Exception as error:
                self._failed = error
                raise
        return size

    def _take(self, incoming: memoryview) -> None:
        taken = 0
        while taken < len(incoming):
            if self._complete is not None:
                self._md5.update(incoming[taken:])  # only to compare with the session's object
                return
            if self._held == self._chunk:
                # A full chunk with more bytes to come: not the last request, which thus
                # always carries some bytes.
                self._send(self._chunk, final=False)
                continue
            n = min(len(incoming) - taken, self._chunk - self._held)
            self._view[self._held : self._held + n] = incoming[taken : taken + n]
            self._held += n
            taken += n

    def finish(self) -> Stored:
        """Send the rest with the total size, and check what the session created."""
        if self._failed is not None:
            raise self._failed
        try:
            while self._complete is None:
                self._send(self._held, final=True)
            return self._verify()
        except Exception as error:
            self._failed = error
            raise
        finally:
            self._http.close()

    # -- the protocol -----------------------------------------------------------------------

    def _send(self, size: int, *, final: bool) -> None:
        """One request of the `size` bytes from the confirmed offset; after a transient
        failure, a pause and the session's own account of what it persisted."""
        start, end = self._acked, self._acked + size
        headers = {"Content-Type": ZIP_CONTENT_TYPE}
        if final:
            total = self._written
            span = f"{start}-{end - 1}" if size else "*"  # "*": every byte is already there
            headers["Content-Range"] = f"bytes {span}/{total}"
            whole = self._md5.copy()
            whole.update(self._view[: self._held])
            headers["X-Goog-Hash"] = f"md5={_b64_md5(whole.digest())}"
            self._final_sent = True
        else:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/*"
        headers["Content-Length"] = str(size)
        self._sent = max(self._sent, end)
        self._requests += 1
        began = self._clock()
        try:
            with self._view[:size] as body:
                answer = self._http.put(body, headers)
        except Unreachable as error:
            self._trouble(str(error), began=began)  # nothing reached the server: send again
            return
        except Lost as error:
            self._trouble(f"connection lost: {error}", began=began)
            self._recover()
            return
        if answer.status in TRANSIENT_STATUS:
            said = f"HTTP {answer.status} {answer.message()}".strip()
            self._trouble(said, answer.retry_after, began=began)
            self._recover()
            return
        self._settle(answer, sent=size, final=final)

    def _recover(self) -> None:
        """Ask the session what it persisted (a status query), retried like any request."""
        while True:
            self._requests += 1
            try:
                answer = self._http.put(b"", {"Content-Range": "bytes */*", "Content-Length": "0"})
            except (Unreachable, Lost) as error:
                self._trouble(f"status query failed: {error}")
                continue
            if answer.status in TRANSIENT_STATUS:
                self._trouble(f"status query: HTTP {answer.status}", answer.retry_after)
                continue
            self._settle(answer, sent=0, final=False)
            return

    def _settle(self, answer: Answer, *, sent: int, final: bool) -> None:
        if answer.status in (200, 201):
            self._untroubled()
            self._completed(answer.resource or {})
        elif answer.status == 308:
            self._advance(answer, sent=sent)
        else:
            raise self._refusal(answer, final=final)

    def _advance(self, answer: Answer, *, sent: int) -> None:
        persisted = answer.persisted
        if persisted > self._sent:
            raise MixedAttemptsError(
                f"the upload session for {self.name} already holds {persisted} bytes, more "
                f"than the {self._sent} this attempt sent: an earlier attempt of this job left "
                "part of a different zip in it. The two are never mixed, so the object was "
                "not created"
            )
        if persisted < self._acked:
            raise UploadSessionError(
                f"the upload session for {self.name} now reports {persisted} bytes persisted, "
                f"fewer than the {self._acked} it had confirmed; the upload cannot resume"
            )
        if persisted > self._acked:
            done = persisted - self._acked
            self._md5.update(self._view[:done])
            rest = self._held - done
            self._view[:rest] = self._view[done : self._held]  # a memmove; usually 0 bytes
            self._held = rest
            self._acked = persisted
            self._untroubled()
        elif sent:
            self._trouble(f"the session persisted none of the {sent} bytes sent")
            return
        held = (answer.resource or {}).get("md5Hash")
        if isinstance(held, str) and held != _b64_md5(self._md5.digest()):
            # fake-gcs-server's 308 describes everything the session holds.
            raise MixedAttemptsError(
                f"the upload session for {self.name} holds bytes other than the {persisted} "
                "this attempt sent (their MD5 differs): an earlier attempt of this job left "
                "part of a different zip in it. The two are never mixed, so the object was "
                "not created"
            )

    def _completed(self, resource: dict[str, Any]) -> None:
        """The session says the object exists: from now on only hash the rest of the zip,
        to compare it with the object."""
        self._complete = resource
        self._complete_early = not self._final_sent
        self._md5.update(self._view[: self._held])
        self._held = 0
        if resource.get("bucket") and resource.get("name"):
            self.name = f"gs://{resource['bucket']}/{resource['name']}"

    def _verify(self) -> Stored:
        resource = self._complete or {}
        ours = _b64_md5(self._md5.digest())
        try:
            size = int(resource["size"])
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(
                f"the upload session for {self.name} said the object is complete but not its size"
            ) from None
        held = resource.get("md5Hash")
        if size == self._written and (held is None or held == ours):
            return Stored(self.name, size, ours, self._complete_early, self._requests)
        raise MixedAttemptsError(
            f"{self.name} was created with {size} bytes (MD5 {held}) that are not this "
            f"attempt's {self._written}-byte zip (MD5 {ours}): an earlier attempt of this job "
            "finished or left bytes in the upload session, or the server finalized an "
            "unfinished upload. The object was left as it is"
        )

    def _refusal(self, answer: Answer, *, final: bool) -> StagerError:
        status, detail = answer.status, answer.message()
        said = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
        if status == 412:
            return OutputExistsError(
                f"{self.name} already exists; Cloud Storage did not replace it ({said})"
            )
        if status in GONE_STATUS:
            return UploadSessionError(
                f"the upload session for {self.name} no longer exists ({said}): it expired "
                "(sessions last a week), was cancelled, or already created the object"
            )
        if final and status == 400 and any(word in detail.lower() for word in _HASH_WORDS):
            return MixedAttemptsError(
                f"Cloud Storage refused to create {self.name}: the bytes in the upload session "
                f"are not this attempt's zip ({said}); an earlier attempt of this job left part "
                "of a different zip in the session. The two are never mixed"
            )
        if status in REFUSED_STATUS:
            return UploadSessionError(f"Cloud Storage refused the upload of {self.name} ({said})")
        return ProtocolError(f"unexpected answer to the upload of {self.name} ({said})")

    # -- retry budget ---------------------------------------------------------------------

    def _trouble(
        self, reason: str, retry_after: float | None = None, *, began: float | None = None
    ) -> None:
        """Pause before trying again, or give up once the retry time is spent. The time
        counted starts with the first failed request (`began`), a timeout's wait included."""
        now = self._clock()
        if self._trouble_since is None:
            self._trouble_since = now if began is None else began
        spent = self._trouble_spent + (now - self._trouble_since)
        pause = self._pause if retry_after is None else max(self._pause, retry_after)
        pause = min(pause, MAX_PAUSE)
        if spent + pause > self._budget:
            raise TransientStorageError(
                f"could not upload {self.name}: {reason} (gave up after retrying for {spent:.0f} s)"
            )
        log.warning(
            "upload request failed; retrying",
            extra={"error": reason, "offset": self._acked, "pause_s": pause},
        )
        self._sleep(pause)
        self._pause = min(self._pause * 2, MAX_PAUSE)

    def _untroubled(self) -> None:
        if self._trouble_since is not None:
            self._trouble_spent += self._clock() - self._trouble_since
            self._trouble_since = None
        self._pause = FIRST_PAUSE
