"""The job API over HTTP: one session, the envelope unwrapped, every failure a CliError."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import quote

import requests

from cli import auth, config
from cli.errors import ApiError, CliError

CONNECT_SECONDS = 10.0
READ_SECONDS = 120.0  # a create holds a body of up to 32 MiB
TRANSFER_SECONDS = 600.0  # between two chunks of an upload or a download
RETRY_PAUSES = (1.0, 2.0, 4.0)  # seconds before each new try of a create that may be retried


class Api:
    """`GET/POST/DELETE` on `<url>/batch/...`; answers are the envelope's `data`."""

    def __init__(self, url: str, as_email: str | None = None) -> None:
        self.url = url
        self.as_email = as_email
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "ktr"
        self._token: str | None = None

    def _headers(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def token(self) -> str | None:
        """The caller's identity token for this API: the user's Google one for a deployed
        API; on the local cloud, one its issuer signs for `--as` (else operator@local), or
        none when this shell has no issuer key (an API with access control off)."""
        if auth.needs_token(self.url):
            if self.as_email:
                raise CliError(
                    "--as is for the local cloud: a deployed API knows you by your Google "
                    "credentials"
                )
            return auth.identity_token(self.url)
        key = config.issuer_key()
        if key is None:
            if self.as_email:
                raise CliError(
                    "--as needs the local cloud's issuer key: run ktr inside the checkout "
                    f"where `make run` is up, or set {config.ISSUER_KEY_VARIABLE}"
                )
            return None
        return auth.local_token(key, self.as_email or auth.LOCAL_CALLER, auth.audience(self.url))

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The whole envelope of a 2xx answer; ApiError with its fields otherwise."""
        url = f"{self.url}{path}"
        try:
            answer = self.session.request(
                method,
                url,
                params=params,
                json=body,
                headers=self._headers(),
                timeout=(CONNECT_SECONDS, READ_SECONDS),
            )
        except requests.RequestException as error:
            raise CliError(transport_error(url, error)) from None
        try:
            envelope = answer.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            text = " ".join(answer.text.split())[:200]
            raise ApiError(answer.status_code, f"HTTP {answer.status_code}", text, "")
        if not answer.ok or envelope.get("error"):
            raise ApiError(
                answer.status_code,
                str(envelope.get("error") or ""),
                str(envelope.get("msg") or ""),
                envelope.get("data"),
            )
        return envelope

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """A create with a request id of its own, so that it can be sent again when the API
        says to try again (503) or the answer is lost: the API never makes two jobs of it."""
        body = {**body, "request_id": str(uuid.uuid4())}
        for pause in (*RETRY_PAUSES, None):
            try:
                return self.call("POST", "/batch/", body=body)
            except ApiError as error:
                if error.status != 503 or pause is None:
                    raise
            except CliError as error:
                if "connection refused" in error.message or pause is None:
                    raise
            time.sleep(pause)
        raise AssertionError("unreachable")

    def resolve(self, ident: str) -> str:
        """A job's id: `ident` itself when it is one, else the id of the job so named."""
        try:
            return str(uuid.UUID(ident))
        except ValueError:
            pass
        found = self.call("GET", "/batch/", params={"name": ident, "status": "any"})["data"]
        if not found:
            raise CliError(f"No job is named {ident!r}: give its name or its id")
        return str(found[0]["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"/batch/{job_id}")["data"]
        return data

    def kill(self, job_id: str) -> dict[str, Any]:
        return self.call("DELETE", f"/batch/{job_id}")

    def log(self, job_id: str, tail: int | None = None) -> dict[str, Any]:
        params = {"tail": tail} if tail else None
        data: dict[str, Any] = self.call("GET", f"/batch/{job_id}/logs", params=params)["data"]
        return data

    def pages(
        self, status: str, account: str | None, page_size: int, every_page: bool
    ) -> Iterator[tuple[list[dict[str, Any]], str]]:
        """Each page of a list and the token of the next ("" on the last)."""
        params: dict[str, Any] = {"status": status, "page_size": page_size}
        if account:
            params["account_id"] = account
        while True:
            envelope = self.call("GET", "/batch/", params=params)
            token = str(envelope.get("next_page_token") or "")
            yield list(envelope["data"]), token
            if not token or not every_page:
                return
            params["page_token"] = token

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/accounts/")["data"])

    def account(self, account_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"/accounts/{quote(account_id, safe='')}")["data"]
        return data

    def create_account(self, account_id: str, members: dict[str, str]) -> dict[str, Any]:
        body = {"account_id": account_id, "members": members}
        data: dict[str, Any] = self.call("POST", "/accounts/", body=body)["data"]
        return data

    def change_account(self, account_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/accounts/{quote(account_id, safe='')}"
        data: dict[str, Any] = self.call("PATCH", path, body=body)["data"]
        return data

    def set_member(self, account_id: str, email: str, role: str | None) -> dict[str, Any]:
        """`role` None takes the member out."""
        path = f"/accounts/{quote(account_id, safe='')}/members/{quote(email, safe='@')}"
        if role is None:
            return self.call("DELETE", path)
        return self.call("PUT", path, body={"role": role})

    def put(self, url: str, stream: IO[bytes], size: int) -> None:
        """One PUT of a zip to a signed upload URL (no identity: the URL is the right)."""
        try:
            answer = requests.put(
                url,
                data=stream,
                headers={"Content-Type": "application/zip", "Content-Length": str(size)},
                timeout=(CONNECT_SECONDS, TRANSFER_SECONDS),
            )
        except requests.RequestException as error:
            raise CliError(transport_error(_without_query(url), error)) from None
        if not answer.ok:
            text = " ".join(answer.text.split())[:200]
            raise CliError(f"The upload was refused: HTTP {answer.status_code} {text}")

    def task_output_url(self, job_id: str, index: int) -> str | None:
        """Where an array job's task's output is (the API redirects to a signed URL); None
        when it has none (the task failed)."""
        url = f"{self.url}/batch/{job_id}/outputs/{index}"
        try:
            answer = self.session.get(
                url,
                allow_redirects=False,
                headers=self._headers(),
                timeout=(CONNECT_SECONDS, READ_SECONDS),
            )
        except requests.RequestException as error:
            raise CliError(transport_error(url, error)) from None
        if answer.status_code == 404 and answer.json().get("error") == "NotFound":
            return None
        if answer.status_code != 302 or not answer.headers.get("Location"):
            raise ApiError(answer.status_code, f"HTTP {answer.status_code}", answer.text[:200], "")
        return str(answer.headers["Location"])

    def download(self, url: str, into: IO[bytes], progress: Any = None) -> None:
        try:
            with requests.get(url, stream=True, timeout=(CONNECT_SECONDS, TRANSFER_SECONDS)) as r:
                if not r.ok:
                    raise CliError(f"The output could not be read: HTTP {r.status_code}")
                if progress is not None:
                    progress(total=int(r.headers.get("Content-Length") or 0) or None, advance=0)
                for chunk in r.iter_content(1 << 20):
                    into.write(chunk)
                    if progress is not None:
                        progress(advance=len(chunk))
        except requests.RequestException as error:
            raise CliError(transport_error(_without_query(url), error)) from None


def transport_error(url: str, error: requests.RequestException) -> str:
    if isinstance(error, requests.ConnectTimeout):
        return f"Cannot reach {url}: no connection within {CONNECT_SECONDS:g} s"
    if isinstance(error, requests.Timeout):
        return f"No answer from {url} in time"
    if isinstance(error, requests.ConnectionError):
        text = str(error)
        if "Connection refused" in text:
            return f"Cannot reach {url}: connection refused (is the API up?)"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return f"Cannot reach {url}: unknown host"
        return f"Cannot reach {url}: the connection failed"
    return f"Request to {url} failed: {type(error).__name__}"


def _without_query(url: str) -> str:
    """A signed URL's signature is a secret: messages name the URL without it."""
    return url.split("?", 1)[0]
