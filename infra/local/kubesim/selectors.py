"""Label and field selectors, parsed the way the API server parses them.

A selector that does not parse is the client's error (400 BadRequest), so parsing is
separate from matching and raises ApiError with the server's wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.local.kubesim.status import ApiError, bad_request
from infra.local.kubesim.validation import label_key_errors, label_value_errors

_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # != and notin also match objects without the key, as in Kubernetes.
        return not present or value not in self.values


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise _parse_error(text, f"unexpected character at {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _parse_error(selector: str, detail: str) -> ApiError:
    return bad_request(f"unable to parse requirement: {detail} (selector {selector!r})")


def _check_key(selector: str, key: str) -> None:
    errors = label_key_errors(key)
    if errors:
        raise bad_request(
            f'unable to parse requirement: <nil>: Invalid value: "{key}": {errors[0]}'
        )


def _check_value(selector: str, value: str) -> None:
    errors = label_value_errors(value)
    if errors:
        raise bad_request(
            f'unable to parse requirement: values[0][{value}]: Invalid value: "{value}": '
            f"{errors[0]}"
        )


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Requirements ANDed together; raises 400 BadRequest on a malformed selector."""
    if not text or not text.strip():
        return []
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise _parse_error(text, "unexpected end of selector")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        tok = take()
        if tok == "!":
            key = take()
            _check_key(text, key)
            reqs.append(Requirement(key, "!"))
        elif tok in ("=", "==", "!=", "(", ")", ","):
            raise _parse_error(text, f"found '{tok}', expected: identifier")
        else:
            key = tok
            _check_key(text, key)
            nxt = tokens[i] if i < len(tokens) else ","
            if nxt == ",":
                reqs.append(Requirement(key, "exists"))
            elif nxt in ("=", "==", "!="):
                i += 1
                value = tokens[i] if i < len(tokens) and tokens[i] != "," else ""
                if value:
                    i += 1
                _check_value(text, value)
                reqs.append(Requirement(key, "!=" if nxt == "!=" else "=", (value,)))
            elif nxt in ("in", "notin"):
                i += 1
                if take() != "(":
                    raise _parse_error(text, "found identifier, expected: '('")
                values: list[str] = []
                while True:
                    tok = take()
                    if tok == ")":
                        break
                    if tok == ",":
                        continue
                    _check_value(text, tok)
                    values.append(tok)
                if not values:
                    raise _parse_error(
                        text, "for 'in', 'notin' operators, values set can't be empty"
                    )
                reqs.append(Requirement(key, nxt, tuple(values)))
            else:
                raise _parse_error(text, f"found '{nxt}', expected: in, notin, =, ==, !=, ','")
        if i < len(tokens):
            if tokens[i] != ",":
                raise _parse_error(text, f"found '{tokens[i]}', expected: ','")
            i += 1
            if i >= len(tokens):
                raise _parse_error(text, "found '', expected: identifier after ','")
    return reqs


def labels_match(reqs: list[Requirement], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


_FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "metadata.name": lambda o: str(o.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda o: str(o.get("metadata", {}).get("namespace", "")),
    "status.phase": lambda o: str((o.get("status") or {}).get("phase", "")),
    "spec.nodeName": lambda o: str((o.get("spec") or {}).get("nodeName", "")),
    "type": lambda o: str(o.get("type", "")),
}
_FIELDS_BY_PLURAL = {
    "pods": {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"},
    "secrets": {"metadata.name", "metadata.namespace", "type"},
    "namespaces": {"metadata.name", "status.phase"},
}


def parse_field_selector(text: str | None, plural: str) -> list[tuple[str, str, str]]:
    """(field, op, value) triples; unsupported fields are a 400 as on a real server."""
    if not text or not text.strip():
        return []
    allowed = _FIELDS_BY_PLURAL.get(plural, {"metadata.name", "metadata.namespace"})
    out: list[tuple[str, str, str]] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([^!=\s]+)\s*(!=|==|=)\s*(\S*)\s*", part)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = match.groups()
        if field not in allowed:
            raise bad_request(f'field label not supported: "{field}"')
        out.append((field, "!=" if op == "!=" else "=", value))
    return out


def fields_match(terms: list[tuple[str, str, str]], obj: dict[str, Any]) -> bool:
    for field, op, value in terms:
        actual = _FIELDS[field](obj)
        if (actual == value) != (op == "="):
            return False
    return True
