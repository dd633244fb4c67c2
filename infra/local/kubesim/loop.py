"""The background loop shared by the Job controller and the garbage collector: a pass
after every change to the store, and one every `full_pass` seconds for time-based work."""

from __future__ import annotations

import threading
import time

from infra.local.kubesim.clock import Clock, log
from infra.local.kubesim.store import Store

TICK = 0.025  # wall seconds between looks at the store
BUSY_SHARE = 0.25  # at most this share of the time under the store's lock, for big stores


class StoreLoop:
    name = "background pass"
    full_pass = 0.1  # wall seconds: a pass even when nothing changed

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._last_rv = -1
        self._last_pass = 0.0
        self._rest_until = 0.0

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(TICK):
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - the loop must survive one bad object
                log("ERROR", f"{self.name} failed", error=repr(error))

    def tick(self) -> None:
        """A pass if the store changed or `full_pass` went by, unless the loop is resting.

        A pass over tens of thousands of objects takes long enough to starve the API of
        the lock; after one, the loop rests so that it holds the lock at most BUSY_SHARE
        of the time (a small store never rests: its passes take microseconds).
        """
        now = time.monotonic()
        if now < self._rest_until:
            return
        if self.store.resource_version == self._last_rv and now - self._last_pass < self.full_pass:
            return
        with self.store.lock:
            self._last_rv, self._last_pass = self.store.resource_version, now
            self.pass_once(now)
        spent = time.monotonic() - now
        self._rest_until = now + spent / BUSY_SHARE

    def pass_once(self, now: float) -> None:
        """One pass, under the store's lock."""
        raise NotImplementedError
