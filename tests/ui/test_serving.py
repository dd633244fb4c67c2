"""How `batch_api` serves the status page's files: headers, revalidation, and nothing else
under /ui/. (The page itself, in a browser: test_status_page.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.http import ui

PAGE = Path(ui.__file__).resolve().parent
FILES = {"/ui/": "index.html", "/ui/app.js": "app.js", "/ui/style.css": "style.css"}


@pytest.mark.parametrize("path", list(FILES))
def test_each_file_is_served_with_its_headers_and_revalidated(fn_store, path):
    client = fn_store.clients["batch_api"]
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.data == (PAGE / FILES[path]).read_bytes()
    assert answer.headers["Content-Security-Policy"] == ui.CONTENT_SECURITY_POLICY
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "private, no-cache"
    etag = answer.headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")
    stale = client.get(path, headers={"If-None-Match": '"an-earlier-deploy"'})
    assert stale.status_code == 200


def test_ui_redirects_to_the_page_relatively(fn_store):
    answer = fn_store.clients["batch_api"].get("/ui")
    assert answer.status_code == 301
    assert answer.headers["Location"] == "ui/"  # .../batch-api/ui -> .../batch-api/ui/


@pytest.mark.parametrize(
    "path", ["/ui/index.html", "/ui/app.js/", "/ui/ui/", "/ui/x/app.js", "/ui/__init__.py"]
)
def test_nothing_else_under_ui_is_served(fn_store, path):
    answer = fn_store.clients["batch_api"].get(path)
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "NotFound"


def test_the_page_needs_nothing_its_policy_forbids():
    """No inline script, handler or style: the CSP (no 'unsafe-inline') would block them."""
    html = (PAGE / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="app.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"<style\b|\sstyle\s*=", html)
    script = (PAGE / "app.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script
    assert "document.write" not in script and "eval(" not in script
    assert "'unsafe-" not in ui.CONTENT_SECURITY_POLICY
