"""Accounts in Firestore: one document per account (id = account_id) holding its members
and their roles, and the list of member emails that finds a caller's accounts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as gexc

from shared.cloud.store import bounded_calls, wrap
from shared.errors import StoreError
from shared.model.access import Account, Role
from shared.model.job import now_ms

if TYPE_CHECKING:
    from google.cloud import firestore

# A change of an account: the account as read, returning it as it is to be written.
Change = Callable[[Account], Account]


class AccountExistsError(Exception):
    pass


ROLES_SECONDS = 5.0  # how long an instance keeps a caller's roles before reading them again
MAX_KEPT_CALLERS = 10_000


class AccountStore:
    """The accounts; a caller's roles are kept ROLES_SECONDS per instance (a change made
    here clears them at once; one made by another instance reaches this one that late)."""

    def __init__(self, client: firestore.Client, collection: str, timeout: float = 15.0) -> None:
        self.client = client
        self.accounts = client.collection(collection)
        self.bounded: dict[str, Any] = bounded_calls(timeout)
        self._roles: dict[str, tuple[float, dict[str, Role]]] = {}
        self._lock = threading.Lock()

    def create(self, account: Account) -> Account:
        account.created = account.updated = now_ms()
        document = self.accounts.document(account.account_id)
        self._forget_roles()
        try:
            wrap("create account", lambda: document.create(account.to_document(), **self.bounded))
        except StoreError as error:
            if isinstance(error.__cause__, gexc.AlreadyExists):
                raise AccountExistsError(account.account_id) from None
            raise
        return account

    def get(self, account_id: str) -> Account | None:
        snapshot = wrap(
            "get account", lambda: self.accounts.document(account_id).get(**self.bounded)
        )
        return Account.from_document(snapshot.to_dict() or {}) if snapshot.exists else None

    def all(self) -> list[Account]:
        query = self.accounts.order_by("account_id")
        return [Account.from_document(s.to_dict()) for s in self._stream(query)]

    def of_member(self, email: str) -> list[Account]:
        """The accounts `email` belongs to, in any role."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.accounts.where(filter=FieldFilter("member_emails", "array_contains", email))
        found = [Account.from_document(s.to_dict()) for s in self._stream(query)]
        return sorted(found, key=lambda account: account.account_id)

    def roles_of(self, email: str) -> dict[str, Role]:
        """The caller's role in each of its accounts (read at most every ROLES_SECONDS)."""
        now = time.monotonic()
        with self._lock:
            kept = self._roles.get(email)
        if kept is not None and now - kept[0] < ROLES_SECONDS:
            return kept[1]
        roles = {a.account_id: a.members[email] for a in self.of_member(email)}
        with self._lock:
            if len(self._roles) > MAX_KEPT_CALLERS:
                self._roles.clear()
            self._roles[email] = (now, roles)
        return roles

    def _forget_roles(self) -> None:
        with self._lock:
            self._roles.clear()

    def change(self, account_id: str, change: Change) -> Account | None:
        """Apply `change` in a transaction (a concurrent change is read again and the change
        applied again); None when there is no such account."""
        from google.cloud import firestore

        document = self.accounts.document(account_id)

        @firestore.transactional
        def apply(transaction: firestore.Transaction) -> Account | None:
            snapshot = document.get(transaction=transaction)
            if not snapshot.exists:
                return None
            account = change(Account.from_document(snapshot.to_dict() or {}))
            account.updated = now_ms()
            transaction.set(document, account.to_document())
            return account

        try:
            return wrap("change account", lambda: apply(self.client.transaction()))
        finally:
            self._forget_roles()

    def _stream(self, query: Any) -> list[Any]:
        return wrap("list accounts", lambda: list(query.stream(**self.bounded)))
