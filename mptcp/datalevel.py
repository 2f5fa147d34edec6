"""Connection-level (data sequence space) send and receive buffers of an MPTCP connection.

Implements, in 64-bit DSN space (RFC 8684 §3.3.1: "Data sequence numbers are always 64-bit
quantities"), modulo 2**64:

* :class:`DataSendBuffer` -- the connection-level send buffer.  RFC 8684 §3.1/§3.3.1: the
  IDSN is the SYN's DSN, so the first data byte is IDSN + 1.  Bytes are handed to subflows
  in order (:meth:`~DataSendBuffer.take`), stay until a DATA_ACK covers them (§3.3.2: the
  DATA_ACK is cumulative, "the next data sequence number it expects to receive"), can be read
  again for reinjection on another subflow (§3.3.6, :meth:`~DataSendBuffer.peek`,
  :meth:`~DataSendBuffer.rewind`), and the DATA_FIN occupies one DSN after the last byte
  (§3.3.3: "A DATA_FIN occupies 1 octet (the final octet) of the connection-level sequence
  space").  A DATA_ACK for data never sent raises :class:`DataLevelError`.
* :class:`DataReceiveBuffer` -- connection-level reassembly.  §3.3.1: "an implementation
  SHOULD treat the first data that is received at a subflow for the data sequence space as
  the data that should be delivered to the application, and any subsequent data for that
  sequence space SHOULD be ignored": overlapping copies keep the first one.  §3.3.4: the
  receive window is relative to the DATA_ACK (:attr:`~DataReceiveBuffer.rcv_nxt`) and its
  right edge never moves left.  §3.3.3: the peer's DATA_FIN is consumed (RCV.NXT steps past
  it) once every byte before it has arrived.

Internally both buffers count in unbounded *offsets* from the IDSN (offset 0 = the IDSN
itself); every DSN that comes in is turned into an offset once, by its signed 64-bit distance
to a current value (:func:`mptcp.dsn.dsn_sub`), and every DSN that goes out is
``(idsn + offset) mod 2**64``.  So nothing here has wrap-around cases, at 2**32 or at 2**64.

Cost: in-order data is one ``bytearray`` append in, one prefix deletion out (amortized O(1)
in CPython); out-of-order pieces live in sorted parallel lists searched with ``bisect``.
"""

from __future__ import annotations

from bisect import bisect_right

from mptcp.dsn import DSN_HALF, DSN_MASK

__all__ = ["DataLevelError", "DataSendBuffer", "DataReceiveBuffer"]


class DataLevelError(ValueError):
    """Bad input at the data level: a DATA_ACK for data never sent, a conflicting DATA_FIN,
    data beyond the DATA_FIN, reading freed or unwritten DSNs, or API misuse."""


def _dist(a: int, b: int) -> int:
    """Signed 64-bit distance ``a - b`` (RFC 1982 §3.2 with SERIAL_BITS = 64)."""
    return ((a - b + DSN_HALF) & DSN_MASK) - DSN_HALF


def _check_u64(name: str, value: int) -> None:
    if not 0 <= value <= DSN_MASK:
        raise DataLevelError(f"{name} {value} is not a 64-bit number")


# ---------------------------------------------------------------------------------------------
class DataSendBuffer:
    """The bytes written by the application from :attr:`una` to :attr:`end`.

    Layout in DSN space (all modulo 2**64)::

        idsn  una            nxt                 end   fin_dsn (== end once closed)
          |    |<- mapped, ->|<--- not yet  ---->|     DATA_FIN: one DSN at ``end``
         SYN   |  unacked    |     mapped

    ``nxt`` moves forward with :meth:`take` and back with :meth:`rewind`; acknowledgements are
    checked against the highest DSN ever handed out (data taken before a rewind may still be
    acknowledged by the peer), and an acknowledgement above ``nxt`` moves ``nxt`` up to it
    (those bytes need no sending).  Once the DATA_FIN is acknowledged, ``una`` and ``nxt`` are
    ``fin_dsn + 1`` (one past ``end``), as SND.UNA and SND.NXT are after a FIN in TCP.

    ``stats`` counts ``written``, ``acked`` (bytes freed by DATA_ACKs), ``rewinds``,
    ``rewound_bytes``, ``old_acks`` (DATA_ACKs below ``una``) and ``write_truncated``.
    """

    __slots__ = (
        "_buf", "_end", "_fin", "_hi", "_nxt", "_una", "capacity", "fin_acked", "idsn", "stats",
    )

    def __init__(self, idsn: int, capacity: int) -> None:
        _check_u64("IDSN", idsn)
        if capacity < 0:
            raise DataLevelError(f"negative capacity {capacity}")
        self.idsn = idsn
        self.capacity = capacity
        self._buf = bytearray()  # the bytes at offsets [_una, _end)
        self._una = 1  # offsets from the IDSN: the first data byte is IDSN + 1 (§3.3.1)
        self._nxt = 1
        self._hi = 1  # highest _nxt ever: everything below was handed to some subflow
        self._end = 1
        self._fin: int | None = None  # offset of the DATA_FIN
        self.fin_acked = False
        self.stats: dict[str, int] = {
            "written": 0, "acked": 0, "rewinds": 0, "rewound_bytes": 0, "old_acks": 0,
            "write_truncated": 0,
        }

    # --- DSN views of the offsets ------------------------------------------------------------
    def _dsn(self, offset: int) -> int:
        return (self.idsn + offset) & DSN_MASK

    def _offset(self, dsn: int) -> int:
        """The offset of an incoming 64-bit DSN, taken within 2**63 of ``una``."""
        _check_u64("DSN", dsn)
        return self._una + _dist(dsn, self._dsn(self._una))

    @property
    def una(self) -> int:
        """The oldest unacknowledged DSN."""
        return self._dsn(self._una)

    @property
    def nxt(self) -> int:
        """The next DSN not yet handed to a subflow ("mapped up to")."""
        return self._dsn(self._nxt)

    @property
    def end(self) -> int:
        """The DSN after the last byte written."""
        return self._dsn(self._end)

    @property
    def fin_queued(self) -> bool:
        """Whether :meth:`close` was called (a DATA_FIN follows the data)."""
        return self._fin is not None

    @property
    def fin_dsn(self) -> int | None:
        """The DSN of the DATA_FIN (``end`` at close time), or None before :meth:`close`."""
        return None if self._fin is None else self._dsn(self._fin)

    @property
    def free(self) -> int:
        """Room for :meth:`write`: ``capacity - (end - una)``."""
        return max(0, self.capacity - len(self._buf))

    @property
    def buffered(self) -> int:
        """Bytes held: written and not yet acknowledged (``end - una``)."""
        return len(self._buf)

    @property
    def unmapped(self) -> int:
        """Bytes written but not handed to any subflow since the last rewind (``end - nxt``)."""
        return max(0, self._end - self._nxt)

    @property
    def in_flight(self) -> int:
        """Data bytes handed to subflows and not acknowledged (``nxt - una``)."""
        return max(0, min(self._nxt, self._end) - self._una)

    @property
    def fin_sent(self) -> bool:
        """Whether the DATA_FIN may have been sent: queued and every data byte handed out
        (the DATA_FIN rides on the last data or follows it, RFC 8684 §3.3.3)."""
        return self._fin is not None and self._hi >= self._fin

    @property
    def max_ack(self) -> int:
        """The highest acceptable DATA_ACK: one past the highest DSN handed out, plus the
        DATA_FIN's DSN once it may have been sent."""
        return self._dsn(self._hi + (1 if self.fin_sent else 0))

    # --- application side ------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append as much of ``data`` as :attr:`free` allows; returns the bytes taken."""
        if self._fin is not None:
            raise DataLevelError("write after close()")
        n = min(len(data), self.free)
        if n < len(data):
            self.stats["write_truncated"] += 1
        if n:
            self._buf += data[:n]
            self._end += n
            self.stats["written"] += n
        return n

    def close(self) -> None:
        """Queue the DATA_FIN after the written data (RFC 8684 §3.3.3); idempotent."""
        if self._fin is None:
            self._fin = self._end

    # --- scheduler side --------------------------------------------------------------------
    def take(self, max_len: int) -> tuple[int, bytes] | None:
        """The next at most ``max_len`` unmapped bytes as ``(dsn, data)``, advancing ``nxt``;
        None when none remain (or ``max_len`` is 0)."""
        if max_len < 0:
            raise DataLevelError(f"negative length {max_len}")
        n = min(max_len, self._end - self._nxt)
        if n <= 0:
            return None
        start = self._nxt
        i = start - self._una
        data = bytes(self._buf[i:i + n])
        self._nxt = start + n
        if self._nxt > self._hi:
            self._hi = self._nxt
        return self._dsn(start), data

    def peek(self, dsn: int, length: int) -> bytes:
        """The written, unacknowledged bytes at ``[dsn, dsn + length)`` (for reinjection,
        RFC 8684 §3.3.6, or a DSS checksum, §3.3.1); nothing moves."""
        if length < 0:
            raise DataLevelError(f"negative length {length}")
        off = self._offset(dsn)
        if off < self._una or off + length > self._end:
            raise DataLevelError(
                f"DSN range [{dsn}, +{length}) outside [una={self.una}, end={self.end})")
        i = off - self._una
        return bytes(self._buf[i:i + length])

    def rewind(self, dsn: int) -> None:
        """Set ``nxt`` back to ``dsn`` (``una <= dsn <= nxt``) so :meth:`take` hands the bytes
        out again, for reinjection on another subflow (RFC 8684 §3.3.6, §3.7)."""
        off = self._offset(dsn)
        if not self._una <= off <= self._nxt:
            raise DataLevelError(f"rewind to {dsn} outside [una={self.una}, nxt={self.nxt}]")
        self.stats["rewinds"] += 1
        self.stats["rewound_bytes"] += self._nxt - off
        self._nxt = off

    # --- peer side -------------------------------------------------------------------------
    def ack(self, data_ack: int) -> int:
        """Process a 64-bit DATA_ACK (RFC 8684 §3.3.2): free every byte below it and return
        how many were freed (0 for an old or duplicate ack).  Acknowledging the DATA_FIN
        (``fin_dsn + 1``) sets :attr:`fin_acked`.  A DATA_ACK above :attr:`max_ack`
        acknowledges data never sent: :class:`DataLevelError`, nothing changes."""
        off = self._offset(data_ack)
        if off <= self._una:
            if off < self._una:
                self.stats["old_acks"] += 1
            return 0
        limit = self._hi + (1 if self.fin_sent else 0)
        if off > limit:
            raise DataLevelError(
                f"DATA_ACK {data_ack} beyond data sent (max acceptable {self.max_ack})")
        freed = min(off, self._end) - self._una
        if freed > 0:
            del self._buf[:freed]
            self.stats["acked"] += freed
        self._una = off
        if self._nxt < off:
            self._nxt = off
        if self._fin is not None and off > self._fin:
            self.fin_acked = True
        return max(freed, 0)

    def __repr__(self) -> str:
        return (f"DataSendBuffer(una={self.una}, nxt={self.nxt}, end={self.end}, "
                f"fin_dsn={self.fin_dsn}, fin_acked={self.fin_acked})")


# ---------------------------------------------------------------------------------------------
class DataReceiveBuffer:
    """Reassembles the peer's data stream by DSN.

    ``capacity`` bounds the bytes held (in order and unread, plus out of order).  The window
    offered is ``capacity - readable``, so the right edge ``rcv_nxt + window`` = (first
    unread DSN) + ``capacity`` never moves left (RFC 8684 §3.3.4) and every byte held lies
    below it; out-of-order bytes sit inside the window they were sent into and so do not
    shrink it.  Bytes at or beyond the right edge are dropped (``stats["beyond_window"]``);
    bytes already held or already delivered are dropped too (``stats["duplicate_bytes"]``).

    ``stats`` also counts ``inserted`` (new bytes stored), ``delivered`` (bytes that became
    in order), ``read`` and ``ooo_pieces`` (pieces queued out of order).
    """

    __slots__ = (
        "_data", "_ends", "_fin", "_nxt", "_ooo", "_ready", "_starts", "capacity",
        "fin_received", "idsn_peer", "stats",
    )

    def __init__(self, idsn_peer: int, capacity: int) -> None:
        _check_u64("IDSN", idsn_peer)
        if capacity < 0:
            raise DataLevelError(f"negative capacity {capacity}")
        self.idsn_peer = idsn_peer
        self.capacity = capacity
        self._nxt = 1  # offset of RCV.NXT from the peer's IDSN (first data byte: 1)
        self._ready = bytearray()  # in-order unread bytes, ending at _nxt
        # out-of-order pieces: sorted, disjoint, all above _nxt (not merged with each other)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._data: list[bytes] = []
        self._ooo = 0  # bytes in the pieces
        self._fin: int | None = None  # offset of the DATA_FIN
        self.fin_received = False
        self.stats: dict[str, int] = {
            "inserted": 0, "delivered": 0, "read": 0, "duplicate_bytes": 0,
            "beyond_window": 0, "ooo_pieces": 0,
        }

    def _dsn(self, offset: int) -> int:
        return (self.idsn_peer + offset) & DSN_MASK

    def _offset(self, dsn: int) -> int:
        """The offset of an incoming 64-bit DSN, taken within 2**63 of RCV.NXT."""
        _check_u64("DSN", dsn)
        return self._nxt + _dist(dsn, self._dsn(self._nxt))

    @property
    def rcv_nxt(self) -> int:
        """The next DSN expected: the DATA_ACK to send (past the DATA_FIN once received)."""
        return self._dsn(self._nxt)

    @property
    def readable(self) -> int:
        """In-order bytes not yet read."""
        return len(self._ready)

    @property
    def out_of_order_bytes(self) -> int:
        """Bytes held above ``rcv_nxt``, waiting for a gap to fill."""
        return self._ooo

    @property
    def window(self) -> int:
        """The receive window to advertise with the DATA_ACK (RFC 8684 §3.3.4)."""
        return max(0, self.capacity - len(self._ready))

    @property
    def right_edge(self) -> int:
        """``rcv_nxt + window``: the first DSN that is not accepted."""
        return self._dsn(self._nxt + self.window)

    def room_at(self, dsn: int) -> int:
        """Bytes from ``dsn`` up to the right edge (RFC 8684 §3.3.4: the sender keeps below
        it): what may be taken now at ``dsn``; a DSN below ``rcv_nxt`` (already delivered,
        a duplicate) may always be taken (it is dropped), so that counts as the window."""
        off = self._offset(dsn)
        if off <= self._nxt:
            return self.window + (self._nxt - off)
        return self._nxt + self.window - off

    @property
    def free_space(self) -> int:
        """Buffer room left: ``capacity - readable - out_of_order_bytes``."""
        return max(0, self.capacity - len(self._ready) - self._ooo)

    @property
    def fin_dsn(self) -> int | None:
        """The DSN of the peer's DATA_FIN, once known."""
        return None if self._fin is None else self._dsn(self._fin)

    @property
    def eof(self) -> bool:
        """The DATA_FIN arrived and every byte before it was read."""
        return self.fin_received and not self._ready

    def insert(self, dsn: int, data: bytes | bytearray | memoryview) -> int:
        """Place ``data`` at ``dsn``; returns how many new in-order bytes became readable.

        Duplicate, overlapping and out-of-order data are fine: the first copy of each byte
        wins (RFC 8684 §3.3.1).  Data at or beyond a known DATA_FIN raises
        :class:`DataLevelError` before anything changes.
        """
        n = len(data)
        start = self._offset(dsn)
        end = start + n
        if n == 0:
            return 0
        if self._fin is not None and end > self._fin:
            # a byte at or after the DATA_FIN (RFC 8684 §3.3.3: the DATA_FIN is the last DSN)
            raise DataLevelError(f"data [{dsn}, +{n}) beyond the DATA_FIN at {self.fin_dsn}")
        nxt = self._nxt
        stats = self.stats
        if end <= nxt:
            stats["duplicate_bytes"] += n
            return 0
        right = nxt + self.capacity - len(self._ready)
        lo, hi = start, end
        if lo < nxt:
            stats["duplicate_bytes"] += nxt - lo
            lo = nxt
        if hi > right:
            stats["beyond_window"] += hi - max(lo, right)
            hi = right
            if hi <= lo:
                return 0
        mv = memoryview(data)
        if lo == nxt and not self._starts:
            # the hot path: in order, nothing queued
            self._ready += mv[lo - start:hi - start]
            self._nxt = hi
            stats["inserted"] += hi - lo
            stats["delivered"] += hi - lo
            self._fin_check()
            return hi - lo
        self._queue(lo, hi, mv, start)
        return self._drain()

    def _queue(self, lo: int, hi: int, mv: memoryview, base: int) -> None:
        """Store the parts of ``[lo, hi)`` (bytes ``mv[x - base]``) not already held."""
        starts, ends = self._starts, self._ends
        i = bisect_right(ends, lo)  # first piece ending after lo
        j = i
        n = len(starts)
        new_s: list[int] = []
        new_e: list[int] = []
        new_d: list[bytes] = []
        cur = lo
        dup = 0
        while j < n and starts[j] < hi:
            s, e = starts[j], ends[j]
            if s > cur:
                new_s.append(cur)
                new_e.append(s)
                new_d.append(bytes(mv[cur - base:s - base]))
            dup += min(e, hi) - max(s, cur)  # > 0: s < hi and e > cur
            new_s.append(s)
            new_e.append(e)
            new_d.append(self._data[j])
            cur = max(cur, e)
            j += 1
        if cur < hi:
            new_s.append(cur)
            new_e.append(hi)
            new_d.append(bytes(mv[cur - base:hi - base]))
        added = (hi - lo) - dup
        self.stats["duplicate_bytes"] += dup
        if added:
            self.stats["inserted"] += added
            self.stats["ooo_pieces"] += len(new_s) - (j - i)
            self._ooo += added
            starts[i:j] = new_s
            ends[i:j] = new_e
            self._data[i:j] = new_d

    def _drain(self) -> int:
        """Move the pieces starting at RCV.NXT to the in-order bytes; returns bytes moved."""
        starts = self._starts
        nxt0 = nxt = self._nxt
        k = 0
        n = len(starts)
        while k < n and starts[k] == nxt:
            self._ready += self._data[k]
            nxt = self._ends[k]
            k += 1
        if k:
            del starts[:k]
            del self._ends[:k]
            del self._data[:k]
            moved = nxt - nxt0
            self._ooo -= moved
            self._nxt = nxt
            self.stats["delivered"] += moved
            self._fin_check()
            return moved
        return 0

    def _fin_check(self) -> None:
        """RFC 8684 §3.3.3: RCV.NXT steps over the DATA_FIN once all data before it is in."""
        if self._fin is not None and not self.fin_received and self._nxt == self._fin:
            self._nxt += 1
            self.fin_received = True

    def data_fin(self, dsn: int) -> bool:
        """The peer's DATA_FIN is at ``dsn`` (it takes that one DSN).  Returns whether it is
        now received (every byte before it in).  A DATA_FIN at a different DSN than one
        already known, or before data already held, raises :class:`DataLevelError`."""
        off = self._offset(dsn)
        if self._fin is not None:
            if off != self._fin:
                raise DataLevelError(
                    f"DATA_FIN at {dsn} but one is already known at {self.fin_dsn}")
            return self.fin_received
        if off < self._nxt or (self._ends and self._ends[-1] > off):
            raise DataLevelError(f"DATA_FIN at {dsn} before data already received")
        self._fin = off
        self._fin_check()
        return self.fin_received

    def read(self, max_bytes: int = -1) -> bytes:
        """Up to ``max_bytes`` in-order bytes (all of them when negative)."""
        ready = self._ready
        n = len(ready) if max_bytes < 0 else min(max_bytes, len(ready))
        if n == 0:
            return b""
        if n == len(ready):
            out = bytes(ready)
            ready.clear()
        else:
            out = bytes(ready[:n])
            del ready[:n]
        self.stats["read"] += n
        return out

    def out_of_order_ranges(self) -> list[tuple[int, int]]:
        """The held out-of-order pieces as ``(dsn, length)``, lowest first (for tracing)."""
        return [(self._dsn(s), e - s) for s, e in zip(self._starts, self._ends, strict=True)]

    def __repr__(self) -> str:
        return (f"DataReceiveBuffer(rcv_nxt={self.rcv_nxt}, readable={self.readable}, "
                f"ooo={self._ooo}, fin_dsn={self.fin_dsn}, fin_received={self.fin_received})")
