"""Who may do what: a verified caller, the accounts it belongs to and its role in each.

Roles nest: a `submitter` may do what a `viewer` may, an `admin` what a `submitter` may.
Operators (the OPERATORS setting) may do anything on every account, and so may every
caller while access control is off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from shared.errors import Forbidden, InvalidParameters
from shared.model.queues import RESERVED, Share
from shared.quota import Quota

# An account id is a DNS label: it names the account's queue in the cluster, too.
ACCOUNT_ID = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Enough of an address to be one: the identity token's `email` claim is what it is matched
# against, and Google's tokens carry it in lower case.
EMAIL = re.compile(r"[^@/\x00-\x20\x7f]{1,64}@[^@/\x00-\x20\x7f]{1,255}")
MAX_MEMBERS = 1000  # one Firestore document holds them all


class Role(Enum):
    VIEWER = "viewer"  # get, list, logs, outputs
    SUBMITTER = "submitter"  # also create and kill
    ADMIN = "admin"  # also manage the members

    def allows(self, needed: Role) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.SUBMITTER: 1, Role.ADMIN: 2}
# What each role is needed for, as a refusal words it.
_DOING = {
    Role.VIEWER: "see the jobs of",
    Role.SUBMITTER: "submit or kill jobs of",
    Role.ADMIN: "manage the members of",
}


@dataclass(frozen=True)
class Caller:
    """The verified email of a request's caller and its role in each of its accounts."""

    email: str | None  # None while access control is off: nobody in particular
    operator: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)

    @classmethod
    def unchecked(cls) -> Caller:
        """Access control off: whoever reaches the API may do anything, as before."""
        return cls(email=None, operator=True)

    def can(self, account_id: str | None, role: Role) -> bool:
        if self.operator:
            return True
        held = self.roles.get(account_id) if account_id is not None else None
        return held is not None and held.allows(role)

    def require(self, account_id: str | None, role: Role) -> None:
        """Forbidden, naming the account and the role it takes, unless the caller can."""
        if self.can(account_id, role):
            return
        what = f"account {account_id!r}" if account_id is not None else "no account"
        raise Forbidden(
            msg=f"{self.email} may not {_DOING[role]} {what}: that takes the "
            f"{role.value} role on it{'' if account_id else ' (or an operator)'}",
            data={"account_id": account_id, "role": role.value},
        )

    def viewable(self) -> list[str] | None:
        """The accounts whose jobs the caller may see, sorted; None for all of them."""
        if self.operator:
            return None
        return sorted(account for account, role in self.roles.items() if role.allows(Role.VIEWER))

    def default_account(self) -> str | None:
        """The account a create without `account_id` is for: the caller's only one, if it
        may submit there."""
        if len(self.roles) == 1:
            return next(iter(self.roles))
        return None


@dataclass
class Account:
    """One account, as stored in Firestore (document id = account_id)."""

    account_id: str
    members: dict[str, Role]  # email -> role
    buckets: list[str] = field(default_factory=list)  # other buckets its jobs may read
    #   gs:// inputs from (operators set them)
    created: int = 0  # epoch ms
    created_by: str | None = None
    updated: int = 0  # epoch ms of the last write
    quota: Quota | None = None  # its ClusterQueue's nominal quota; None: DEFAULT_QUOTA
    fair_share_weight: Decimal = Decimal(1)  # its share of what the cohort lends

    def share(self, default_quota: Quota) -> Share:
        """What Kueue gives the account (operators set it): shared/model/queues.py."""
        quota = self.quota if self.quota is not None else default_quota
        return Share(quota=quota, weight=self.fair_share_weight, queue=self.account_id)

    def to_document(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "members": {email: role.value for email, role in self.members.items()},
            # Firestore finds a member's accounts by this list (array-contains).
            "member_emails": sorted(self.members),
            "buckets": self.buckets,
            "created": self.created,
            "created_by": self.created_by,
            "updated": self.updated,
            "quota": _plain(self.quota),
            "fair_share_weight": float(self.fair_share_weight),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Account:
        return cls(
            account_id=str(doc["account_id"]),
            members={email: Role(role) for email, role in (doc.get("members") or {}).items()},
            buckets=list(doc.get("buckets") or []),
            created=int(doc.get("created") or 0),
            created_by=doc.get("created_by"),
            updated=int(doc.get("updated") or 0),
            quota=_plain(doc.get("quota")),
            fair_share_weight=Decimal(str(doc.get("fair_share_weight") or 1)),
        )

    def to_api(self, default_quota: Quota) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "members": {email: role.value for email, role in sorted(self.members.items())},
            "buckets": self.buckets,
            "created": self.created,
            "created_by": self.created_by,
            **self.share(default_quota).to_api(),
        }

    @property
    def admins(self) -> list[str]:
        return sorted(email for email, role in self.members.items() if role is Role.ADMIN)


def _plain(quota: Mapping[str, Mapping[str, str]] | None) -> dict[str, dict[str, str]] | None:
    if quota is None:
        return None
    return {flavor: dict(resources) for flavor, resources in quota.items()}


def account_id(value: Any) -> str:
    """A valid account id, or InvalidParameters saying what one is."""
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise InvalidParameters(
            data={
                "account_id": "Must be 1 to 63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit"
            }
        )
    if value in RESERVED:
        raise InvalidParameters(
            data={"account_id": f"{value!r} names one of the product's own queues"}
        )
    return value


def email(value: Any) -> str:
    """A member's address, in lower case, or InvalidParameters."""
    if not isinstance(value, str) or not EMAIL.fullmatch(value):
        raise InvalidParameters(data={"email": f"Not an email address: {str(value)[:80]!r}"})
    return value.lower()


def role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidParameters(data={"role": f"Must be one of: {choices}"}) from None


# A Cloud Storage bucket's name: 3 to 63 characters (222 with dots), lowercase.
BUCKET = re.compile(r"[a-z0-9][-a-z0-9_.]{1,220}[a-z0-9]")
MAX_BUCKETS = 100


def buckets(value: Any) -> list[str]:
    """A list of bucket names, checked, without repeats."""
    if not isinstance(value, list) or len(value) > MAX_BUCKETS:
        raise InvalidParameters(data={"buckets": f"Must be a list of at most {MAX_BUCKETS} names"})
    for name in value:
        if not isinstance(name, str) or not BUCKET.fullmatch(name):
            raise InvalidParameters(data={"buckets": f"Not a bucket name: {str(name)[:80]!r}"})
    return sorted(set(value))


def members(value: Any) -> dict[str, Role]:
    """`{"<email>": "<role>"}`, checked."""
    if not isinstance(value, dict):
        raise InvalidParameters(data={"members": 'Must be an object {"<email>": "<role>"}'})
    if len(value) > MAX_MEMBERS:
        raise InvalidParameters(data={"members": f"At most {MAX_MEMBERS} members"})
    return {email(address): role(given) for address, given in value.items()}
