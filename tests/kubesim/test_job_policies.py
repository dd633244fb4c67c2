"""podFailurePolicy and podReplacementPolicy: defaulting and validation as the API server
does them (pkg/apis/batch/v1/defaults.go, pkg/apis/batch/validation/validation.go), and
the job-tracking finalizer the controller puts on its pods."""

from __future__ import annotations

import pytest

from tests.kubesim.helpers import (
    api_error,
    container,
    failure_policy,
    http,
    job,
    job_finished,
    job_pods,
    layout_job,
    raw,
    wait_for,
)


def with_policy(name: str, rules: list[dict], **spec) -> dict:
    body = job(name, container("main"), container("side"), suspend=True, **spec)
    body["spec"]["template"]["spec"]["initContainers"] = [container("setup")]
    body["spec"]["podFailurePolicy"] = {"rules": rules}
    return body


def exit_rule(values, operator="In", action="FailJob", name="main") -> dict:
    codes = {"operator": operator, "values": values}
    if name is not None:
        codes["containerName"] = name
    return {"action": action, "onExitCodes": codes}


def causes(kubesim, namespace, body) -> list[tuple[str, str, str]]:
    """The 422's causes; by plain HTTP, as the client itself refuses some of these bodies."""
    status, error = http(kubesim, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
    assert status == 422 and error["reason"] == "Invalid", error
    return [(c["field"], c["reason"], c["message"]) for c in error["details"]["causes"]]


RULE = "spec.podFailurePolicy.rules[0]"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            exit_rule([1], name="nope"),
            [
                (
                    f"{RULE}.onExitCodes.containerName",
                    "FieldValueInvalid",
                    'Invalid value: "nope": must be one of the container or initContainer '
                    "names in the pod template",
                )
            ],
        ),
        (
            exit_rule([]),
            [
                (
                    f"{RULE}.onExitCodes.values",
                    "FieldValueInvalid",
                    "Invalid value: []int32{}: at least one value is required",
                )
            ],
        ),
        (
            exit_rule(list(range(1, 257))),
            [
                (
                    f"{RULE}.onExitCodes.values",
                    "FieldValueTooMany",
                    "Too many: 256: must have at most 255 items",
                )
            ],
        ),
        (
            exit_rule([0, 1]),
            [
                (
                    f"{RULE}.onExitCodes.values[0]",
                    "FieldValueInvalid",
                    "Invalid value: 0: must not be 0 for the In operator",
                )
            ],
        ),
        (
            exit_rule([3, 3]),
            [(f"{RULE}.onExitCodes.values[1]", "FieldValueDuplicate", "Duplicate value: 3")],
        ),
        (
            exit_rule([5, 2]),
            [
                (
                    f"{RULE}.onExitCodes.values",
                    "FieldValueInvalid",
                    "Invalid value: []int32{5, 2}: must be ordered",
                )
            ],
        ),
        (
            exit_rule([1], operator="Maybe"),
            [
                (
                    f"{RULE}.onExitCodes.operator",
                    "FieldValueNotSupported",
                    'Unsupported value: "Maybe": supported values: "In", "NotIn"',
                )
            ],
        ),
        (
            exit_rule([1], action="Retry"),
            [
                (
                    f"{RULE}.action",
                    "FieldValueNotSupported",
                    'Unsupported value: "Retry": supported values: "Count", "FailIndex", '
                    '"FailJob", "Ignore"',
                )
            ],
        ),
        (
            {"onExitCodes": {"operator": "In", "values": [1]}},
            [
                (
                    f"{RULE}.action",
                    "FieldValueRequired",
                    'Required value: valid values: ["Count" "FailIndex" "FailJob" "Ignore"]',
                )
            ],
        ),
        (
            exit_rule([1], action="FailIndex"),
            [
                (
                    f"{RULE}.action",
                    "FieldValueInvalid",
                    'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set',
                )
            ],
        ),
        (
            {"action": "Ignore"},
            [
                (
                    RULE,
                    "FieldValueInvalid",
                    "Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                )
            ],
        ),
        (
            {
                **exit_rule([1]),
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            [
                (
                    RULE,
                    "FieldValueInvalid",
                    "Invalid value: specifying both OnExitCodes and OnPodConditions is not "
                    "supported",
                )
            ],
        ),
        (
            {"action": "Ignore", "onPodConditions": [{"type": "Ready", "status": "Maybe"}]},
            [
                (
                    f"{RULE}.onPodConditions[0].status",
                    "FieldValueNotSupported",
                    'Unsupported value: "Maybe": supported values: "False", "True", "Unknown"',
                )
            ],
        ),
    ],
)
def test_invalid_rules(kubesim, namespace, rule, expected):
    assert causes(kubesim, namespace, with_policy("bad", [rule])) == expected


def test_rules_may_name_init_containers_and_use_not_in_zero(batch_v1, namespace):
    rules = [exit_rule([0], operator="NotIn", name="setup"), exit_rule([1, 7, 255], name=None)]
    assert batch_v1.create_namespaced_job(namespace, with_policy("ok", rules))


def test_whole_message_lists_every_cause_in_order(batch_v1, namespace):
    rules = [exit_rule([2, 0, 2], name="gone")]
    status, error = api_error(batch_v1.create_namespaced_job, namespace, with_policy("many", rules))
    assert status == 422
    assert error["message"] == (
        'Job.batch "many" is invalid: ['
        f'{RULE}.onExitCodes.containerName: Invalid value: "gone": must be one of the container '
        "or initContainer names in the pod template, "
        f"{RULE}.onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator, "
        f"{RULE}.onExitCodes.values[2]: Duplicate value: 2, "
        f"{RULE}.onExitCodes.values: Invalid value: []int32{{2, 0, 2}}: must be ordered]"
    )


def test_more_than_twenty_rules(kubesim, namespace):
    rules = [exit_rule([i]) for i in range(1, 22)]
    assert causes(kubesim, namespace, with_policy("long", rules)) == [
        (
            "spec.podFailurePolicy.rules",
            "FieldValueTooMany",
            "Too many: 21: must have at most 20 items",
        )
    ]


def test_restart_policy_must_be_never(kubesim, namespace):
    body = with_policy("onfail", [exit_rule([1])])
    body["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert causes(kubesim, namespace, body) == [
        (
            "spec.template.spec.restartPolicy",
            "FieldValueInvalid",
            'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is '
            "specified",
        )
    ]


def test_exit_codes_must_be_integers(kubesim, namespace):
    body = with_policy("typed", [exit_rule(["3"])])
    status, error = http(kubesim, "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body)
    assert status == 400 and error["reason"] == "BadRequest"
    assert error["message"].startswith('Job in version "v1" cannot be handled as a Job: json:')


def test_pod_replacement_policy_defaults(batch_v1, namespace):
    with_pfp = batch_v1.create_namespaced_job(namespace, with_policy("a", [exit_rule([1])]))
    assert with_pfp.spec.pod_replacement_policy == "Failed"
    plain = batch_v1.create_namespaced_job(namespace, job("b", suspend=True))
    assert plain.spec.pod_replacement_policy == "TerminatingOrFailed"


def test_pod_replacement_policy_validation(kubesim, namespace):
    body = with_policy("c", [exit_rule([1])], podReplacementPolicy="TerminatingOrFailed")
    assert causes(kubesim, namespace, body) == [
        (
            "spec.podReplacementPolicy",
            "FieldValueNotSupported",
            'Unsupported value: "TerminatingOrFailed": supported values: "Failed"',
        )
    ]
    odd = job("d", suspend=True, podReplacementPolicy="Sometimes")
    assert causes(kubesim, namespace, odd) == [
        (
            "spec.podReplacementPolicy",
            "FieldValueNotSupported",
            'Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed"',
        )
    ]


def test_updates_are_validated_too(batch_v1, namespace):
    batch_v1.create_namespaced_job(namespace, with_policy("u", [exit_rule([1])]))
    status, error = api_error(
        batch_v1.patch_namespaced_job,
        "u",
        namespace,
        {"spec": {"podReplacementPolicy": "TerminatingOrFailed"}},
    )
    assert status == 422
    assert error["details"]["causes"][0]["field"] == "spec.podReplacementPolicy"
    status, error = api_error(
        batch_v1.patch_namespaced_job,
        "u",
        namespace,
        {"spec": {"podFailurePolicy": {"rules": [exit_rule([2])]}}},
        _content_type="application/merge-patch+json",
    )
    assert status == 422
    assert [c["field"] for c in error["details"]["causes"]] == ["spec.podFailurePolicy"]
    assert "field is immutable" in error["message"]


def test_product_policy_is_valid_and_pods_are_tracked(batch_v1, core_v1, namespace):
    """The product's policy passes validation; each pod carries the job-tracking finalizer
    until the controller has counted it."""
    user = container(KUBESIM_SH="cp /input/in.txt /output/out.txt")
    created = batch_v1.create_namespaced_job(namespace, layout_job("prod", user))
    assert created.spec.pod_failure_policy.rules[2].on_exit_codes.values == [0]
    assert raw(batch_v1.read_namespaced_job, "prod", namespace)["spec"]["podFailurePolicy"] == (
        failure_policy()
    )
    pods = wait_for(lambda: job_pods(core_v1, namespace, "prod"))
    assert pods[0]["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    done = wait_for(job_finished(batch_v1, namespace, "prod"))
    assert done["status"]["succeeded"] == 1
    [finished] = job_pods(core_v1, namespace, "prod")
    assert "finalizers" not in finished["metadata"]


def test_a_job_without_labels_takes_its_templates(batch_v1, namespace):
    body = job("lab", suspend=True)
    body["spec"]["template"]["metadata"] = {"labels": {"team": "a"}}
    created = batch_v1.create_namespaced_job(namespace, body)
    uid = created.metadata.uid
    assert created.metadata.labels == {
        "team": "a",
        "controller-uid": uid,
        "job-name": "lab",
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "lab",
    }
    assert created.spec.manual_selector is False
    patched = batch_v1.patch_namespaced_job("lab", namespace, {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels["x"] == "y"
    assert "x" not in patched.spec.template.metadata.labels
    labelled = batch_v1.create_namespaced_job(
        namespace, {**job("own", suspend=True), "metadata": {"name": "own", "labels": {"b": "c"}}}
    )
    assert labelled.metadata.labels == {"b": "c"}
