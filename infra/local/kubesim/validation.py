"""Name and label rules of Kubernetes (apimachinery's validation), with its exact wording.

The messages are what a real API server returns, so code that shows them to users or
matches on them sees the same text against kubesim as against a cluster.
"""

from __future__ import annotations

import re
from typing import Any

from infra.local.kubesim.status import Cause, invalid_value

DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + ")*"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_CONFIG_KEY = r"[-._a-zA-Z0-9]+"

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def _too_long(limit: int) -> str:
    return f"must be no more than {limit} characters"


def dns_label_errors(value: str) -> list[str]:
    errors = []
    if len(value) > LABEL_MAX:
        errors.append(_too_long(LABEL_MAX))
    if not re.fullmatch(DNS1123_LABEL, value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
            "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
            f"or '123-abc', regex used for validation is '{DNS1123_LABEL}')"
        )
    return errors


def dns_subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > SUBDOMAIN_MAX:
        errors.append(_too_long(SUBDOMAIN_MAX))
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            f"'example.com', regex used for validation is '{DNS1123_SUBDOMAIN}')"
        )
    return errors


def label_key_errors(key: str) -> list[str]:
    """A qualified name: optional DNS subdomain prefix and '/', then a name of <= 63."""
    prefix, sep, name = key.rpartition("/")
    errors: list[str] = []
    if sep and not prefix:
        errors.append("prefix part must be non-empty")
    elif prefix:
        errors.extend(f"prefix part {e}" for e in dns_subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    else:
        if len(name) > LABEL_MAX:
            errors.append(f"name part {_too_long(LABEL_MAX)}")
        if not re.fullmatch(_QUALIFIED_NAME, name):
            errors.append(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                f"or '123-abc', regex used for validation is '{_QUALIFIED_NAME}')"
            )
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > LABEL_MAX:
        errors.append(_too_long(LABEL_MAX))
    if not re.fullmatch(_LABEL_VALUE, value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',"
            "  or 'my_value',  or '12345', regex used for validation is "
            f"'{_LABEL_VALUE}')"
        )
    return errors


def config_key_errors(key: str) -> list[str]:
    errors = []
    if len(key) > SUBDOMAIN_MAX:
        errors.append(_too_long(SUBDOMAIN_MAX))
    if not re.fullmatch(_CONFIG_KEY, key) or key in (".", ".."):
        errors.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            f"'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            f"'{_CONFIG_KEY}')"
        )
    return errors


def name_causes(name: str, *, label: bool = False, limit: int | None = None) -> list[Cause]:
    """metadata.name errors: DNS-1123 label (namespaces) or subdomain, with a length cap."""
    messages = dns_label_errors(name) if label else dns_subdomain_errors(name)
    if limit is not None and len(name) > limit and _too_long(limit) not in messages:
        messages = [m for m in messages if not m.startswith("must be no more")]
        messages.insert(0, _too_long(limit))
    return [invalid_value("metadata.name", name, m) for m in messages]


def map_causes(path: str, value: Any, *, check_values: bool) -> list[Cause]:
    """Label (check_values) or annotation maps: keys are qualified names, values strings."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [invalid_value(path, str(value), "must be a map of strings")]
    causes: list[Cause] = []
    for key, val in value.items():
        causes.extend(invalid_value(path, key, m) for m in label_key_errors(str(key)))
        if not isinstance(val, str):
            causes.append(invalid_value(f"{path}[{key}]", str(val), "must be a string"))
        elif check_values:
            causes.extend(invalid_value(path, val, m) for m in label_value_errors(val))
    return causes
