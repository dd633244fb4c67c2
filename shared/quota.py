"""A quota of the cluster: CPU, memory and pods on each of two resource flavors, on-demand
and Spot capacity, as `{"<flavor>": {"<resource>": "<quantity>"}}`. One parser for the
accounts API and the DEFAULT_QUOTA setting (shared/model/queues.py says what Kueue makes
of it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.quantity import parse_quantity

ON_DEMAND, SPOT = "on-demand", "spot"
FLAVORS = (ON_DEMAND, SPOT)  # in the order Kueue tries them for a job that names neither
RESOURCES = ("cpu", "memory", "pods")

Quota = Mapping[str, Mapping[str, str]]  # flavor -> resource -> quantity
MAX_AMOUNT = 10**15  # more than any cluster has; Kubernetes' quantities end near 2**63
ZERO: Quota = {flavor: dict.fromkeys(RESOURCES, "0") for flavor in FLAVORS}


class QuotaError(ValueError):
    """What is wrong, and where (`quota.<flavor>.<resource>`)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def merged(value: Any, base: Quota = ZERO) -> dict[str, dict[str, str]]:
    """`base` with what `value` gives; any flavor or resource left out kept as it is."""
    if not isinstance(value, dict) or set(value) - set(FLAVORS):
        raise QuotaError(
            "quota",
            f"Must be an object of flavors ({', '.join(FLAVORS)}), each of resources "
            f"({', '.join(RESOURCES)}) and their quantities",
        )
    result = {flavor: dict(base[flavor]) for flavor in FLAVORS}
    for flavor, resources in value.items():
        if not isinstance(resources, dict) or set(resources) - set(RESOURCES):
            raise QuotaError(f"quota.{flavor}", f"Must be an object of: {', '.join(RESOURCES)}")
        for resource, amount in resources.items():
            result[flavor][resource] = _amount(f"quota.{flavor}.{resource}", resource, amount)
    return result


def _amount(where: str, resource: str, amount: Any) -> str:
    """A quantity as Kubernetes writes it ("8", "500m", "32Gi"); pods are whole."""
    text = str(amount) if isinstance(amount, int | str) and not isinstance(amount, bool) else ""
    number = parse_quantity(text)
    whole = number is not None and number == int(number)
    if number is None or not 0 <= number <= MAX_AMOUNT or (resource == "pods" and not whole):
        kind = "a whole number" if resource == "pods" else 'a quantity ("8", "500m", "32Gi")'
        raise QuotaError(where, f"Must be {kind}, from 0 to {MAX_AMOUNT:.0e}")
    return text
