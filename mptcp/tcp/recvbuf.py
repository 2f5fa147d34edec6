"""Receive-side reassembly of one TCP connection, in 64-bit stream offsets.

Implements:

* RFC 9293 §3.10.7.4 ("Segment Arrives", seventh step: process the segment text) and §3.4
  (segments may arrive duplicated, overlapping or out of order; "retransmitted data should be
  the same"): the *first* copy of every byte is kept; an overlap whose bytes differ from the
  kept copy is counted (``TcpExtTCPRcvDataMismatch``) and reported in :class:`Accepted`,
  never delivered twice.
* RFC 9293 §3.8.6 receive window: :attr:`ReceiveBuffer.window` is the free space, measured
  from RCV.NXT; out-of-order data is kept only inside it, so the right edge never moves left.
* RFC 2018 §4 SACK block generation: the block holding the most recently received segment
  first, then the blocks of the most recent earlier arrivals, then the rest.
* RFC 2883 §4 D-SACK generation: a duplicate is reported once, in the first block; when it
  lies above RCV.NXT the second block is the SACK block containing it.
* FIN at an offset (RFC 9293 §3.10.7.4 eighth step): data beyond it, or a second FIN at a
  different place, raises :class:`DataBeyondFinError` / :class:`FinMismatchError`.

Engine contract: unwrap SEG.SEQ to an offset (``mptcp.tcp.seqnum``), call :meth:`accept` for
every segment that passed the acceptability test (with ``fin=True`` when FIN is set), read
:attr:`rcv_nxt` / :attr:`fin_reached` to build the ACK (RCV.NXT in sequence space is
``rcv_nxt + 1`` once ``fin_reached``), :meth:`sack_blocks` once per ACK sent, :attr:`window`
for the advertised window (scaling and receiver SWS avoidance, RFC 9293 §3.8.6.2.2, are the
engine's), and :meth:`read` for the application.

Cost: an in-order segment with nothing queued is one ``bytearray`` append.  Out-of-order
pieces live in sorted lists (``bisect``); pieces are never concatenated with each other, they
move to the in-order buffer when RCV.NXT reaches them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import MutableMapping
from typing import NamedTuple

from mptcp.tcp.seqnum import RangeSet

__all__ = [
    "ReceiveBuffer", "Accepted", "ReassemblyError", "DataBeyondFinError", "FinMismatchError",
]

_RECENT = 8  # arrivals remembered for RFC 2018 §4 block ordering


class ReassemblyError(ValueError):
    """The peer's data contradicts itself (typed errors below) or the API was misused."""


class DataBeyondFinError(ReassemblyError):
    """Data at or beyond the FIN's offset (RFC 9293 §3.4: FIN is the last sequence number)."""


class FinMismatchError(ReassemblyError):
    """A FIN at a different offset than an earlier FIN."""


class Accepted(NamedTuple):
    """What one :meth:`ReceiveBuffer.accept` did (the engine's cue for ACK decisions)."""

    delivered: int  # bytes RCV.NXT advanced by (RFC 5681 §4.2: filling a gap -> ACK now)
    queued: int  # new bytes stored out of order (-> immediate duplicate ACK with SACK)
    duplicate: int  # bytes already received (-> D-SACK, immediate ACK)
    trimmed: int  # bytes dropped beyond the window's right edge (or for lack of room)
    mismatch: bool  # some duplicate bytes differ from the copy kept (an event to log)


class _Ready:
    """The in-order, unread bytes: a queue of chunks.  Appending never moves what is queued
    -- a bytearray read at the front and appended at the back memmoves its whole content each
    time it grows, which made this buffer the receive path's top cost once the application
    lags by megabytes (the goodput benchmark's profile)."""

    __slots__ = ("_chunks", "_head", "_len")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._head = 0  # bytes of the first chunk already taken
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iadd__(self, data: bytes | bytearray | memoryview) -> _Ready:
        if data:
            self._chunks.append(data if type(data) is bytes else bytes(data))
            self._len += len(data)
        return self

    def take(self, n: int) -> bytes:
        """Remove and return the first ``n`` bytes (n <= len)."""
        chunks = self._chunks
        head = self._head
        first = chunks[0]
        if head == 0 and len(first) == n:
            chunks.popleft()
            self._len -= n
            return first
        parts: list[bytes] = []
        need = n
        while need:
            c = chunks[0]
            avail = len(c) - head
            if avail <= need:
                parts.append(c[head:] if head else c)
                chunks.popleft()
                head = 0
                need -= avail
            else:
                parts.append(c[head:head + need])
                head += need
                need = 0
        self._head = head
        self._len -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def slice(self, i: int, j: int) -> bytes:
        """Unread bytes ``[i, j)`` (offsets from the first unread byte), without removing."""
        out: list[bytes] = []
        pos = -self._head
        for c in self._chunks:
            end = pos + len(c)
            if end > i and pos < j:
                out.append(c[max(i - pos, 0):min(j, end) - pos])
            if end >= j:
                break
            pos = end
        return b"".join(out)


class ReceiveBuffer:
    """Reassembles a byte stream from segments at arbitrary offsets.

    ``capacity`` bounds in-order-unread plus out-of-order bytes (the most the window can
    offer); ``start`` is the offset of the first data byte (1 with
    :class:`mptcp.tcp.seqnum.SeqSpace`); ``max_pieces`` bounds the number of out-of-order
    pieces queued (a segment that would exceed it is dropped, ``TcpExtTCPOFODrop``);
    ``dsack`` enables RFC 2883 reporting.
    """

    __slots__ = (
        "_dsack", "_fin", "_nxt", "_pieces", "_ranges", "_ready", "_recent", "_starts",
        "capacity", "counters", "dsack", "max_pieces",
    )

    def __init__(
        self,
        capacity: int,
        start: int = 0,
        *,
        max_pieces: int = 4096,
        dsack: bool = True,
        counters: MutableMapping[str, int] | None = None,
    ) -> None:
        if capacity < 0 or start < 0 or max_pieces < 1:
            raise ReassemblyError(f"bad capacity {capacity}, start {start} or max_pieces")
        self._ready = _Ready()
        self._nxt = start
        self._starts: list[int] = []  # out-of-order pieces, disjoint, sorted by start
        self._pieces: list[bytes] = []
        self._ranges = RangeSet()  # the same bytes as maximal runs: the SACK blocks
        self._recent: list[int] = []  # an offset of each recent out-of-order arrival, newest first
        self._dsack: tuple[int, int] | None = None
        self._fin: int | None = None
        self.capacity = capacity
        self.max_pieces = max_pieces
        self.dsack = dsack
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}

    # --- state -----------------------------------------------------------------------------
    @property
    def rcv_nxt(self) -> int:
        """Offset of the next in-order byte expected (RFC 9293 RCV.NXT, FIN not counted)."""
        return self._nxt

    @property
    def readable(self) -> int:
        """In-order bytes waiting for :meth:`read`."""
        return len(self._ready)

    @property
    def window(self) -> int:
        """Free space from RCV.NXT on: the receive window to advertise (RFC 9293 RCV.WND)."""
        return max(0, self.capacity - len(self._ready))

    @property
    def right_edge(self) -> int:
        """RCV.NXT + RCV.WND: data at or beyond it is not accepted."""
        return self._nxt + self.window

    @property
    def out_of_order(self) -> int:
        """Bytes queued above RCV.NXT."""
        return self._ranges.total

    @property
    def fin_offset(self) -> int | None:
        """Offset of the peer's FIN once seen (in or out of order)."""
        return self._fin

    @property
    def fin_reached(self) -> bool:
        """All data before the FIN arrived: the FIN is in order (RFC 9293 §3.10.7.4)."""
        return self._fin is not None and self._nxt == self._fin

    @property
    def eof(self) -> bool:
        """FIN reached and everything before it read by the application."""
        return self.fin_reached and not self._ready

    @property
    def ooo_ranges(self) -> int:
        """How many out-of-order runs there are (SACK blocks to report)."""
        return len(self._ranges._starts)

    def sacked_ranges(self) -> list[tuple[int, int]]:
        """Every out-of-order run, lowest first."""
        return self._ranges.ranges()

    def _bump(self, name: str, n: int = 1) -> None:
        c = self.counters
        c[name] = c.get(name, 0) + n

    # --- segment arrival ---------------------------------------------------------------------
    def in_order_room(self) -> int:
        """How many bytes an in-order segment may carry through the fast path of
        :meth:`accept` (nothing queued out of order, no FIN seen: the free space), or -1 when
        that path is closed."""
        if self._starts or self._fin is not None:
            return -1
        return self.capacity - len(self._ready)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """``accept(rcv_nxt, data)`` for a caller that checked ``len(data) <=``
        :meth:`in_order_room` (the result would be ``Accepted(len(data), 0, 0, 0, False)``)."""
        self._ready += data
        self._nxt += len(data)

    def accept(
        self, offset: int, data: bytes | bytearray | memoryview, fin: bool = False
    ) -> Accepted:
        """Take a segment's payload at stream ``offset`` (and its FIN flag).

        ``data`` is copied when kept (a ``bytes`` payload queued whole is kept as is)."""
        n = len(data)
        end = offset + n
        if offset < 0:
            raise ReassemblyError(f"negative offset {offset}")
        if self._fin is not None and end > self._fin:
            raise DataBeyondFinError(f"data up to {end} beyond FIN at {self._fin}")
        nxt = self._nxt
        # Fast path: the next in-order segment, nothing queued, fits the window.
        if offset == nxt and not self._starts and n <= self.capacity - len(self._ready):
            if fin:
                self._set_fin(end)
            if n:
                self._ready += data
                self._nxt = end
            return Accepted(n, 0, 0, 0, False)
        right = nxt + self.window
        trimmed = 0
        if end > right:
            trimmed = end - max(offset, right)
            end = max(offset, right)
            fin = False  # the FIN lies beyond the window: not accepted this time
        if fin:
            self._set_fin(end)
        dup_lo, dup_hi = offset, min(end, nxt)  # the part already delivered
        mismatch = False
        duplicate = 0
        dsack: tuple[int, int] | None = None
        if dup_lo < dup_hi:
            duplicate = dup_hi - dup_lo
            mismatch = self._differs_delivered(data, offset, dup_lo, dup_hi)
            dsack = (dup_lo, dup_hi)
        lo = max(offset, nxt)
        if lo >= end:
            if trimmed and not duplicate:
                self._bump("TcpExtTCPOFODrop" if offset > nxt else "TcpExtTCPZeroWindowDrop")
            return self._finish(0, 0, duplicate, trimmed, mismatch, dsack)
        if lo > nxt and len(self._starts) >= self.max_pieces:
            self._bump("TcpExtTCPOFODrop")
            return self._finish(0, 0, duplicate, trimmed + end - lo, mismatch, dsack)
        added, overlap, first_dup, differs = self._insert(data, offset, lo, end)
        if overlap:
            duplicate += overlap
            mismatch = mismatch or differs
            self._bump("TcpExtTCPOFOMerge")
            if dsack is None:
                dsack = first_dup
        if lo > nxt:  # out of order: nothing can drain (no piece starts at RCV.NXT)
            self._bump("TcpExtTCPOFOQueue")
            self._note_recent(lo)
            return self._finish(0, added, duplicate, trimmed, mismatch, dsack)
        delivered = self._drain()
        return self._finish(delivered, 0, duplicate, trimmed, mismatch, dsack)

    def _finish(
        self,
        delivered: int,
        queued: int,
        duplicate: int,
        trimmed: int,
        mismatch: bool,
        dsack: tuple[int, int] | None,
    ) -> Accepted:
        if mismatch:
            self._bump("TcpExtTCPRcvDataMismatch")
        if dsack is not None and self.dsack:
            self._dsack = dsack
            self._bump("TcpExtTCPDSACKOldSent" if dsack[1] <= self._nxt
                       else "TcpExtTCPDSACKOfoSent")
        return Accepted(delivered, queued, duplicate, trimmed, mismatch)

    def _set_fin(self, at: int) -> None:
        if self._fin is not None:
            if self._fin != at:
                raise FinMismatchError(f"FIN at {at}, earlier FIN at {self._fin}")
            return
        high = self._ranges.high
        if at < self._nxt or (high is not None and high > at):
            raise DataBeyondFinError(f"FIN at {at} but data was received up to "
                                     f"{max(self._nxt, high or 0)}")
        self._fin = at

    def _differs_delivered(
        self, data: bytes | bytearray | memoryview, offset: int, lo: int, hi: int
    ) -> bool:
        """Compare the already delivered part still unread in ``_ready`` with ``data``."""
        ready_start = self._nxt - len(self._ready)
        a = max(lo, ready_start)
        if a >= hi:
            return False  # already read by the application: nothing to compare with
        kept = self._ready.slice(a - ready_start, hi - ready_start)
        with memoryview(data) as new:
            return kept != new[a - offset:hi - offset]

    def _insert(
        self, data: bytes | bytearray | memoryview, offset: int, lo: int, hi: int
    ) -> tuple[int, int, tuple[int, int] | None, bool]:
        """Store the parts of ``data[lo-offset:hi-offset]`` not already queued; returns
        (bytes added, bytes overlapping queued pieces, the first overlapping run -- what
        RFC 2883 §4.1.3 reports as D-SACK --, whether an overlap differs)."""
        starts, pieces = self._starts, self._pieces
        i = bisect_right(starts, lo) - 1
        if i < 0 or starts[i] + len(pieces[i]) <= lo:
            i += 1
        j = i
        cur = lo
        merged_starts: list[int] = []
        merged_pieces: list[bytes] = []
        overlap = 0
        first: tuple[int, int] | None = None
        differs = False
        view = memoryview(data)
        n = len(starts)
        while j < n and starts[j] < hi:
            s = starts[j]
            p = pieces[j]
            e = s + len(p)
            if cur < s:
                merged_starts.append(cur)
                merged_pieces.append(view[cur - offset:s - offset].tobytes())
            a, b = max(cur, s), min(hi, e)
            if a < b:
                overlap += b - a
                if first is None:
                    first = (a, b)
                elif first[1] == a:  # adjacent queued pieces: one duplicate run
                    first = (first[0], b)
                if not differs and p[a - s:b - s] != view[a - offset:b - offset]:
                    differs = True
            merged_starts.append(s)
            merged_pieces.append(p)
            cur = max(cur, e)
            j += 1
        if cur < hi:
            merged_starts.append(cur)
            if isinstance(data, bytes) and cur == offset and hi == offset + len(data):
                merged_pieces.append(data)  # the whole payload: no copy
            else:
                merged_pieces.append(view[cur - offset:hi - offset].tobytes())
        view.release()
        added = (hi - lo) - overlap
        if added:
            starts[i:j] = merged_starts
            pieces[i:j] = merged_pieces
            self._ranges.add(lo, hi)
        return added, overlap, first, differs

    def _drain(self) -> int:
        """Move the pieces that start at RCV.NXT to the in-order buffer."""
        starts, pieces = self._starts, self._pieces
        nxt = self._nxt
        k = 0
        n = len(starts)
        while k < n and starts[k] == nxt:
            self._ready += pieces[k]
            nxt += len(pieces[k])
            k += 1
        if not k:
            return 0
        del starts[:k]
        del pieces[:k]
        delivered = nxt - self._nxt
        self._nxt = nxt
        self._ranges.remove_below(nxt)
        return delivered

    def _note_recent(self, at: int) -> None:
        recent = self._recent
        recent.insert(0, at)
        del recent[_RECENT:]

    # --- ACK contents ------------------------------------------------------------------------
    def sack_blocks(self, max_blocks: int) -> list[tuple[int, int]]:
        """The SACK blocks for the next ACK, at most ``max_blocks`` (4 without, 3 with the
        timestamp option).  A pending D-SACK (RFC 2883 §4) comes first and is consumed."""
        blocks: list[tuple[int, int]] = []
        if max_blocks <= 0:
            self._dsack = None
            return blocks
        ranges = self._ranges
        d = self._dsack
        self._dsack = None
        if d is not None:
            blocks.append(d)
            if d[0] >= self._nxt:  # RFC 2883 §4: then the block containing it
                containing = ranges.find(d[0])
                if containing is not None and len(blocks) < max_blocks:
                    blocks.append(containing)
        if not ranges:
            return blocks[:max_blocks]
        nxt = self._nxt
        self._recent = recent = [at for at in self._recent if at >= nxt]
        for at in recent:  # RFC 2018 §4: the most recent arrivals first
            if len(blocks) >= max_blocks:
                break
            r = ranges.find(at)
            if r is not None and r not in blocks:
                blocks.append(r)
        k = len(ranges) - 1
        while len(blocks) < max_blocks and k >= 0:  # then the rest, highest first
            r = ranges.range_at(k)
            if r not in blocks:
                blocks.append(r)
            k -= 1
        return blocks

    # --- application side --------------------------------------------------------------------
    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` in-order bytes (all of them when negative); b"" when none."""
        ready = self._ready
        n = len(ready) if max_bytes < 0 else min(max_bytes, len(ready))
        if n == 0:
            return b""
        return ready.take(n)
