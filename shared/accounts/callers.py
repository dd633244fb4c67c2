"""A request's caller: its verified email, whether it is an operator, and its roles."""

from __future__ import annotations

from flask import Request

from shared.cloud.backends import Backends
from shared.cloud.identity import IAP_HEADER
from shared.model.access import Caller


def identify(request: Request, backends: Backends) -> Caller:
    """The caller of a request (Unauthenticated without a valid token).
    While access control is off, anyone: every check passes, as in the earlier API."""
    access = backends.settings.access
    if not access.enabled:
        return Caller.unchecked()
    headers = request.headers
    email = backends.verifier.email(headers.get("Authorization"), headers.get(IAP_HEADER))
    if email in access.operators:
        return Caller(email, operator=True)
    return Caller(email, roles=backends.accounts.roles_of(email))
