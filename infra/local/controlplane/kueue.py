"""Kueue's manager in the local cloud: the release's own binary (infra/kueue/build.py), run
out of the cluster against the local API server, as the service account Kueue's install
makes, with its webhooks and its visibility API on loopback.

What a pod would give it, this gives it another way:
- its certificates: a CA and a serving certificate for the webhook service, made here and
  written both to the certificate manager's secret (which keeps them, as they are valid) and
  to the folder the manager serves them from (a pod mounts that secret there);
- the services it is reached by: ExternalName services naming localhost (infra/kueue/
  install.py), so the API server calls its webhooks and proxies its visibility API through
  the same service references as on GKE;
- a private root: the manager writes its visibility API's self-signed certificate to
  /visibility (a path fixed in Kueue's source), so it runs in a bubblewrap sandbox whose
  root mirrors the host's, with /visibility its own.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.kueue import build, install
from infra.local.controlplane import kubectl
from infra.local.procs import ServerProcess, free_port, spawn

VALID_FOR = datetime.timedelta(days=3650)
# The certificate manager's rules (open-policy-agent/cert-controller): a CA named kueue-ca,
# an RSA key it can parse, a serving certificate for the service's DNS name.
CA_NAME = "kueue-ca"
SERVICE_DNS = f"{install.WEBHOOK_SERVICE}.{install.NAMESPACE}.svc"
MANAGER_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{install.NAMESPACE}")


def certificates() -> dict[str, bytes]:
    """ca.crt, ca.key, tls.crt and tls.key, as the certificate manager's secret holds them."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate(CA_NAME, ca_key, ca_key, None, now).sign(ca_key, hashes.SHA256())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serving = _certificate(SERVICE_DNS, key, ca_key, ca, now).sign(ca_key, hashes.SHA256())
    return {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "ca.key": _pem(ca_key),
        "tls.crt": serving.public_bytes(serialization.Encoding.PEM),
        "tls.key": _pem(key),
    }


def _certificate(
    dns: str,
    key: rsa.RSAPrivateKey,
    signer: rsa.RSAPrivateKey,
    ca: x509.Certificate | None,
    now: datetime.datetime,
) -> x509.CertificateBuilder:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, dns),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kueue"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca.subject if ca else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    )
    if ca is not None:
        usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
        builder = builder.add_extension(usage, critical=False)
    return builder


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # PKCS #1, which it parses
        serialization.NoEncryption(),
    )


def sandboxed(argv: list[str]) -> list[str]:
    """`argv` in a bubblewrap sandbox: the host's root, but for a private /visibility."""
    mirror: list[str] = []
    for entry in sorted(os.scandir("/"), key=lambda e: e.name):
        if entry.is_symlink():
            mirror += ["--symlink", os.readlink(entry.path), entry.path]
        elif entry.is_dir():
            mirror += ["--dev-bind", entry.path, entry.path]
    return ["bwrap", "--tmpfs", "/", *mirror, "--dir", "/visibility", "--die-with-parent", *argv]


def start(
    admin_kubeconfig: Path, manager_kubeconfig: Path, folder: Path, log_dir: Path
) -> tuple[ServerProcess, str]:
    """Install Kueue (as the administrator) and start its manager (as its service account);
    returns it and its readiness URL."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_dir = folder / "certs"
    cert_dir.mkdir(exist_ok=True)
    made = certificates()
    for name, content in made.items():
        (cert_dir / name).write_bytes(content)
        (cert_dir / name).chmod(0o600)
    local = install.Endpoints(
        webhook_port=free_port(),
        visibility_port=free_port(),
        health_port=free_port(),
        cert_dir=cert_dir,
        certificates=made,
    )
    manifests = build.binaries_dir()
    kubectl.apply(
        admin_kubeconfig, install.to_yaml(install.render(manifests, local)), "Kueue's install"
    )
    config = folder / "config.json"
    config.write_text(json.dumps(install.configuration(local), indent=2))
    argv = [
        str(manifests / "kueue"),
        f"--config={config}",
        f"--kubeconfig={manager_kubeconfig}",
        f"--visibility-server-port={local.visibility_port}",
    ]
    process = spawn("kueue", sandboxed(argv), log_dir=log_dir)
    return process, f"http://127.0.0.1:{local.health_port}/readyz"
