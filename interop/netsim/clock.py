"""Virtual time and the event queue of the simulator.

A binary heap (``heapq``) of ``(time, tiebreak, handler, a, b)`` tuples: the tiebreak is a
monotonically increasing counter, so events due at the same instant run in the order they were
scheduled (FIFO) and the heap never compares handlers.  ``now`` is the virtual clock, advanced
only by the simulator's run loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heappush
from typing import Any

__all__ = ["Handler", "Event", "EventQueue"]

Handler = Callable[[Any, Any], None]
"""An event handler, called as ``handler(a, b)`` at the event's time (read ``queue.now``)."""

Event = tuple[float, int, Handler, Any, Any]


class EventQueue:
    """The pending events and the virtual clock (seconds, float)."""

    __slots__ = ("_tiebreak", "heap", "now")

    def __init__(self) -> None:
        self.heap: list[Event] = []
        self.now = 0.0
        self._tiebreak = itertools.count()

    def push(self, at: float, handler: Handler, a: Any = None, b: Any = None) -> None:
        """Schedule ``handler(a, b)`` at virtual time ``at`` (after everything already
        scheduled for the same instant)."""
        heappush(self.heap, (at, next(self._tiebreak), handler, a, b))

    def next_tiebreak(self) -> Callable[[], int]:
        """The tiebreak source, for callers that push onto ``heap`` themselves (hot paths)."""
        return self._tiebreak.__next__

    def __len__(self) -> int:
        return len(self.heap)
