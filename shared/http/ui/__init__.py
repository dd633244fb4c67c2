"""The status page at `/ui/` on `batch_api`: three static files (index.html, app.js,
style.css beside this module) that read the JSON API from the browser.

Served by the API's own function, so the page and every call it makes pass the same IAM
invoker check. The files are fixed: nothing a user sent is ever in them, and the script
builds the page with textContent. The headers forbid everything the page does not need."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Request, Response

HERE = Path(__file__).resolve().parent
# The path under /ui/ -> (file, content type). Nothing else under /ui/ is served.
ASSETS: dict[str, tuple[str, str]] = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The page's URL may hold a job id; the output link is a signed URL: send neither on.
    "Referrer-Policy": "no-referrer",
}
# Behind IAM, so never in a shared cache; revalidated on every load (an ETag makes that a
# 304), so a new deploy's page and script are never mixed with an old one's.
CACHE_CONTROL = "private, no-cache"


@functools.cache
def _asset(name: str) -> tuple[bytes, str, str]:
    """(content, content type, ETag) of a file of the page, read once per process."""
    filename, mimetype = ASSETS[name]
    content = (HERE / filename).read_bytes()
    return content, mimetype, hashlib.sha256(content).hexdigest()[:32]


def is_asset(name: str) -> bool:
    return name in ASSETS


def serve(request: Request, name: str) -> Response:
    """GET /ui/<name>: the file, or 304 when the browser's copy is current."""
    from flask import Response

    content, mimetype, etag = _asset(name)
    response = Response(content, status=200, headers=SECURITY_HEADERS)
    response.headers["Content-Type"] = mimetype
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.set_etag(etag)
    response.make_conditional(request)  # a 304 without the body when the ETag matches
    return response


def redirect_to_page(request: Request) -> Response:
    """GET /ui: to /ui/. The Location is relative, so it holds behind any prefix (the
    deployed function is reached at .../batch-api/ui)."""
    from flask import Response

    response = Response(
        "", status=301, headers={**SECURITY_HEADERS, "Location": "ui/"}, mimetype="text/plain"
    )
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
