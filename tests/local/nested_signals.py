"""Run Python code whose first SIGTERM/SIGINT handler call is interrupted by more SIGTERMs.

    python -m tests.local.nested_signals -m MODULE [ARG...]
    python -m tests.local.nested_signals -c CODE

`make run` meets this when its process group gets SIGTERM: make forwards a second SIGTERM
to Python while Python's handler for the first one may still run, and Python runs the
second handler inside the first. Here that happens deterministically: while the first
handler call runs, SIGTERM is raised again at every function call it makes, so a nested
handler runs at every point of it (inside any `with lock:` block it enters, too). A handler
that is not safe against that hangs or fails.
"""

from __future__ import annotations

import runpy
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

_install = signal.signal
_state = {"depth": 0, "stormed": False, "raised": 0}
MAX_RAISES = 10_000


def _storm(_frame: FrameType, event: str, _arg: Any) -> None:
    if _state["depth"] == 1 and event in ("call", "c_call") and _state["raised"] < MAX_RAISES:
        _state["raised"] += 1
        signal.raise_signal(signal.SIGTERM)


def _wrap(handler: Callable[[int, FrameType | None], Any]) -> Callable[..., Any]:
    def wrapped(signum: int, frame: FrameType | None) -> Any:
        storm = not _state["stormed"]
        _state["stormed"] = True
        _state["depth"] += 1
        if storm:
            sys.setprofile(_storm)
        try:
            return handler(signum, frame)
        finally:
            if storm:
                sys.setprofile(None)
            _state["depth"] -= 1

    return wrapped


def _signal(signum: int, handler: Any) -> Any:
    if signum in (signal.SIGTERM, signal.SIGINT) and callable(handler):
        handler = _wrap(handler)
    return _install(signum, handler)


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("-m", "-c"):
        sys.exit(__doc__)
    signal.signal = _signal  # type: ignore[assignment]
    if sys.argv[1] == "-c":
        code = sys.argv[2]
        sys.argv = ["-c", *sys.argv[3:]]
        exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
    else:
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
