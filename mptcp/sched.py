"""Packet schedulers: which subflow(s) carry the next chunk of data-level bytes
(RFC 8684 §3.3.8 "the sender ... decides which subflow to use", RFC 6182 §5.3; Linux's
``mptcp_subflow_get_send`` for the default).

A scheduler sees the connection's *usable* subflows (established -- a joined one only after
the peer's fourth ACK, RFC 8684 §3.2 -- not stale, not closing, in no fallback) as
:class:`SubflowView` objects and returns the ones the next chunk goes on: one for the usual
schedulers, several for :class:`Redundant`.  An empty answer means "nothing to send now" (all
candidates are full); the connection tries again after the next ACK.

Backup subflows (our own backup flag on the subflow, or the peer's -- the MP_JOIN B flag or
MP_PRIO, §3.3.8) are only used when no regular subflow is usable: :func:`eligible` is shared by
every scheduler here; an experiment's scheduler may ignore it.

- :class:`MinRtt` (default, like Linux): the subflow with the lowest smoothed RTT among those
  with room in their congestion window.
- :class:`RoundRobin`: the next subflow with room in turn (the turn advances per chunk).
- :class:`Redundant`: every eligible subflow with room carries the chunk (the receiver keeps
  the first copy; lower latency under loss, at the price of capacity); a subflow without room
  at that moment does not get that chunk, so a stalled path never holds the others back.
- :class:`ActiveBackup`: all data on one regular subflow (the first established) while it is
  usable; the next one, and backups last, only when it is not (a strict backup-aware policy,
  no load sharing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = [
    "SubflowView", "Scheduler", "MinRtt", "RoundRobin", "Redundant", "ActiveBackup",
    "SCHEDULERS", "create_scheduler", "eligible",
]


class SubflowView(Protocol):
    """What a scheduler may look at (the connection's ``Subflow`` objects)."""

    @property
    def sid(self) -> int: ...

    @property
    def is_backup(self) -> bool: ...

    @property
    def srtt(self) -> float: ...

    @property
    def unit(self) -> int:
        """The largest chunk the subflow takes at once (one mapping)."""
        ...

    @property
    def room(self) -> int:
        """Bytes the subflow can take now without exceeding its congestion window plus a
        small queue (0 = full)."""
        ...


class Scheduler(Protocol):
    name: str

    def select(self, subflows: Sequence[SubflowView]) -> list[SubflowView]: ...


def eligible(subflows: Sequence[SubflowView]) -> list[SubflowView]:
    """The regular subflows, or the backups when there is no regular one (RFC 8684 §3.3.8)."""
    regular = [s for s in subflows if not s.is_backup]
    return regular if regular else list(subflows)


class MinRtt:
    name = "minrtt"

    def select(self, subflows: Sequence[SubflowView]) -> list[SubflowView]:
        best: SubflowView | None = None
        for s in eligible(subflows):
            if s.room > 0 and (best is None or s.srtt < best.srtt):
                best = s
        return [] if best is None else [best]


class RoundRobin:
    name = "roundrobin"

    def __init__(self) -> None:
        self.last = -1

    def select(self, subflows: Sequence[SubflowView]) -> list[SubflowView]:
        cands = sorted(eligible(subflows), key=lambda s: s.sid)
        if not cands:
            return []
        # the first subflow with room after the last one used
        after = [s for s in cands if s.sid > self.last] + [s for s in cands if s.sid <= self.last]
        for s in after:
            if s.room > 0:
                self.last = s.sid
                return [s]
        return []


class Redundant:
    name = "redundant"

    def select(self, subflows: Sequence[SubflowView]) -> list[SubflowView]:
        # every eligible subflow that has room now: waiting for a full (or stalled) one
        # would make the copies as slow as the slowest path; a full one misses the chunk
        return sorted((s for s in eligible(subflows) if s.room > 0), key=lambda s: s.srtt)


class ActiveBackup:
    name = "activebackup"

    def select(self, subflows: Sequence[SubflowView]) -> list[SubflowView]:
        cands = eligible(subflows)
        if not cands:
            return []
        first = min(cands, key=lambda s: s.sid)
        return [first] if first.room > 0 else []


SCHEDULERS: dict[str, Callable[[], Scheduler]] = {
    "minrtt": MinRtt, "roundrobin": RoundRobin, "redundant": Redundant,
    "activebackup": ActiveBackup,
}


def create_scheduler(name: str) -> Scheduler:
    try:
        return SCHEDULERS[name]()
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r} (known: {', '.join(SCHEDULERS)})") from None
