"""The local cloud's identity-token issuer: a signing key of its own, and its certificate
served on loopback in the format of Google's (`{key id: x509 PEM}`), so the functions verify
its tokens with the same google-auth code that verifies Google's.

`make run` makes a new key each start, in `.local-cloud/issuer/key.json`: a service-account
style key file (`private_key`, `private_key_id`) that also names the issuer, readable only by
its owner. Whoever can read it can sign in as anyone, as whoever holds a service account's
key can act as it: `ktr auth token --as EMAIL` signs with it. Nothing served here signs.

    python -m infra.local.issuer --dir DIR --port PORT [--ready-file F]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import signal
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_FILE = "key.json"
CERTS_PATH = "/certs"
CERTS_MAX_AGE = 300  # seconds the functions may keep the certificates


@dataclass(frozen=True)
class LocalIssuer:
    url: str  # the `iss` of its tokens: http://127.0.0.1:PORT
    key_id: str
    private_key: str  # PEM
    certificate: str  # PEM

    @property
    def certs_url(self) -> str:
        return f"{self.url}{CERTS_PATH}"

    def key_file(self) -> dict[str, str]:
        return {
            "type": "local_issuer",
            "issuer": self.url,
            "certs_url": self.certs_url,
            "private_key_id": self.key_id,
            "private_key": self.private_key,
            "certificate": self.certificate,
        }


def access_env(
    issuer_url: str, audiences: list[str], operators: tuple[str, ...], *, enabled: bool = True
) -> dict[str, str]:
    """The functions' settings that make them trust this issuer's tokens for `audiences`."""
    return {
        "ACCESS_CONTROL": "on" if enabled else "off",
        "AUTH_AUDIENCES": ",".join(audiences),
        "AUTH_ISSUERS": issuer_url,
        "AUTH_CERTS_URL": f"{issuer_url}{CERTS_PATH}",
        "OPERATORS": ",".join(operators),
    }


def new_issuer(url: str) -> LocalIssuer:
    """A fresh RSA key and its self-signed certificate (a year)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local-cloud-issuer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return LocalIssuer(
        url=url,
        key_id=hashlib.sha256(public).hexdigest()[:32],
        private_key=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def write_key_file(issuer: LocalIssuer, directory: Path) -> Path:
    """The key file, readable by its owner alone, written whole or not at all."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(issuer.key_file(), out)
    tmp.replace(path)
    return path


def read_key_file(path: Path) -> LocalIssuer:
    info = json.loads(path.read_text())
    return LocalIssuer(
        url=info["issuer"],
        key_id=info["private_key_id"],
        private_key=info["private_key"],
        certificate=info["certificate"],
    )


def _handler(server: CertsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.split("?")[0] != CERTS_PATH:
                self.send_error(404)
                return
            server.served += 1
            certs = json.dumps(server.certs).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", f"public, max-age={CERTS_MAX_AGE}")
            self.send_header("Content-Length", str(len(certs)))
            self.end_headers()
            self.wfile.write(certs)

    return Handler


class CertsServer:
    """The certificates on 127.0.0.1:`port` (0: any free port), in a thread. `certs` is what
    it serves (key id -> PEM), `served` how many times it was asked."""

    def __init__(self, issuer: LocalIssuer, port: int) -> None:
        self.certs: dict[str, str] = {issuer.key_id: issuer.certificate}
        self.served = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> CertsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    issuer = new_issuer(f"http://127.0.0.1:{args.port}")
    write_key_file(issuer, args.dir)
    server = CertsServer(issuer, args.port).start()
    if args.ready_file:
        args.ready_file.write_text("ready\n")
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
