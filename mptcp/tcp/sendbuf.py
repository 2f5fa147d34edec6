"""The send buffer of one TCP connection, in 64-bit stream offsets (RFC 9293 §3.3.1, §3.8.6).

Holds every byte the application wrote that the peer has not cumulatively acknowledged: the
retransmission queue and the not-yet-sent tail in one ``bytearray``.  SACKed bytes stay until
they are cumulatively acknowledged (RFC 2018 §8, RFC 6675 §4 "Update()": "SACKed data MUST
NOT be removed from the TCP's retransmission buffer until the data is cumulatively
acknowledged").

Layout in offsets::

    snd_una            snd_nxt (engine's)        end        fin_offset (== end once closed)
       |<-- sent, unacked -->|<---- unsent ----->|  FIN: one sequence number at ``end``

Engine contract:

* ``write(data)`` for application writes; it accepts at most :attr:`free` bytes (back-pressure)
  and returns how many it took.  ``close()`` places the FIN after the last byte written.
* ``peek(offset, n)`` / ``segment(offset, max_len)`` for every (re)transmission; nothing moves.
* ``ack_to(ack_offset)`` on every acceptable ACK (RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK =<
  SND.NXT); it frees the acknowledged bytes.  Acknowledging the FIN means
  ``ack_to(fin_offset + 1)``.
* SND.NXT is the engine's variable; :meth:`unsent` and :meth:`seq_end` help computing it.

Cost: ``write`` is amortized O(len) (one copy in), ``peek`` one copy out of the requested
slice, ``ack_to`` amortized O(1) (CPython deletes a ``bytearray`` prefix by moving its start).
"""

from __future__ import annotations

from collections.abc import MutableMapping

__all__ = ["SendBuffer", "SendBufferError"]


class SendBufferError(ValueError):
    """API misuse: reading freed or unwritten offsets, writing after close, bad ACK offset."""


class SendBuffer:
    """Application bytes from ``snd_una`` to ``end``, plus the FIN marker.

    ``start`` is the offset of the first byte the application will write (with
    :class:`mptcp.tcp.seqnum.SeqSpace` offsets, 1: offset 0 is the SYN).
    ``counters`` (optional, shared with the engine) receives ``TcpExtTCPSndBufFull`` each
    time a write is truncated for lack of space.
    """

    __slots__ = ("_buf", "_end", "_fin", "_una", "capacity", "counters")

    def __init__(
        self, capacity: int, start: int = 0, counters: MutableMapping[str, int] | None = None
    ) -> None:
        if capacity < 0 or start < 0:
            raise SendBufferError(f"bad capacity {capacity} or start {start}")
        self._buf = bytearray()
        self._una = start
        self._end = start
        self._fin: int | None = None
        self.capacity = capacity
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}

    # --- state ---------------------------------------------------------------------------
    @property
    def snd_una(self) -> int:
        """Offset of the oldest unacknowledged byte (RFC 9293 SND.UNA)."""
        return self._una

    @property
    def end(self) -> int:
        """Offset one past the last byte written by the application."""
        return self._end

    @property
    def buffered(self) -> int:
        """Bytes held: sent-but-unacknowledged plus unsent."""
        return len(self._buf)

    @property
    def free(self) -> int:
        """Bytes :meth:`write` would accept now."""
        if self._fin is not None:
            return 0
        return max(0, self.capacity - len(self._buf))

    @property
    def fin_offset(self) -> int | None:
        """Sequence offset of the FIN once :meth:`close` was called, else None."""
        return self._fin

    @property
    def fin_acked(self) -> bool:
        """Whether the peer acknowledged our FIN."""
        return self._fin is not None and self._una > self._fin

    def seq_end(self) -> int:
        """One past the last sequence offset to send: ``end``, plus one for a FIN."""
        return self._end + (0 if self._fin is None else 1)

    def unsent(self, snd_nxt: int) -> int:
        """Data bytes not yet sent when the engine's SND.NXT is ``snd_nxt``."""
        return max(0, self._end - snd_nxt)

    # --- application side ----------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append up to :attr:`free` bytes of ``data``; returns how many were taken."""
        if self._fin is not None:
            raise SendBufferError("write after close")
        room = self.capacity - len(self._buf)
        n = len(data)
        if n > room:
            n = max(0, room)
            c = self.counters
            c["TcpExtTCPSndBufFull"] = c.get("TcpExtTCPSndBufFull", 0) + 1
            if n == 0:
                return 0
            data = memoryview(data)[:n]
        self._buf += data
        self._end += n
        return n

    def close(self) -> int:
        """Place the FIN after the last written byte (idempotent); returns its offset."""
        if self._fin is None:
            self._fin = self._end
        return self._fin

    # --- transmission side ---------------------------------------------------------------
    def peek(self, offset: int, n: int) -> bytes:
        """Up to ``n`` data bytes from ``offset`` (fewer at the end of the buffer)."""
        head = self._end - len(self._buf)
        i = offset - head
        if i < 0 or i > len(self._buf) or n < 0:
            raise SendBufferError(f"peek({offset}, {n}) outside [{head}, {self._end}]")
        with memoryview(self._buf) as view:  # one copy (a bytearray slice would be two)
            return view[i:i + n].tobytes()

    def segment(self, offset: int, max_len: int) -> tuple[bytes, bool]:
        """The payload of a segment starting at ``offset`` with at most ``max_len`` bytes,
        and whether the FIN goes with it (the payload reaches the FIN, or ``offset`` is the
        FIN's own offset)."""
        data = self.peek(offset, max_len)
        fin = self._fin
        return data, fin is not None and offset + len(data) == fin

    def ack_to(self, offset: int) -> int:
        """Free everything below ``offset``; returns the data bytes freed.

        An offset at or below SND.UNA is an old ACK: nothing happens.  ``offset`` may exceed
        ``end`` by one only when the FIN is placed (that ACK covers the FIN).
        """
        n = offset - self._una
        if n <= 0:
            return 0
        limit = self._end + (0 if self._fin is None else 1)
        if offset > limit:
            raise SendBufferError(f"ack_to({offset}) beyond {limit}")
        freed = min(n, len(self._buf))
        del self._buf[:freed]
        self._una = offset
        return freed
