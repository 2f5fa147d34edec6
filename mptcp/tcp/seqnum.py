"""Sequence-space arithmetic: 32-bit TCP sequence numbers and sets of 64-bit offset ranges.

Implements the modular comparisons of RFC 9293 §3.4 ("a very important thing to remember is
that the actual sequence number space is finite ... all arithmetic dealing with sequence
numbers must be performed modulo 2**32") using the serial-number arithmetic of RFC 1982 §3.1
and §3.2 with SERIAL_BITS = 32.

The engine converts every incoming 32-bit number to a monotonically increasing 64-bit *stream
offset* once, with :func:`unwrap` (or :class:`SeqSpace`), and the buffers, scoreboard and RACK
work on those offsets only, so no other module has wrap-around bugs to have.

:class:`RangeSet` is the sorted, merged set of half-open ``[start, end)`` offset ranges that the
receive buffer (RFC 2018 SACK blocks) and the SACK scoreboard (RFC 6675 §3) are built on:
``bisect`` lookups, O(log n + k) updates where k is the number of ranges merged away.

Comparing two numbers exactly 2**31 apart is undefined by RFC 1982 §3.2: here neither is less
than the other (``seq_lt`` and ``seq_gt`` both false), and ``seq_diff`` returns ``-2**31``.
Every function accepts any ``int`` and reduces it modulo 2**32.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

__all__ = [
    "SEQ_MOD", "SEQ_MASK", "SEQ_HALF", "SeqNumError",
    "seq_add", "seq_sub", "seq_diff", "seq_lt", "seq_le", "seq_gt", "seq_ge", "seq_in_window",
    "wrap", "unwrap", "SeqSpace", "RangeSet",
]

SEQ_MOD = 1 << 32
SEQ_MASK = SEQ_MOD - 1
SEQ_HALF = 1 << 31


class SeqNumError(ValueError):
    """Misuse of the sequence-space API (a range with end < start, an ISN out of range...)."""


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (RFC 1982 §3.1; ``n`` may be negative)."""
    return (a + n) & SEQ_MASK


def seq_sub(a: int, n: int) -> int:
    """``a - n`` modulo 2**32."""
    return (a - n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in ``[-2**31, 2**31)``: positive when ``a`` is after ``b``."""
    return ((a - b + SEQ_HALF) & SEQ_MASK) - SEQ_HALF


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` in sequence space (RFC 9293 §3.4, RFC 1982 §3.2)."""
    return 0 < ((b - a) & SEQ_MASK) < SEQ_HALF


def seq_le(a: int, b: int) -> bool:
    """``a =< b`` in sequence space."""
    return ((b - a) & SEQ_MASK) < SEQ_HALF


def seq_gt(a: int, b: int) -> bool:
    """``a > b`` in sequence space."""
    return 0 < ((a - b) & SEQ_MASK) < SEQ_HALF


def seq_ge(a: int, b: int) -> bool:
    """``a >= b`` in sequence space."""
    return ((a - b) & SEQ_MASK) < SEQ_HALF


def seq_in_window(s: int, left: int, size: int) -> bool:
    """``left =< s < left + size`` modulo 2**32 (the RFC 9293 §3.10.7.4 acceptability tests);
    ``size`` must be in ``[0, 2**32]``."""
    return ((s - left) & SEQ_MASK) < size


def wrap(offset: int) -> int:
    """The 32-bit sequence number of a 64-bit offset (its low 32 bits)."""
    return offset & SEQ_MASK


def unwrap(seq32: int, ref64: int) -> int:
    """The 64-bit value congruent to ``seq32`` modulo 2**32 that is closest to ``ref64``.

    ``ref64`` is a recent offset of the same stream (for an incoming ACK: SND.UNA; for an
    incoming segment: RCV.NXT).  Values up to 2**31 - 1 after and 2**31 before ``ref64`` map
    correctly; the result is negative when ``seq32`` lies before the start of the stream.
    """
    return ref64 + (((seq32 - ref64 + SEQ_HALF) & SEQ_MASK) - SEQ_HALF)


class SeqSpace:
    """The mapping between a connection direction's 32-bit sequence numbers and its offsets.

    Offset 0 is the ISN itself (the SYN's sequence number), so the first data byte is at
    offset 1 and a FIN after ``n`` data bytes is at offset ``n + 1`` (RFC 9293 §3.4: SYN and
    FIN each occupy one sequence number).
    """

    __slots__ = ("isn",)

    def __init__(self, isn: int) -> None:
        if not 0 <= isn <= SEQ_MASK:
            raise SeqNumError(f"ISN {isn} is not a 32-bit number")
        self.isn = isn

    def offset(self, seq32: int, ref: int) -> int:
        """The offset of ``seq32``, unwrapped near the offset ``ref`` (see :func:`unwrap`)."""
        return unwrap((seq32 - self.isn) & SEQ_MASK, ref)

    def seq(self, offset: int) -> int:
        """The 32-bit sequence number carried on the wire for ``offset``."""
        return (self.isn + offset) & SEQ_MASK


class RangeSet:
    """A set of integers kept as sorted, disjoint, non-adjacent half-open ranges.

    Two parallel lists (``starts``, ``ends``) searched with ``bisect``.  Adjacent or
    overlapping ranges merge on :meth:`add`, so every stored range is a maximal run: exactly
    what a SACK block (RFC 2018 §3) describes.  ``total`` is maintained incrementally.
    """

    __slots__ = ("_ends", "_starts", "total")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self.total = 0

    def __len__(self) -> int:
        return len(self._starts)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._ends, strict=True))

    def __repr__(self) -> str:
        return f"RangeSet({self.ranges()!r})"

    def ranges(self) -> list[tuple[int, int]]:
        """All ranges, lowest first."""
        return list(zip(self._starts, self._ends, strict=True))

    @property
    def low(self) -> int | None:
        """The lowest member, or None when empty."""
        return self._starts[0] if self._starts else None

    @property
    def high(self) -> int | None:
        """One past the highest member, or None when empty."""
        return self._ends[-1] if self._ends else None

    def range_at(self, index: int) -> tuple[int, int]:
        """The ``index``-th range (negative indexes count from the top)."""
        return self._starts[index], self._ends[index]

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Indexes ``[i, j)`` of the ranges that overlap or touch ``[start, end)``."""
        if end < start:
            raise SeqNumError(f"range end {end} before start {start}")
        return bisect_left(self._ends, start), bisect_right(self._starts, end)

    def add(self, start: int, end: int) -> int:
        """Insert ``[start, end)``; returns how many members were not in the set before."""
        i, j = self._span(start, end)
        starts, ends = self._starts, self._ends
        if start == end:
            return 0
        if i == j:  # no overlap: plain insertion
            starts.insert(i, start)
            ends.insert(i, end)
            self.total += end - start
            return end - start
        new_start = min(start, starts[i])
        new_end = max(end, ends[j - 1])
        had = 0
        for k in range(i, j):
            had += ends[k] - starts[k]
        starts[i:j] = [new_start]
        ends[i:j] = [new_end]
        added = (new_end - new_start) - had
        self.total += added
        return added

    def add_gaps(self, start: int, end: int) -> list[tuple[int, int]]:
        """Insert ``[start, end)``; returns the sub-ranges that were not in the set, lowest
        first (what an ACK newly SACKed)."""
        i, j = self._span(start, end)
        starts, ends = self._starts, self._ends
        if start == end:
            return []
        gaps: list[tuple[int, int]] = []
        cur = start
        for k in range(i, j):
            if starts[k] > cur:
                gaps.append((cur, starts[k]))
            cur = max(cur, ends[k])
        if cur < end:
            gaps.append((cur, end))
        if i == j:
            starts.insert(i, start)
            ends.insert(i, end)
        else:
            new_start = min(start, starts[i])
            new_end = max(end, ends[j - 1])
            starts[i:j] = [new_start]
            ends[i:j] = [new_end]
        for s, e in gaps:
            self.total += e - s
        return gaps

    def remove_below(self, offset: int) -> int:
        """Drop every member below ``offset``; returns how many were dropped."""
        starts, ends = self._starts, self._ends
        if not starts or starts[0] >= offset:
            return 0
        i = bisect_right(ends, offset)
        removed = 0
        for k in range(i):
            removed += ends[k] - starts[k]
        del starts[:i]
        del ends[:i]
        if starts and starts[0] < offset:
            removed += offset - starts[0]
            starts[0] = offset
        self.total -= removed
        return removed

    def clear(self) -> None:
        """Remove everything."""
        self._starts.clear()
        self._ends.clear()
        self.total = 0

    def __contains__(self, x: object) -> bool:
        if not isinstance(x, int):
            return False
        k = bisect_right(self._starts, x) - 1
        return k >= 0 and x < self._ends[k]

    def find(self, x: int) -> tuple[int, int] | None:
        """The range containing ``x``, or None."""
        k = bisect_right(self._starts, x) - 1
        if k >= 0 and x < self._ends[k]:
            return self._starts[k], self._ends[k]
        return None

    def first_absent(self, x: int) -> int:
        """The smallest non-member ``>= x``."""
        k = bisect_right(self._starts, x) - 1
        if k >= 0 and x < self._ends[k]:
            return self._ends[k]
        return x

    def next_start(self, x: int) -> int | None:
        """The start of the first range beginning after ``x``, or None."""
        k = bisect_right(self._starts, x)
        return self._starts[k] if k < len(self._starts) else None

    def covered(self, lo: int, hi: int) -> int:
        """How many members lie in ``[lo, hi)``; O(log n + ranges inside)."""
        if hi <= lo:
            return 0
        starts, ends = self._starts, self._ends
        k = bisect_right(ends, lo)
        n = len(starts)
        count = 0
        while k < n and starts[k] < hi:
            count += min(ends[k], hi) - max(starts[k], lo)
            k += 1
        return count

    def contains_range(self, start: int, end: int) -> bool:
        """Whether every member of ``[start, end)`` is in the set (True when empty)."""
        if end <= start:
            return True
        k = bisect_right(self._starts, start) - 1
        return k >= 0 and end <= self._ends[k]
