"""The identity token ktr sends a deployed API, from the user's Google credentials, got
through google-auth from a token endpoint on loopback (a service-account key names it in
`token_uri`). User credentials cannot be pointed elsewhere: google-auth always sends their
refresh to Google, so that path is not tested here."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.auth import crypt, jwt

from cli.auth import needs_token
from cli.client import Api
from tests.cli.conftest import run_ktr
from tests.fixtures.keys import key_file, new_key, pem

FUNCTION = "https://europe-west1-proj.cloudfunctions.net/batch-api"


class TokenEndpoint:
    """Answers OAuth token requests with an id_token signed by a key of its own."""

    def __init__(self) -> None:
        self.signer = crypt.RSASigner.from_string(pem(new_key()))
        self.forms: list[dict[str, str]] = []
        self.id_token = ""

    def answer(self, form: dict[str, str]) -> dict[str, Any]:
        self.forms.append(form)
        now = int(time.time())
        audience = FUNCTION
        if "assertion" in form:  # a service account's JWT grant names its target audience
            audience = jwt.decode(form["assertion"], verify=False)["target_audience"]
        claims = {"aud": audience, "iat": now, "exp": now + 3600, "iss": "test"}
        self.id_token = jwt.encode(self.signer, claims).decode()
        return {"access_token": "at", "expires_in": 3600, "id_token": self.id_token}


@pytest.fixture
def endpoint() -> Iterator[tuple[TokenEndpoint, str]]:
    tokens = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            body = json.dumps(tokens.answer(form)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tokens, f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


def test_a_service_account_key_gets_a_token_for_the_functions_url(endpoint, tmp_path, monkeypatch):
    tokens, token_uri = endpoint
    key = tmp_path / "key.json"
    key.write_text(json.dumps(key_file("ktr@proj.iam.gserviceaccount.com", token_uri=token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))

    headers = Api(FUNCTION + "/")._headers()

    assert headers == {"Authorization": f"Bearer {tokens.id_token}"}
    assert tokens.forms[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert jwt.decode(tokens.id_token, verify=False)["aud"] == FUNCTION


def test_no_credentials_is_one_line_and_exit_3(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GCE_METADATA_HOST": "127.0.0.1:9"}
    env["GOOGLE_APPLICATION_CREDENTIALS"] = str(tmp_path / "none.json")

    refused = run_ktr("list", "--api", FUNCTION, api=None, cwd=tmp_path, env=env)

    assert refused.code == 3
    assert refused.err.startswith(
        f"ktr: No Google credentials for an identity token to call {FUNCTION}"
    )
    assert refused.err.count("\n") == 1


def test_loopback_and_plain_http_get_no_token():
    assert not needs_token("http://127.0.0.1:4898")
    assert not needs_token("https://localhost:8443/api")
    assert not needs_token("https://[::1]:8443")
    assert not needs_token("http://api.example.com")
    assert needs_token(FUNCTION)
    assert Api("http://127.0.0.1:4898")._headers() == {}
