"""Defaulting and validation of a batch/v1 JobSpec, with the API server's field paths,
messages and order.

Defaults follow pkg/apis/batch/v1/defaults.go (SetDefaults_Job): completions and
parallelism are 1 when both are missing, parallelism alone is 1 otherwise (completions stay
unset: a work queue); backoffLimit is 6, or MaxInt32 when backoffLimitPerIndex is set;
completionMode is NonIndexed; podReplacementPolicy is Failed when a podFailurePolicy is set,
TerminatingOrFailed otherwise (JobPodReplacementPolicy is on by default from 1.29), and an
onPodConditions pattern without a status means "True".

Indexed Jobs (validateJobSpec, 1.32-1.33): completions are required; parallelism is at most
100,000; maxFailedIndexes needs backoffLimitPerIndex and is at most completions and
100,000; above 100,000 completions with backoffLimitPerIndex, maxFailedIndexes is required
and it and parallelism are at most 10,000. backoffLimitPerIndex and maxFailedIndexes need
the Indexed mode. ValidateJob refuses a name whose last pod hostname (`<name>-<completions
- 1>`) is no DNS label. On update, completionMode and backoffLimitPerIndex are immutable,
and an Indexed Job's completions may change only together with parallelism, to the same
value (validateCompletions: elastic Indexed Jobs, GA in 1.31).

Validation follows pkg/apis/batch/validation/validation.go (validateJobSpec,
validatePodFailurePolicy, validatePodFailurePolicyRule, ...OnExitCodes, ...OnPodConditions,
validatePodReplacementPolicy, ValidateJobSpecUpdate) as of 1.31-1.33. Values are shown as
apimachinery's field.Error shows them: strings quoted, numbers bare, a list of exit codes
as Go prints an []int32 ("[]int32{3, 1}").
"""

from __future__ import annotations

from typing import Any

from infra.local.kubesim.status import (
    Cause,
    bad_request,
    invalid_value,
    required,
    unsupported,
)
from infra.local.kubesim.validation import dns_label_errors, label_key_errors

MAX_RULES = 20
MAX_INT32 = 2**31 - 1
INDEXED_MAX = 100_000  # maxParallelismForIndexedJob, maxFailedIndexesForIndexedJob
COMPLETIONS_SOFT_LIMIT = 100_000  # completionsSoftLimit
HIGH_COMPLETIONS_MAX = 10_000  # parallelismLimitForHighCompletions, maxFailedIndexes...
MAX_EXIT_CODE_VALUES = 255
MAX_CONDITION_PATTERNS = 20
ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]  # sets.List: sorted
OPERATORS = ["In", "NotIn"]
CONDITION_STATUSES = ["False", "True", "Unknown"]
REPLACEMENT_POLICIES = ["Failed", "TerminatingOrFailed"]
NONNEGATIVE = "must be greater than or equal to 0"


def _go_list(values: Any) -> str:
    """How Go's %#v prints an []int32: `[]int32{1, 2}`, `[]int32{}`, `[]int32(nil)`."""
    if values is None:
        return "[]int32(nil)"
    return "[]int32{" + ", ".join(str(v) for v in values) + "}"


def _go_strings(values: list[str]) -> str:
    """How Go's %q prints a []string: `["a" "b"]`."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _omitted(path: str, detail: str) -> Cause:
    """field.Invalid with field.OmitValueType{}: no value in the message."""
    return Cause(path, "FieldValueInvalid", f"Invalid value: {detail}")


def _too_many(path: str, count: int, limit: int) -> Cause:
    return Cause(path, "FieldValueTooMany", f"Too many: {count}: must have at most {limit} items")


def _decode_error(detail: str) -> Exception:
    return bad_request(f'Job in version "v1" cannot be handled as a Job: {detail}')


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def default_counts(spec: dict[str, Any]) -> None:
    """SetDefaults_Job's counters and completion mode (on create)."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    if spec.get("completionMode") is None:
        spec["completionMode"] = "NonIndexed"


def default_job_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Job's share that concerns the failure and replacement policies."""
    policy = spec.get("podFailurePolicy")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if policy else "TerminatingOrFailed"
    if isinstance(policy, dict):
        for rule in policy.get("rules") or []:
            for pattern in _dict(rule).get("onPodConditions") or []:
                if isinstance(pattern, dict) and not pattern.get("status"):
                    pattern["status"] = "True"


_RULES_FIELD = "PodFailurePolicy.spec.podFailurePolicy.rules"
_VALUES_FIELD = (
    "PodFailurePolicyOnExitCodesRequirement.spec.podFailurePolicy.rules.onExitCodes.values"
)


def _check_types(policy: Any) -> None:
    """What the JSON decoder refuses before validation runs (a 400, not a 422)."""
    if not isinstance(policy, dict):
        raise _decode_error("json: cannot unmarshal into Go struct field JobSpec.podFailurePolicy")
    rules = policy.get("rules")
    if rules is not None and not isinstance(rules, list):
        raise _decode_error(f"json: cannot unmarshal into Go struct field {_RULES_FIELD}")
    for rule in rules or []:
        if not isinstance(rule, dict):
            raise _decode_error(f"json: cannot unmarshal into Go struct field {_RULES_FIELD}")
        for value in _dict(rule.get("onExitCodes")).get("values") or []:
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31:
                continue
            kind = "number" if isinstance(value, int | float) else type(value).__name__
            raise _decode_error(
                f"json: cannot unmarshal {kind} into Go struct field {_VALUES_FIELD} of type int32"
            )


def _on_exit_codes(codes: dict[str, Any], path: str, names: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    operator = codes.get("operator") or ""
    if not operator:
        causes.append(required(f"{path}.operator", f"valid values: {_go_strings(OPERATORS)}"))
    elif operator not in OPERATORS:
        causes.append(unsupported(f"{path}.operator", operator, OPERATORS))
    name = codes.get("containerName")
    if name is not None and name not in names:
        causes.append(
            invalid_value(
                f"{path}.containerName",
                name,
                "must be one of the container or initContainer names in the pod template",
            )
        )
    values = codes.get("values")
    values_path = f"{path}.values"
    if not values:
        causes.append(
            Cause(
                values_path,
                "FieldValueInvalid",
                f"Invalid value: {_go_list(values)}: at least one value is required",
            )
        )
    elif len(values) > MAX_EXIT_CODE_VALUES:
        causes.append(_too_many(values_path, len(values), MAX_EXIT_CODE_VALUES))
    ordered = True
    seen: set[int] = set()
    items: list[int] = list(values or [])
    for j, value in enumerate(items):
        at = f"{values_path}[{j}]"
        if operator == "In" and value == 0:
            causes.append(invalid_value(at, value, "must not be 0 for the In operator"))
        if value in seen:
            causes.append(Cause(at, "FieldValueDuplicate", f"Duplicate value: {value}"))
        else:
            seen.add(value)
        if j > 0 and items[j - 1] > value:
            ordered = False
    if not ordered:
        shown = _go_list(values)
        causes.append(
            Cause(values_path, "FieldValueInvalid", f"Invalid value: {shown}: must be ordered")
        )
    return causes


def _on_pod_conditions(patterns: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if len(patterns) > MAX_CONDITION_PATTERNS:
        causes.append(_too_many(path, len(patterns), MAX_CONDITION_PATTERNS))
    for j, pattern in enumerate(patterns):
        pattern = _dict(pattern)
        at = f"{path}[{j}]"
        kind = str(pattern.get("type") or "")
        causes.extend(invalid_value(f"{at}.type", kind, m) for m in label_key_errors(kind))
        status = pattern.get("status") or ""
        if not status:
            causes.append(
                required(f"{at}.status", f"valid values: {_go_strings(CONDITION_STATUSES)}")
            )
        elif status not in CONDITION_STATUSES:
            causes.append(unsupported(f"{at}.status", status, CONDITION_STATUSES))
    return causes


def _rule(spec: dict[str, Any], rule: dict[str, Any], path: str, names: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    action = rule.get("action") or ""
    if not action:
        causes.append(required(f"{path}.action", f"valid values: {_go_strings(ACTIONS)}"))
    elif action == "FailIndex":
        if spec.get("backoffLimitPerIndex") is None:
            causes.append(
                invalid_value(
                    f"{path}.action", action, "requires the backoffLimitPerIndex to be set"
                )
            )
    elif action not in ACTIONS:
        causes.append(unsupported(f"{path}.action", action, ACTIONS))
    codes = rule.get("onExitCodes")
    conditions = rule.get("onPodConditions") or []
    if codes is not None:
        causes.extend(_on_exit_codes(_dict(codes), f"{path}.onExitCodes", names))
    if conditions:
        causes.extend(_on_pod_conditions(list(conditions), f"{path}.onPodConditions"))
    if codes is not None and conditions:
        causes.append(
            _omitted(path, "specifying both OnExitCodes and OnPodConditions is not supported")
        )
    if codes is None and not conditions:
        detail = "specifying one of OnExitCodes and OnPodConditions is required"
        causes.append(_omitted(path, detail))
    return causes


def pod_failure_policy_causes(spec: dict[str, Any]) -> list[Cause]:
    """validatePodFailurePolicy: the rules against the template's container names."""
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return []
    _check_types(policy)
    rules = policy.get("rules") or []
    path = "spec.podFailurePolicy.rules"
    causes: list[Cause] = []
    if len(rules) > MAX_RULES:
        causes.append(_too_many(path, len(rules), MAX_RULES))
    pod = _dict(_dict(spec.get("template")).get("spec"))
    names = {
        str(_dict(c).get("name"))
        for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]
    }
    for i, rule in enumerate(rules):
        causes.extend(_rule(spec, rule, f"{path}[{i}]", names))
    return causes


def pod_replacement_policy_causes(spec: dict[str, Any]) -> list[Cause]:
    value = spec.get("podReplacementPolicy")
    if value is None:
        return []
    path = "spec.podReplacementPolicy"
    if spec.get("podFailurePolicy") is not None:
        if value != "Failed":
            return [unsupported(path, value, ["Failed"])]
    elif value not in REPLACEMENT_POLICIES:
        return [unsupported(path, value, REPLACEMENT_POLICIES)]
    return []


def counters_causes(spec: dict[str, Any]) -> list[Cause]:
    """The non-negative integers of validateJobSpec and the completion mode's rules, in its
    order."""
    causes: list[Cause] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        value = spec.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _decode_error(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                f"JobSpec.spec.{key} of type int32"
            )
        if value < 0:
            causes.append(invalid_value(f"spec.{key}", value, NONNEGATIVE))
        if key == "maxFailedIndexes" and spec.get("backoffLimitPerIndex") is None:
            causes.append(
                required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified")
            )
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(unsupported("spec.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed":
        causes.extend(_indexed_causes(spec))
    if mode in (None, "NonIndexed"):
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                causes.append(
                    invalid_value(f"spec.{key}", spec[key], "requires indexed completion mode")
                )
    return causes


def _indexed_causes(spec: dict[str, Any]) -> list[Cause]:
    """validateJobSpec's rules for completionMode Indexed."""
    causes: list[Cause] = []
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    most, per_index = spec.get("maxFailedIndexes"), spec.get("backoffLimitPerIndex")
    if completions is None:
        causes.append(required("spec.completions", "when completion mode is Indexed"))
    if parallelism is not None and parallelism > INDEXED_MAX:
        detail = f"must be less than or equal to {INDEXED_MAX} when completion mode is Indexed"
        causes.append(invalid_value("spec.parallelism", parallelism, detail))
    if completions is not None and most is not None and most > completions:
        detail = "must be less than or equal to completions"
        causes.append(invalid_value("spec.maxFailedIndexes", most, detail))
    if most is not None and most > INDEXED_MAX:
        detail = f"must be less than or equal to {INDEXED_MAX}"
        causes.append(invalid_value("spec.maxFailedIndexes", most, detail))
    if completions is not None and completions > COMPLETIONS_SOFT_LIMIT and per_index is not None:
        high = (
            f"must be less than or equal to {HIGH_COMPLETIONS_MAX} when completions are above "
            f"{COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        )
        if most is None:
            detail = f"must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"
            causes.append(required("spec.maxFailedIndexes", detail))
        if parallelism is not None and parallelism > HIGH_COMPLETIONS_MAX:
            causes.append(invalid_value("spec.parallelism", parallelism, high))
        if most is not None and most > HIGH_COMPLETIONS_MAX:
            causes.append(invalid_value("spec.maxFailedIndexes", most, high))
    return causes


def hostname_causes(name: str, spec: dict[str, Any]) -> list[Cause]:
    """ValidateJob: an Indexed Job's last pod hostname, `<name>-<completions - 1>`, must be
    a DNS label."""
    completions = spec.get("completions")
    if spec.get("completionMode") != "Indexed" or not isinstance(completions, int):
        return []
    if completions <= 0:
        return []
    hostname = f"{name}-{completions - 1}"
    if not dns_label_errors(hostname):
        return []
    detail = f"will not able to create pod with invalid DNS label: {hostname}"
    return [invalid_value("metadata.name", name, detail)]


def restart_policy_causes(spec: dict[str, Any]) -> list[Cause]:
    """The Job's own restartPolicy rules, after the pod template's validation."""
    policy = _dict(_dict(spec.get("template")).get("spec")).get("restartPolicy") or ""
    path = "spec.template.spec.restartPolicy"
    if policy in ("Always", ""):
        return [required(path, 'valid values: "OnFailure", "Never"')]
    if policy not in ("OnFailure", "Never"):
        return [unsupported(path, policy, ["OnFailure", "Never"])]
    if spec.get("podFailurePolicy") is not None and policy != "Never":
        detail = 'only "Never" is supported when podFailurePolicy is specified'
        return [invalid_value(path, policy, detail)]
    return []


IMMUTABLE = (
    "completions",
    "selector",
    "template",
    "completionMode",
    "podFailurePolicy",
    "backoffLimitPerIndex",
    "managedBy",
    "successPolicy",
)


def immutable_causes(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """ValidateJobSpecUpdate's immutable fields, in its order; an Indexed Job's completions
    follow validateCompletions."""
    causes: list[Cause] = []
    for key in IMMUTABLE:
        if new.get(key) == old.get(key):
            continue
        if key == "completions" and new.get("completionMode") == "Indexed":
            value = new.get(key)
            if value is not None and value != new.get("parallelism"):
                detail = "can only be modified in tandem with spec.parallelism"
                causes.append(invalid_value("spec.completions", value, detail))
            continue
        value = new.get(key)  # a scalar shows as itself; a struct's dump is left out
        shown = value if isinstance(value, str | int) and not isinstance(value, bool) else ""
        causes.append(invalid_value(f"spec.{key}", shown, "field is immutable"))
    return causes
