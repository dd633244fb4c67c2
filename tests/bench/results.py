"""bench-results.json at the repository root: one flat object, metric name -> number."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "bench-results.json"


def record(figures: dict[str, float]) -> None:
    """Merge `figures` into bench-results.json, keeping other benchmarks' figures."""
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update({name: round(value, 4) for name, value in figures.items()})
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def table(figures: dict[str, float]) -> str:
    width = max(len(name) for name in figures)
    return "\n".join(f"  {name.ljust(width)}  {value:g}" for name, value in figures.items())
