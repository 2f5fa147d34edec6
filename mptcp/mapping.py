"""The Data Sequence Mappings the peer announced on one subflow (receive side).

Implements RFC 8684 §3.3.1:

* a mapping binds ``length`` bytes from a *relative* subflow sequence number (SSN; "the SYN
  at the start of the subflow has a relative subflow sequence number of 0", so the first
  data byte is SSN 1) to the data sequence space from a 64-bit DSN;
* "A mapping is fixed ... A sender MUST NOT change this mapping after it has been
  declared": a mapping that covers bytes an earlier one covers must give them the same DSNs
  (the same SSN -> DSN offset), else :class:`MappingError` (the caller treats the mapping
  as invalid); the same mapping may arrive many times (TSO copies it onto every segment,
  §3.1 says duplicates must be coped with) and may cover bytes not yet received or already
  consumed (§3.3.1: "It does not need to be included in every MPTCP packet, as long as the
  subflow sequence space in that packet is covered by a mapping known at the receiver");
* §3.3.3: with the DATA_FIN flag the data-level length counts the DATA_FIN, whose DSN
  follows the data (``Mapping.length`` here counts data bytes only, so the DATA_FIN is at
  ``dsn + length``);
* §3.3.1/§3.7: an "infinite" mapping (data-level length 0) maps every subflow byte from its
  SSN on, for the rest of the connection; it acts retroactively, so it replaces whatever
  earlier mappings said about those bytes.

SSNs are plain unbounded integers (the caller unwraps the 32-bit wire value, e.g. with
:func:`mptcp.dsn.expand`); DSNs are 64-bit, modulo 2**64.

Storage: the union of the mappings as sorted, disjoint runs ``[start, end)`` with one
``dsn - ssn`` offset each (parallel lists searched with ``bisect``); overlapping or adjacent
mappings with the same offset merge into one run, so a bulk transfer split into one mapping
per segment is a single run.  The number of runs is bounded (``max_runs``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple

from mptcp.dsn import DSN_MASK

__all__ = ["Mapping", "MappingError", "MappingLimitError", "RecvMappings", "INFINITE_LEN"]

INFINITE_LEN = 1 << 31  # contiguous length reported inside an infinite mapping


class MappingError(ValueError):
    """A mapping that contradicts an earlier one (RFC 8684 §3.3.1: "MUST be treated as
    invalid"), a conflicting DATA_FIN, or a malformed mapping."""


class MappingLimitError(MappingError):
    """More disjoint mapping runs outstanding than ``max_runs``."""


class Mapping(NamedTuple):
    """One Data Sequence Mapping (RFC 8684 §3.3.1).

    ``ssn``: relative subflow sequence number of the first byte; ``dsn``: its 64-bit data
    sequence number; ``length``: data bytes covered (the wire's data-level length minus 1
    when ``fin``); ``fin``: the DATA_FIN flag, the DATA_FIN being at DSN ``dsn + length``.
    """

    ssn: int
    dsn: int
    length: int
    fin: bool = False


class RecvMappings:
    """The mappings known for one subflow's receive direction (see the module docstring).

    ``stats`` counts ``added`` (mappings that told something new), ``duplicates`` and
    ``conflicts``.
    """

    __slots__ = (
        "_ends", "_fin", "_floor", "_inf_off", "_inf_ssn", "_offs", "_starts", "max_runs",
        "stats",
    )

    def __init__(self, max_runs: int = 65536) -> None:
        if max_runs < 1:
            raise MappingError(f"max_runs must be positive, not {max_runs}")
        self.max_runs = max_runs
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._offs: list[int] = []  # (dsn - ssn) mod 2**64 of each run
        self._floor = 0  # SSNs below it were consumed and forgotten
        self._fin: int | None = None  # DSN of the DATA_FIN
        self._inf_ssn: int | None = None
        self._inf_off = 0
        self.stats: dict[str, int] = {"added": 0, "duplicates": 0, "conflicts": 0}

    def __len__(self) -> int:
        """The number of disjoint runs held (an infinite mapping not included)."""
        return len(self._starts)

    def runs(self) -> list[Mapping]:
        """The runs held, lowest SSN first, as mappings without DATA_FIN (for tracing)."""
        return [Mapping(s, (s + o) & DSN_MASK, e - s, False)
                for s, e, o in zip(self._starts, self._ends, self._offs, strict=True)]

    @property
    def infinite_from(self) -> int | None:
        """The SSN an infinite mapping starts at, or None."""
        return self._inf_ssn

    def _conflict(self, msg: str) -> MappingError:
        self.stats["conflicts"] += 1
        return MappingError(msg)

    def add(self, m: Mapping) -> bool:
        """Record ``m``; returns True if it maps a byte (or announces a DATA_FIN) not known
        before, False for a duplicate.  A mapping that disagrees with a known one on any
        byte, or announces a DATA_FIN at another DSN, raises :class:`MappingError` and
        changes nothing."""
        ssn, dsn, length, fin = m
        if length < 0:
            raise MappingError(f"negative mapping length {length}")
        if not 0 <= dsn <= DSN_MASK:
            raise MappingError(f"DSN {dsn} is not a 64-bit number")
        if length == 0 and not fin:
            # RFC 8684 §3.3.1: data-level length 0 is the infinite mapping
            raise MappingError("a mapping of length 0 without DATA_FIN is an infinite mapping")
        if length and ssn < 1:
            raise MappingError(f"mapping at SSN {ssn}: relative SSN 0 is the SYN")
        new_fin = False
        fin_dsn = 0
        if fin:
            fin_dsn = (dsn + length) & DSN_MASK
            if self._fin is None:
                new_fin = True
            elif self._fin != fin_dsn:
                raise self._conflict(
                    f"DATA_FIN at DSN {fin_dsn}, but an earlier mapping put it at {self._fin}")
        off = (dsn - ssn) & DSN_MASK
        s, e = max(ssn, self._floor), ssn + length
        inf = self._inf_ssn
        if inf is not None and e > inf:
            if off != self._inf_off:
                raise self._conflict(f"mapping {m} contradicts the infinite mapping")
            e = max(inf, s)
        added = self._add_run(s, e, off, m) if s < e else 0
        if new_fin:
            self._fin = fin_dsn
        if added or new_fin:
            self.stats["added"] += 1
            return True
        self.stats["duplicates"] += 1
        return False

    def _add_run(self, s: int, e: int, off: int, m: Mapping) -> int:
        """Merge ``[s, e)`` with offset ``off`` into the runs; returns the bytes it added."""
        starts, ends, offs = self._starts, self._ends, self._offs
        lo = bisect_left(ends, s)  # first run ending at or after s (may touch it)
        hi = bisect_right(starts, e)  # runs starting at or before e (may touch it)
        covered = 0
        for k in range(lo, hi):
            a, b = starts[k], ends[k]
            if a < e and b > s:  # overlaps: RFC 8684 §3.3.1, the mapping is fixed
                if offs[k] != off:
                    raise self._conflict(
                        f"mapping {m} maps SSN {max(a, s)} to DSN {(max(a, s) + off) & DSN_MASK}"
                        f", an earlier one to {(max(a, s) + offs[k]) & DSN_MASK}")
                covered += min(b, e) - max(a, s)
        added = (e - s) - covered
        if not added:
            return 0
        # touching runs with another offset stay separate
        if lo < hi and ends[lo] == s and offs[lo] != off:
            lo += 1
        if hi > lo and starts[hi - 1] == e and offs[hi - 1] != off:
            hi -= 1
        if len(starts) + 1 - (hi - lo) > self.max_runs:
            raise MappingLimitError(f"more than {self.max_runs} mapping runs outstanding")
        if lo < hi:
            s = min(s, starts[lo])
            e = max(e, ends[hi - 1])
        starts[lo:hi] = [s]
        ends[lo:hi] = [e]
        offs[lo:hi] = [off]
        return added

    def lookup(self, ssn: int) -> tuple[int, int] | None:
        """``(dsn, contiguous_len)`` for the subflow byte at ``ssn``: its DSN and how many
        bytes from ``ssn`` on the same mapping (run) covers; None if no mapping covers it.
        Inside an infinite mapping ``contiguous_len`` is :data:`INFINITE_LEN`."""
        inf = self._inf_ssn
        if inf is not None and ssn >= inf:
            return (ssn + self._inf_off) & DSN_MASK, INFINITE_LEN
        starts = self._starts
        k = bisect_right(starts, ssn) - 1
        if k >= 0 and ssn < self._ends[k]:
            return (ssn + self._offs[k]) & DSN_MASK, self._ends[k] - ssn
        return None

    def consume(self, up_to_ssn: int) -> None:
        """Forget what is mapped below ``up_to_ssn`` (those bytes reached the data level);
        later mappings of those bytes are accepted without checks and not stored."""
        if up_to_ssn <= self._floor:
            return
        self._floor = up_to_ssn
        starts, ends = self._starts, self._ends
        if not starts or starts[0] >= up_to_ssn:
            return
        k = bisect_right(ends, up_to_ssn)
        if k:
            del starts[:k]
            del ends[:k]
            del self._offs[:k]
        if starts and starts[0] < up_to_ssn:
            starts[0] = up_to_ssn

    def infinite(self, ssn: int, dsn: int) -> None:
        """Record an infinite mapping (RFC 8684 §3.3.1, §3.7): every subflow byte from
        ``ssn`` on maps with the offset ``dsn - ssn``, replacing earlier mappings of those
        bytes (it acts retroactively).  Repeating it (or announcing it again from another
        SSN with the same offset) is fine; another offset raises :class:`MappingError`."""
        if ssn < 0:
            raise MappingError(f"negative SSN {ssn}")
        if not 0 <= dsn <= DSN_MASK:
            raise MappingError(f"DSN {dsn} is not a 64-bit number")
        off = (dsn - ssn) & DSN_MASK
        if self._inf_ssn is not None:
            if off != self._inf_off:
                raise self._conflict("a second infinite mapping with another offset")
            if ssn >= self._inf_ssn:
                return
        self._inf_ssn = ssn
        self._inf_off = off
        # drop the runs from ssn on and cut the one straddling it
        k = bisect_left(self._starts, ssn)
        del self._starts[k:], self._ends[k:], self._offs[k:]
        if self._ends and self._ends[-1] > ssn:
            self._ends[-1] = ssn

    def fin_at(self) -> int | None:
        """The DSN of the DATA_FIN some mapping announced, or None."""
        return self._fin
