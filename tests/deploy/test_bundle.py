"""The functions' source bundle, served the way Cloud Functions serves it: functions-framework
started inside the bundle directory, with nothing of the repository on its path, answering
real requests against the local cloud."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from infra.deploy.bundle import BundleError, build
from infra.local.procs import ServerProcess, free_port, spawn, tcp_open, wait_until_ready
from tests.fixtures.controlplane import JOB_KSA, STAGER_IMAGE
from tests.fixtures.tokens import OPERATOR, bearer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("bundle") / "functions")


def test_the_bundle_holds_main_shared_and_the_runtime_requirements(bundle):
    top = sorted(path.name for path in bundle.iterdir())
    assert top == [".gcloudignore", "main.py", "requirements.txt", "shared"]
    assert filecmp.cmp(bundle / "main.py", ROOT / "functions" / "main.py", shallow=False)
    requirements = (bundle / "requirements.txt").read_text()
    assert requirements == (ROOT / "requirements.txt").read_text()
    assert "functions-framework==" in requirements
    for tool in ("pytest", "ruff", "mypy", "fake-gcs-server", "google-cloud-scheduler"):
        assert tool not in requirements
    assert not list(bundle.rglob("__pycache__"))
    shared = {p.relative_to(bundle).as_posix() for p in (bundle / "shared").rglob("*.py")}
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / "shared").rglob("*.py")}
    # The job pods' program is not the functions': the API serves without it (the tests
    # below serve from this very bundle).
    assert shared == {name for name in package if not name.startswith("shared/stager/")}
    assert "shared/contract/zips.py" in shared
    # The status page's files are no Python, and go with the package all the same.
    page = ROOT / "shared" / "http" / "ui"
    for name in ("index.html", "app.js", "style.css"):
        assert filecmp.cmp(bundle / "shared" / "http" / "ui" / name, page / name, shallow=False)


def test_building_again_replaces_the_bundle_but_nothing_else(bundle, tmp_path):
    (bundle / "stale.txt").write_text("from an earlier build")
    build(bundle)
    assert not (bundle / "stale.txt").exists()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(BundleError):
        build(keep)
    assert (keep / "notes.txt").read_text() == "mine"


def _env(settings: dict[str, str]) -> dict[str, str]:
    """The test's environment (emulator hosts) and settings, without any path to the repo."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, **settings, "PYTHONSAFEPATH": ""}


def test_the_bundle_imports_only_its_own_code(bundle):
    done = subprocess.run(
        [sys.executable, "-c", "import main, shared; print(shared.__file__)"],
        cwd=bundle,
        env=_env({}),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == bundle / "shared"


@pytest.fixture
def served(
    bundle,
    tmp_path,
    bucket,
    collection_prefix,
    cluster_kubeconfig,
    namespace,
    firestore_emulator,
    tokens,
) -> Iterator[dict[str, str]]:
    settings = {
        **tokens.env(),
        "ACCOUNTS_COLLECTION": f"{collection_prefix}accounts",
        "GC_BUCKET_NAME": bucket,
        "FIRESTORE_COLLECTION": f"{collection_prefix}jobs",
        "KUBECONFIG": str(cluster_kubeconfig),
        "KUBERNETES_NAMESPACE": namespace,
        "STAGER_IMAGE": STAGER_IMAGE,
        "JOB_SERVICE_ACCOUNT": JOB_KSA,
    }
    procs: list[ServerProcess] = []
    urls = {}
    try:
        for target in ("batch_api", "get_job"):
            port = free_port()
            proc = spawn(
                f"bundle-{target}",
                [
                    sys.executable, "-m", "functions_framework", "--source=main.py",
                    f"--target={target}", "--host=127.0.0.1", f"--port={port}",
                ],
                log_dir=tmp_path,
                env=_env(settings),
                cwd=bundle,
            )  # fmt: skip
            procs.append(proc)
            wait_until_ready(proc, tcp_open(port), 60.0)
            urls[target] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for proc in procs:
            proc.stop()


def test_the_bundle_serves_the_api_against_the_local_cloud(served, batch_v1, namespace, tokens):
    operator = bearer(tokens.mint(OPERATOR))
    body = {"name": "from-the-bundle", "job_parameters": {"docker_image": "alpine:3"}}
    refused = requests.post(f"{served['batch_api']}/batch/", json=body, timeout=60)
    assert refused.status_code == 401, refused.text  # the bundle verifies callers too
    created = requests.post(
        f"{served['batch_api']}/batch/", json=body, headers=operator, timeout=60
    )
    assert created.status_code == 200, created.text
    job = created.json()["data"]
    assert job["name"] == "from-the-bundle"
    assert job["status"] in ("created", "running")

    fetched = requests.get(f"{served['get_job']}/{job['id']}", headers=operator, timeout=30)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["data"]["id"] == job["id"]
    (k8s_job,) = batch_v1.list_namespaced_job(namespace).items
    assert k8s_job.metadata.name == "from-the-bundle"

    page = requests.get(f"{served['batch_api']}/ui", timeout=30)
    assert page.status_code == 200, page.text
    assert page.url == f"{served['batch_api']}/ui/"
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script src="app.js"' in page.text
    script = requests.get(f"{served['batch_api']}/ui/app.js", timeout=30)
    assert script.status_code == 200
    assert script.content == (ROOT / "shared" / "http" / "ui" / "app.js").read_bytes()

    missing = requests.get(f"{served['batch_api']}/batch/not-a-job", headers=operator, timeout=30)
    assert missing.status_code == 404
    assert missing.json()["result"] is False
    assert missing.json()["error"]
