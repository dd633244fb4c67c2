"""Matching a failed pod against a Job's podFailurePolicy rules.

Follows pkg/controller/job/pod_failure_policy.go (matchPodFailurePolicy): the rules are
tried in order and the first match decides. A rule with onExitCodes looks at the
terminated containers, the regular ones first and then the init containers, skipping
exit code 0 for either operator; only a rule without onExitCodes looks at onPodConditions,
whose patterns must match a condition's type and status exactly. FailJob, FailIndex and
Count count the failure against backoffLimit, Ignore does not, and no match counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Match:
    action: str | None  # None: no rule matched
    counts: bool  # whether the failure counts against backoffLimit
    message: str | None = None  # the Job's failure message, for FailJob


def _exit_code_match(requirement: Obj, statuses: list[Obj]) -> Obj | None:
    wanted_name = requirement.get("containerName")
    values = requirement.get("values") or []
    operator = requirement.get("operator")
    for item in statuses:
        term = (item.get("state") or {}).get("terminated")
        if term is None:
            continue  # still running or terminating: no exit code to match
        if wanted_name is not None and wanted_name != item.get("name"):
            continue
        code = int(term.get("exitCode", 0))
        if code == 0:
            continue
        if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
            return item
    return None


def _condition_match(patterns: list[Obj], pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                "status"
            ):
                result: Obj = cond
                return result
    return None


def match_rules(job: Obj, pod: Obj) -> Match:
    """What the Job's podFailurePolicy says about this failed pod."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return Match(None, True)
    meta, status = pod["metadata"], pod.get("status") or {}
    where = f"{meta['namespace']}/{meta['name']}"
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        message = None
        if rule.get("onExitCodes") is not None:
            found = _exit_code_match(rule["onExitCodes"], status.get("containerStatuses") or [])
            if found is None:
                found = _exit_code_match(
                    rule["onExitCodes"], status.get("initContainerStatuses") or []
                )
            if found is None:
                continue
            code = found["state"]["terminated"]["exitCode"]
            message = (
                f"Container {found['name']} for pod {where} failed with exit code {code} "
                f"matching {action} rule at index {index}"
            )
        elif rule.get("onPodConditions") is not None:
            cond = _condition_match(rule["onPodConditions"], pod)
            if cond is None:
                continue
            message = (
                f"Pod {where} has condition {cond['type']} matching {action} rule at index {index}"
            )
        else:
            continue
        if action == "Ignore":
            return Match("Ignore", False)
        if action == "Count":
            return Match("Count", True)
        if action == "FailJob":
            return Match("FailJob", True, message)
        if action == "FailIndex":  # counted, and the index fails (indexed.py)
            return Match("FailIndex", True)
    return Match(None, True)
