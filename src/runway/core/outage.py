"""One line when a service starts failing, one when it answers again: not one per attempt.

A server that polls the registry every few seconds, or a writer that flushes
every second, would otherwise repeat the same complaint for as long as a
database is down. :class:`Outage` only decides what to say; the caller logs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Outage:
    """The state of one dependency (``what``: "the tracking store", "the prediction log")."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.problem = ""  # what it last failed with; "" while it answers
        self.since = 0.0
        self.count = 0  # failures in this outage
        self._clock = clock

    @property
    def down(self) -> bool:
        """True while the last attempt failed."""
        return bool(self.problem)

    def failed(self, problem: str) -> str | None:
        """The line to log for this failure: one when the outage starts or its cause changes."""
        self.count += 1
        if problem == self.problem:
            return None
        starts = not self.problem
        self.problem = problem
        if starts:
            self.since = self._clock()
            return f"{self.what} is unavailable: {problem} (said once, and again when it answers)"
        return f"{self.what} is still unavailable, now: {problem}"

    def recovered(self, detail: str = "") -> str | None:
        """The line to log when an attempt succeeds after an outage, else None."""
        if not self.problem:
            return None
        took = self._clock() - self.since
        line = f"{self.what} is back after {took:.0f}s ({self.count} failed attempts)"
        self.problem, self.count = "", 0
        return f"{line}; {detail}" if detail else line
