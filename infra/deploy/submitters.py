"""The submission folders' grants: who may upload under `submissions/<account_id>/`.

The accounts' members live in Firestore; the grants are bindings of the bucket's IAM
policy with a condition on the object's name. Each deploy reads both and writes the policy
once: a binding per account for its submitters and admins, and none left for anyone who is
no longer one. Bindings that are not ours (no `... by its submitters` title) are kept as
they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.deploy.steps import SubmissionGrants

TITLE_SUFFIX = " by its submitters"
UPLOADERS = ("submitter", "admin")  # the roles that may submit


def member(email: str) -> str:
    """The IAM member of an account member's email."""
    kind = "serviceAccount" if email.endswith(".gserviceaccount.com") else "user"
    return f"{kind}:{email}"


def read_accounts(action: SubmissionGrants) -> dict[str, list[str]]:
    """Each account's uploaders (IAM members), from Firestore."""
    from google.cloud import firestore

    client = firestore.Client(project=action.project, database=action.database)
    found = {}
    for snapshot in client.collection(action.collection).stream():
        members: Mapping[str, str] = (snapshot.to_dict() or {}).get("members") or {}
        uploaders = sorted(member(email) for email, role in members.items() if role in UPLOADERS)
        if uploaders:
            found[snapshot.id] = uploaders
    return found


def policy_with(
    policy: dict[str, Any], action: SubmissionGrants, accounts: Mapping[str, list[str]]
) -> dict[str, Any]:
    """The bucket's policy with exactly these submission grants (version 3: conditions)."""
    kept = [b for b in policy.get("bindings", []) if not _ours(b, action.role)]
    ours = [
        {"role": action.role, "members": uploaders, "condition": action.condition(account_id)}
        for account_id, uploaders in sorted(accounts.items())
    ]
    return {**policy, "version": 3, "bindings": kept + ours}


def _ours(binding: Mapping[str, Any], role: str) -> bool:
    title = str((binding.get("condition") or {}).get("title", ""))
    return binding.get("role") == role and title.endswith(TITLE_SUFFIX)


def changes(before: dict[str, Any], after: dict[str, Any], role: str) -> list[str]:
    """What the new policy adds and removes, one line each, for the deploy's output."""

    def grants(policy: dict[str, Any]) -> set[tuple[str, str]]:
        return {
            (b["condition"]["title"], m)
            for b in policy.get("bindings", [])
            if _ours(b, role)
            for m in b.get("members", [])
        }

    old, new = grants(before), grants(after)
    return [f"+ {m}: {t}" for t, m in sorted(new - old)] + [
        f"- {m}: {t}" for t, m in sorted(old - new)
    ]
