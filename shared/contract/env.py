"""Reading settings from the environment: the API's (shared/settings.py) and the stager's
(shared/stager/config.py). Each names the variable in the error it raises."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

N = TypeVar("N", int, float)


class EnvReader:
    """Typed reads of `env`; a missing or malformed value raises `error` naming it."""

    def __init__(self, env: Mapping[str, str], error: type[BaseException]) -> None:
        self.env = env
        self.error = error

    def text(self, name: str, default: str | None = None) -> str:
        value = self.env.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise self.error(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        return self.env.get(name, "").strip() or None

    def words(self, name: str, default: str = "") -> tuple[str, ...]:
        """A comma-separated list, each item stripped, empty items dropped."""
        return tuple(item.strip() for item in self.text(name, default).split(",") if item.strip())

    def integer(
        self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        return self._number(name, default, int, "a whole number", minimum, maximum)

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        return self._number(name, default, float, "a number", minimum, None)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean: 1/true/yes/on or 0/false/no/off (any case); unset is `default`."""
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("0", "false", "no", "off"):
            return False
        if raw in ("1", "true", "yes", "on"):
            return True
        raise self.error(f"{name} must be true or false, got {raw!r}")

    def _number(
        self,
        name: str,
        default: N,
        kind: Callable[[str], N],
        what: str,
        minimum: N,
        maximum: N | None,
    ) -> N:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise self.error(f"{name} must be {what}, got {raw!r}") from None
        if value < minimum:
            raise self.error(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.error(f"{name} must be at most {maximum}, got {value}")
        return value
