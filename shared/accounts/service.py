"""The accounts API: operators create accounts, each account's admins manage its members,
and every member sees the account it belongs to.

An account a caller is no member of answers 404 exactly as a missing one does, so account
ids cannot be probed. An account always keeps an admin: the last one cannot leave or be
demoted, except by an operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared import errors
from shared.cloud.accounts import AccountExistsError, Change
from shared.cloud.backends import Backends
from shared.model import access, queues
from shared.model.access import Account, Caller, Role
from shared.quota import Quota

log = logging.getLogger(__name__)

SETTINGS_FIELDS = {"buckets", "quota", "fair_share_weight"}  # what operators set
CREATE_FIELDS = {"account_id", "members", *SETTINGS_FIELDS}


def create(body: Any, backends: Backends, caller: Caller) -> Account:
    if not caller.operator:
        raise errors.Forbidden(msg=f"{caller.email} may not create accounts: operators do")
    if not isinstance(body, dict):
        raise errors.InvalidParameters(msg="The body must be a JSON object")
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise errors.InvalidParameters(data={name: "Unknown field" for name in unknown})
    account = Account(
        account_id=access.account_id(body.get("account_id")),
        members=access.members(body.get("members", {})),
        created_by=caller.email,
    )
    _settle(account, body, backends.settings.default_quota)
    try:
        created = backends.accounts.create(account)
    except AccountExistsError:
        raise errors.Conflict(
            msg=f"Account {account.account_id} exists already",
            data={"account_id": account.account_id},
        ) from None
    _apply_queue(created, backends)
    return created


def _settle(account: Account, body: dict[str, Any], default_quota: Quota) -> None:
    """The operators' settings the body gives: `buckets`, `quota` (merged into the
    account's, or the default) and `fair_share_weight`."""
    if "buckets" in body:
        account.buckets = access.buckets(body["buckets"])
    if "quota" in body:
        base = account.quota if account.quota is not None else default_quota
        account.quota = queues.quota(body["quota"], base)
    if "fair_share_weight" in body:
        account.fair_share_weight = queues.weight(body["fair_share_weight"])


def _apply_queue(account: Account, backends: Backends) -> None:
    """The account's ClusterQueue and LocalQueue as its record now says. A cluster that
    does not answer is logged, not the caller's error: the record is saved, and the sync
    applies what differs within its next pass."""
    try:
        backends.queues.apply_share(account.share(backends.settings.default_quota))
    except errors.ClusterApiError as error:
        log.warning(
            "the account's queue was not applied: %s",
            error,
            extra={"account_id": account.account_id},
        )


def listing(backends: Backends, caller: Caller) -> list[Account]:
    """Every account for an operator; the caller's own for anyone else."""
    if caller.operator:
        return backends.accounts.all()
    return backends.accounts.of_member(caller.email or "")


def get(account_id: str, backends: Backends, caller: Caller) -> Account:
    account = backends.accounts.get(account_id) if access.ACCOUNT_ID.fullmatch(account_id) else None
    return _shown(account, account_id, caller)


def _shown(account: Account | None, account_id: str, caller: Caller) -> Account:
    """The account, if the caller may see it (a member, an operator); else as missing."""
    if account is None or not (caller.operator or caller.email in account.members):
        raise errors.NoSuchAccount(account_id)
    return account


def change_settings(account_id: str, body: Any, backends: Backends, caller: Caller) -> Account:
    """An operator's change of the account's settings: `buckets`, the other buckets its
    jobs may read gs:// inputs from; `quota` and `fair_share_weight`, its share of the
    cluster (its queue follows at once)."""

    def operators_only() -> None:
        if not caller.operator:
            raise errors.Forbidden(
                msg=f"{caller.email} may not change the settings of account {account_id}: "
                "operators do",
                data={"account_id": account_id},
            )

    def change(account: Account) -> Account:
        if not isinstance(body, dict) or not body or set(body) - SETTINGS_FIELDS:
            fields = ", ".join(sorted(SETTINGS_FIELDS))
            raise errors.InvalidParameters(msg=f"The body must be an object of: {fields}")
        _settle(account, body, backends.settings.default_quota)
        return account

    changed = _changed(account_id, account_id, change, backends, caller, allowed=operators_only)
    _apply_queue(changed, backends)
    return changed


def set_member(
    account_id: str, email: str, body: Any, backends: Backends, caller: Caller
) -> Account:
    """Adds `email` with the body's role, or gives it that role."""
    if not isinstance(body, dict) or set(body) != {"role"}:
        raise errors.InvalidParameters(msg='The body must be {"role": "<role>"}')
    member, role = access.email(email), access.role(body["role"])

    def change(account: Account) -> Account:
        account.members[member] = role
        return account

    return _changed(
        account_id, member, change, backends, caller, allowed=_admins(caller, account_id)
    )


def remove_member(account_id: str, email: str, backends: Backends, caller: Caller) -> Account:
    """Takes `email` out of the account; a member may always leave."""
    member = access.email(email)

    def change(account: Account) -> Account:
        if member not in account.members:
            raise errors.NotFound(msg=f"{member} is no member of account {account_id}")
        del account.members[member]
        return account

    def leaving_or_admins() -> None:
        if member != caller.email:
            _admins(caller, account_id)()

    return _changed(account_id, member, change, backends, caller, allowed=leaving_or_admins)


def _admins(caller: Caller, account_id: str) -> Callable[[], None]:
    return lambda: caller.require(account_id, Role.ADMIN)


def _changed(
    account_id: str,
    member: str,
    change: Change,
    backends: Backends,
    caller: Caller,
    *,
    allowed: Callable[[], None],
) -> Account:
    """`change` applied in one transaction, to the account as it reads there: 404 for a
    caller who may not see it, `allowed` (Forbidden) before the change, and never the last
    admin gone but by an operator."""
    if not access.ACCOUNT_ID.fullmatch(account_id):
        raise errors.NoSuchAccount(account_id)

    def checked(account: Account) -> Account:
        _shown(account, account_id, caller)
        allowed()
        had_admin = bool(account.admins)
        account = change(account)
        if had_admin and not account.admins and not caller.operator:
            raise errors.Conflict(
                msg=f"{member} is the last admin of account {account_id}: make another "
                "member admin first",
                data={"account_id": account_id},
            )
        return account

    changed = backends.accounts.change(account_id, checked)
    if changed is None:
        raise errors.NoSuchAccount(account_id)
    return changed
