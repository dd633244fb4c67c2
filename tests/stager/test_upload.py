"""Stage-out's upload against a loopback server with Cloud Storage's documented resumable
semantics: what ends up stored, byte for byte, when requests fail, and the exit codes."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra.local.procs import free_port
from shared.contract.exits import ExitCode, StagerError
from shared.stager import upload
from shared.stager.cli import main
from shared.stager.commands import stage_out
from shared.stager.errors import (
    MixedAttemptsError,
    OutputExistsError,
    TransientStorageError,
    UploadSessionError,
)
from tests.stager.resumable import DROP_AFTER, DROP_BEFORE, ResumableServer, partial, status

CHUNK = upload.QUANTUM  # 256 KiB: the smallest chunk, so a few hundred KiB make several
REPO_ROOT = Path(__file__).resolve().parents[2]
STATUS_QUERY = "bytes */*"


class Clock:
    """Time that passes only when the upload sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def send(
    url: str,
    data: bytes,
    *,
    retry_seconds: float = 600,
    clock: Clock | None = None,
    connection: upload.Connection | None = None,
) -> upload.Stored:
    """Write `data` into a ResumableUpload 64 KiB at a time, as the zip writer would."""
    clock = clock or Clock()
    sink = upload.ResumableUpload(
        url,
        chunk_size=CHUNK,
        retry_seconds=retry_seconds,
        connection=connection,
        sleep=clock.sleep,
        clock=clock,
    )
    for offset in range(0, len(data), 64 * 1024):
        sink.write(data[offset : offset + 64 * 1024])
    return sink.finish()


def test_the_normal_path_is_one_put_per_chunk_and_no_status_query(
    resumable: ResumableServer,
) -> None:
    data = os.urandom(4 * CHUNK + 1000)
    url = resumable.open("a-output.zip")
    stored = send(url, data)
    assert resumable.objects["a-output.zip"] == data
    assert resumable.ranges() == [
        "bytes 0-262143/*",
        "bytes 262144-524287/*",
        "bytes 524288-786431/*",
        "bytes 786432-1048575/*",
        "bytes 1048576-1049575/1049576",
    ]
    assert (stored.size, stored.already_complete, stored.requests) == (len(data), False, 5)
    assert stored.name == "gs://bkt/a-output.zip"


def test_a_zip_of_whole_chunks_ends_with_a_full_last_request(resumable: ResumableServer) -> None:
    data = os.urandom(2 * CHUNK)
    send(resumable.open(), data)
    assert resumable.ranges() == ["bytes 0-262143/*", "bytes 262144-524287/524288"]
    assert resumable.objects["job-output.zip"] == data


@pytest.mark.parametrize(
    "fault",
    [DROP_BEFORE, DROP_AFTER, status(503), status(500), status(507), status(429), status(408)],
    ids=["dropped", "answer-lost", "503", "500", "507", "429", "408"],
)
@pytest.mark.parametrize("request_number", [1, 3, 5], ids=["first", "middle", "last"])
def test_a_failed_request_is_resumed_from_what_the_session_persisted(
    resumable: ResumableServer, fault: object, request_number: int
) -> None:
    data = os.urandom(4 * CHUNK + 1000)
    resumable.faults = {request_number: fault}  # type: ignore[dict-item]
    clock = Clock()
    stored = send(resumable.open(), data, clock=clock)
    assert resumable.objects["job-output.zip"] == data
    assert stored.md5 == base64.b64encode(hashlib.md5(data).digest()).decode()
    # The documented recovery: a status query right after the failure, then the rest.
    ranges = resumable.ranges()
    assert ranges[request_number] == STATUS_QUERY
    assert ranges.count(STATUS_QUERY) == 1
    assert clock.pauses == [1.0]


def test_retry_after_is_honoured(resumable: ResumableServer) -> None:
    resumable.faults = {2: status(503, retry_after=7)}
    clock = Clock()
    send(resumable.open(), os.urandom(3 * CHUNK), clock=clock)
    assert clock.pauses == [7.0]


def test_partial_persistence_resends_only_what_was_not_persisted(
    resumable: ResumableServer,
) -> None:
    data = os.urandom(4 * CHUNK + 10)
    resumable.faults = {2: partial(64 * 1024), 4: partial(0)}
    clock = Clock()
    send(resumable.open(), data, clock=clock)
    assert resumable.objects["job-output.zip"] == data
    ranges = resumable.ranges()
    assert STATUS_QUERY not in ranges  # a 308 says what to resend; no query needed
    assert ranges[:4] == [
        "bytes 0-262143/*",
        "bytes 262144-524287/*",  # only 64 KiB of it persisted
        "bytes 327680-589823/*",  # so the next request starts there
        "bytes 589824-851967/*",  # nothing of it persisted: sent again after a pause
    ]
    assert ranges[4] == ranges[3]
    assert clock.pauses == [1.0]


def test_a_connection_that_cannot_be_opened_is_retried_without_a_status_query(
    resumable: ResumableServer,
) -> None:
    url = resumable.open()

    class RefusedOnce(upload.Connection):
        refused = False

        def put(self, body: bytes | memoryview, headers: dict[str, str]) -> upload.Answer:
            if not self.refused:
                self.refused = True
                raise upload.Unreachable("cannot connect: [Errno 111] Connection refused")
            return super().put(body, headers)

    data = os.urandom(2 * CHUNK + 5)
    send(url, data, connection=RefusedOnce(url))
    assert resumable.objects["job-output.zip"] == data
    assert STATUS_QUERY not in resumable.ranges()


def test_transient_failures_give_up_after_the_retry_time(resumable: ResumableServer) -> None:
    resumable.faults = {n: status(503) for n in range(1, 100)}
    clock = Clock()
    with pytest.raises(TransientStorageError, match="HTTP 503") as raised:
        send(resumable.open(), os.urandom(3 * CHUNK), retry_seconds=20, clock=clock)
    assert clock.pauses == [1.0, 2.0, 4.0, 8.0]  # the next, 16 s, would pass 20 s in all
    assert raised.value.exit_code == ExitCode.TRANSIENT
    assert "secret-upload-id" not in str(raised.value)
    assert "job-output.zip" not in resumable.objects


def test_the_retry_time_counts_every_failure_of_the_upload(resumable: ResumableServer) -> None:
    """Failures spread over several chunks share one budget."""
    resumable.faults = {1: status(503), 2: status(503), 5: status(503), 6: status(503)}
    clock = Clock()
    with pytest.raises(TransientStorageError):
        send(resumable.open(), os.urandom(5 * CHUNK), retry_seconds=4.5, clock=clock)
    assert clock.pauses == [1.0, 2.0, 1.0]


def test_the_wait_of_a_request_that_times_out_counts_too(resumable: ResumableServer) -> None:
    clock = Clock()

    class TimesOut(upload.Connection):
        def put(self, body: bytes | memoryview, headers: dict[str, str]) -> upload.Answer:
            clock.now += 50  # the socket timeout, waited for in vain
            raise upload.Lost("timed out")

    url = resumable.open()
    with pytest.raises(
        TransientStorageError, match=r"timed out \(gave up after retrying for 101 s"
    ):
        send(url, os.urandom(CHUNK), retry_seconds=60, clock=clock, connection=TimesOut(url))
    assert clock.pauses == [1.0]


def test_an_unreachable_session_host_exits_75(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/upload/storage/v1/b/b/o?name=o.zip&upload_id=s3cr3t"
    with pytest.raises(TransientStorageError, match="cannot connect") as raised:
        send(url, b"PK\x05\x06" + bytes(18), retry_seconds=3)
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (status(404), UploadSessionError, "no longer exists (HTTP 404"),
        (status(410), UploadSessionError, "no longer exists (HTTP 410"),
        (status(400), UploadSessionError, "refused the upload of gs://bkt/job-output.zip"),
        (status(403), UploadSessionError, "refused the upload"),
        (status(412), OutputExistsError, "already exists"),
    ],
)
def test_a_refused_or_vanished_session_is_permanent(
    resumable: ResumableServer, fault: object, error: type[StagerError], words: str
) -> None:
    resumable.faults = {2: fault}  # type: ignore[dict-item]
    clock = Clock()
    with pytest.raises(error, match=words.replace("(", r"\(")) as raised:
        send(resumable.open(), os.urandom(3 * CHUNK), clock=clock)
    assert raised.value.exit_code == ExitCode.OUTPUT_CONFLICT
    assert len(resumable.seen) == 2 and clock.pauses == []  # not retried
    assert "job-output.zip" not in resumable.objects


def test_an_existing_object_is_never_replaced(resumable: ResumableServer) -> None:
    resumable.objects["job-output.zip"] = b"another object"
    with pytest.raises(OutputExistsError, match=r"gs://bkt/job-output.zip already exists"):
        send(resumable.open(), os.urandom(CHUNK + 1))
    assert resumable.objects["job-output.zip"] == b"another object"


def test_a_session_that_vanishes_mid_upload(resumable: ResumableServer) -> None:
    url = resumable.open()
    resumable.faults = {2: status(503)}
    clock = Clock()
    sink = upload.ResumableUpload(
        url, chunk_size=CHUNK, retry_seconds=60, sleep=clock.sleep, clock=clock
    )
    sink.write(os.urandom(CHUNK + 1))
    resumable.session(url).gone = 410  # expired or cancelled while the upload waited
    with pytest.raises(UploadSessionError, match="HTTP 410"):
        sink.write(os.urandom(CHUNK))
    with pytest.raises(UploadSessionError):  # ZipFile.close() writes again: same error
        sink.write(b"central directory")
    with pytest.raises(UploadSessionError):
        sink.finish()


def _output(root: Path, content: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "result.bin").write_bytes(content)
    (root / "notes.txt").write_text("done\n")
    return root


def test_a_session_completed_earlier_with_the_same_zip_is_success(
    resumable: ResumableServer, tmp_path: Path
) -> None:
    """The same pod's stage-out run again over the same output: same zip, nothing to do."""
    url = resumable.open()
    output = _output(tmp_path / "out", os.urandom(3 * CHUNK))
    first = stage_out(upload_url=url, directory=output, chunk_size=CHUNK)
    stored = resumable.objects["job-output.zip"]
    requests = len(resumable.seen)
    again = stage_out(upload_url=url, directory=output, chunk_size=CHUNK)
    assert again.stored.already_complete and not first.stored.already_complete
    assert again.stored.md5 == first.stored.md5
    assert resumable.objects["job-output.zip"] == stored
    assert [seen.answer for seen in resumable.seen[requests:]] == [200]  # then only hashed


def test_a_session_completed_earlier_with_another_zip_is_a_conflict(
    resumable: ResumableServer, tmp_path: Path
) -> None:
    url = resumable.open()
    stage_out(upload_url=url, directory=_output(tmp_path / "a", os.urandom(CHUNK)))
    first = resumable.objects["job-output.zip"]
    with pytest.raises(MixedAttemptsError, match="not this attempt's") as raised:
        stage_out(upload_url=url, directory=_output(tmp_path / "b", os.urandom(CHUNK)))
    assert raised.value.exit_code == ExitCode.OUTPUT_CONFLICT
    assert resumable.objects["job-output.zip"] == first


def test_bytes_of_an_earlier_attempt_beyond_the_first_request_are_never_mixed(
    resumable: ResumableServer,
) -> None:
    """A pod stopped after three chunks; the next pod's zip differs."""
    url = resumable.open(earlier=os.urandom(3 * CHUNK))
    with pytest.raises(MixedAttemptsError, match="already holds 786432 bytes") as raised:
        send(url, os.urandom(5 * CHUNK))
    assert "earlier attempt of this job" in str(raised.value)
    assert raised.value.exit_code == ExitCode.OUTPUT_CONFLICT
    assert len(resumable.seen) == 1
    assert "job-output.zip" not in resumable.objects


@pytest.mark.parametrize("earlier", [CHUNK, 1000], ids=["one-chunk", "less-than-a-chunk"])
def test_bytes_of_an_earlier_attempt_within_the_first_request_are_never_mixed(
    resumable: ResumableServer, earlier: int
) -> None:
    """Cloud Storage keeps the bytes it has and takes the rest from the resend, so only the
    final request's MD5 can tell: it refuses to create the object."""
    url = resumable.open(earlier=os.urandom(earlier))
    with pytest.raises(MixedAttemptsError, match="refused to create gs://bkt/job-output.zip"):
        send(url, os.urandom(3 * CHUNK))
    assert "job-output.zip" not in resumable.objects


def test_stage_out_exit_codes_and_the_line_a_user_reads(
    resumable: ResumableServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(upload, "FIRST_PAUSE", 0.01)
    monkeypatch.setenv("STAGER_CHUNK_MIB", "1")
    monkeypatch.setenv("STAGER_RETRY_SECONDS", "0.1")
    output = _output(tmp_path / "out", os.urandom(3 * 1024 * 1024))

    def run(url: str) -> tuple[int, str, str]:
        code = main(["stage-out", "--upload-url", url, "--dir", str(output), "--job-id", "j"])
        captured = capsys.readouterr()
        assert "secret-upload-id" not in captured.out + captured.err
        return code, captured.out, captured.err.strip()

    resumable.faults = {2: DROP_AFTER}
    code, out, err = run(resumable.open("ok-output.zip"))
    assert (code, err) == (0, "")
    with zipfile.ZipFile(io.BytesIO(resumable.objects["ok-output.zip"])) as archive:
        assert archive.read("result.bin") == (output / "result.bin").read_bytes()
    assert '"message": "upload request failed; retrying"' in out

    resumable.faults = {n: status(503) for n in range(len(resumable.seen) + 1, 200)}
    code, _, err = run(resumable.open("busy-output.zip"))
    assert code == ExitCode.TRANSIENT
    assert err.startswith("stager: storage unavailable: could not upload gs://bkt/busy-output")

    resumable.faults = {}
    url = resumable.open("gone-output.zip")
    resumable.session(url).gone = 404
    code, _, err = run(url)
    assert code == ExitCode.OUTPUT_CONFLICT
    assert err == (
        "stager: upload session unusable: the upload session for gs://bkt/gone-output.zip no "
        "longer exists (HTTP 404: Upload session gone): it expired (sessions last a week), was "
        "cancelled, or already created the object"
    )

    resumable.objects["taken-output.zip"] = b"theirs"
    code, _, err = run(resumable.open("taken-output.zip"))
    assert code == ExitCode.OUTPUT_CONFLICT
    assert err.startswith("stager: output exists: gs://bkt/taken-output.zip already exists")

    code, _, err = run(resumable.open("mixed-output.zip", earlier=os.urandom(3 * 1024 * 1024)))
    assert code == ExitCode.OUTPUT_CONFLICT
    assert err.startswith("stager: output conflict: the upload session for gs://bkt/mixed-")


# Runs the stager and prints its peak RSS (VmHWM, which an exec resets, unlike ru_maxrss:
# that one starts from the forking test process's own size).
PEAK_RSS = (
    "import sys; from shared.stager.cli import main; code = main(); "
    "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')), file=sys.stderr); "
    "sys.exit(code)"
)


def test_stage_out_memory_stays_bounded(resumable: ResumableServer, tmp_path: Path) -> None:
    """64 MiB that do not compress, through 1 MiB requests: the stager holds one chunk."""
    output = tmp_path / "out"
    output.mkdir()
    with (output / "random.bin").open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(1024 * 1024))
    env = {
        **os.environ,
        "OUTPUT_UPLOAD_URL": resumable.open(),
        "STAGER_DIR": str(output),
        "STAGER_CHUNK_MIB": "1",
        "LOG_LEVEL": "WARNING",
    }
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "stage-out"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(resumable.objects["job-output.zip"]) > 64 * 1024 * 1024
    peak_mib = int(result.stderr.split()[-2]) / 1024  # "VmHWM:   23456 kB"
    assert peak_mib < 40, f"peak RSS {peak_mib:.0f} MiB"
