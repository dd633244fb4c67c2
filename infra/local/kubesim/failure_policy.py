"""Matching a failed pod against a Job's podFailurePolicy rules.

The product fails a Job at once on the stager's permanent exit codes (FailJob), so the
rule matching and its message follow the Job controller's.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _exit_code_match(rule: Obj, pod: Obj) -> tuple[str, int] | None:
    spec = rule["onExitCodes"]
    wanted_name = spec.get("containerName")
    values = set(spec.get("values") or [])
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(key) or []:
            term = (item.get("state") or {}).get("terminated")
            if term is None or term.get("exitCode", 0) == 0:
                continue  # exit code 0 never matches, for either operator
            if wanted_name and item.get("name") != wanted_name:
                continue
            code = int(term["exitCode"])
            if (code in values) == (spec.get("operator", "In") == "In"):
                return item.get("name", ""), code
    return None


def match_rules(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """(action, message) of the first rule the failed pod matches, or None."""
    policy = (job.get("spec") or {}).get("podFailurePolicy") or {}
    where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action", "Count")
        if rule.get("onExitCodes"):
            found = _exit_code_match(rule, pod)
            if found is not None:
                return action, (
                    f"Container {found[0]} for pod {where} failed with exit code {found[1]} "
                    f"matching {action} rule at index {index}"
                )
        for pattern in rule.get("onPodConditions") or []:
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                    "status", "True"
                ):
                    return action, (
                        f"Pod {where} has condition {cond['type']} matching {action} rule at "
                        f"index {index}"
                    )
    return None
