"""The simulator's own error type for API misuse (bad parameters, unknown names, bad wiring)."""

from __future__ import annotations

__all__ = ["NetsimError"]


class NetsimError(ValueError):
    """A simulator API was misused: invalid link parameters, duplicate names, an interface
    wired twice, an event scheduled in the past..."""
