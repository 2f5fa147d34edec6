"""Driver middlewares: packet capture, impairment and tracing wrapped around any driver.

Each middleware implements the :class:`~mptcp.io.driver.Driver` protocol around an ``inner``
driver, so they stack like smoltcp's (DESIGN.md "I/O"): ``PcapMiddleware(ImpairMiddleware(
TunDriver(...)))`` captures what the stack sends and receives before the impairment, the
other order captures the wire.  Everything not impaired or recorded is forwarded: ``fileno``,
``mtu``, ``tso``, ``csum_offload``, ``bind_port``, ``unbind_port``, ``close``; ``get_timer`` /
``poll`` combine the middleware's own deadlines with the inner driver's.

- :class:`PcapMiddleware` writes every packet in and out to a classic pcap file with raw-IP
  frames (LINKTYPE_RAW 101, tcpdump.org link-type registry) and wall-clock timestamps.
  Checksums the kernel finishes (offload: Linux ``CHECKSUM_PARTIAL``, virtio-net
  ``NEEDS_CSUM``) are completed in the recorded copy, so Wireshark checks them as on the
  wire (RFC 9293 §3.1 TCP checksum, RFC 1071).
- :class:`ImpairMiddleware` does what netem would (this kernel has none): delay, jitter, a
  serialization rate with a drop-tail queue, loss, duplication, reordering and CE marking
  (RFC 3168 §5: ECT(0)/ECT(1) -> CE; RFC 791 §3.1 header checksum recomputed; IPv6 has none,
  RFC 8200 §3), each decision drawn from an injected ``random.Random`` and counted.
- :class:`TraceMiddleware` writes one JSON object per packet (and per protocol event the
  runner reports) to a text stream.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from struct import Struct
from typing import Any, BinaryIO, TextIO

from mptcp.io.driver import Driver, RxPacket, TxPacket
from mptcp.wire.checksum import finish, internet_checksum, payload_sum
from mptcp.wire.errors import WireError
from mptcp.wire.ip import parse_ipv6
from mptcp.wire.pcap import LINKTYPE_RAW, PcapWriter
from mptcp.wire.tcp import flags_text

__all__ = [
    "Middleware", "PcapMiddleware", "ImpairMiddleware", "ImpairParams", "ImpairCounters",
    "ImpairError", "TraceMiddleware", "complete_tcp_checksum", "mark_ce",
]

_PROTO_TCP = 6
_TCP_HDR = Struct("!HHIIHHHH")
_from_bytes = int.from_bytes


def _min_time(*times: float | None) -> float | None:
    best: float | None = None
    for t in times:
        if t is not None and (best is None or t < best):
            best = t
    return best


class Middleware:
    """A driver that forwards everything to ``inner``; subclasses override what they change."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self.inner.mtu = value

    @property
    def tso(self) -> bool:
        return self.inner.tso

    @tso.setter
    def tso(self, value: bool) -> None:
        self.inner.tso = value

    @property
    def csum_offload(self) -> bool:
        return self.inner.csum_offload

    @csum_offload.setter
    def csum_offload(self, value: bool) -> None:
        self.inner.csum_offload = value

    def fileno(self) -> int:
        return self.inner.fileno()

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        return self.inner.recv_batch(now, limit)

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        self.inner.send_batch(now, packets)

    def pending(self) -> int:
        return self.inner.pending()

    def flush(self, now: float) -> None:
        self.inner.flush(now)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def poll(self, now: float) -> None:
        self.inner.poll(now)

    def bind_port(self, port: int) -> None:
        self.inner.bind_port(port)

    def unbind_port(self, port: int) -> None:
        self.inner.unbind_port(port)

    def close(self) -> None:
        self.inner.close()


# ---------------------------------------------------------------------------------------------
# header helpers (no full parse: these run per packet)


def _tcp_span(pkt: bytes) -> tuple[int, int, int] | None:
    """(TCP header offset, end of the segment, pseudo-header word sum) of an unfragmented IP
    packet carrying TCP, or None."""
    n = len(pkt)
    if n < 20:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ihl = (pkt[0] & 15) << 2
        if ihl < 20 or pkt[9] != _PROTO_TCP or (_from_bytes(pkt[6:8], "big") & 0x3FFF):
            return None
        total = _from_bytes(pkt[2:4], "big")
        end = total if 0 < total <= n else n  # 0: a BIG TCP super-packet; use the buffer
        off = ihl
        addrs = _from_bytes(pkt[12:16], "big") + _from_bytes(pkt[16:20], "big")
    elif version == 6:
        try:
            hdr, off, end = parse_ipv6(pkt)
        except WireError:
            return None
        if hdr.proto != _PROTO_TCP:
            return None
        addrs = _from_bytes(hdr.src, "big") + _from_bytes(hdr.dst, "big")
    else:
        return None
    if end - off < 20:
        return None
    return off, end, addrs + _PROTO_TCP + (end - off)


def complete_tcp_checksum(pkt: bytes) -> bytes:
    """``pkt`` with its TCP checksum as the wire will carry it.

    A valid checksum is kept (the same object is returned).  Otherwise the field is taken as
    an offload partial checksum -- the pseudo-header sum the kernel or device completes by
    summing the segment from the TCP header on (Linux ``CHECKSUM_PARTIAL``) -- and a copy
    with that completion is returned.  (If a partial packet happens to verify already, its
    completion is the same value, so the rule is exact.)  Non-TCP packets pass unchanged.
    """
    span = _tcp_span(pkt)
    if span is None:
        return pkt
    off, end, pseudo = span
    seg_sum = payload_sum(memoryview(pkt)[off:end])
    if (seg_sum + pseudo) % 0xFFFF == 0:
        return pkt
    out = bytearray(pkt)
    out[off + 16 : off + 18] = finish(seg_sum).to_bytes(2, "big")
    return bytes(out)


def mark_ce(pkt: bytes) -> bytes | None:
    """A copy of ``pkt`` with ECN = CE if it is ECT(0) or ECT(1) (RFC 3168 §5), with the IPv4
    header checksum recomputed; None when the packet is Not-ECT, already CE, or not IP."""
    if len(pkt) < 20:
        return None
    version = pkt[0] >> 4
    if version == 4:
        ecn = pkt[1] & 3
        if ecn not in (1, 2):
            return None
        ihl = (pkt[0] & 15) << 2
        if ihl < 20 or ihl > len(pkt):
            return None
        out = bytearray(pkt)
        out[1] |= 3
        out[10:12] = b"\x00\x00"
        out[10:12] = internet_checksum(out[:ihl]).to_bytes(2, "big")
        return bytes(out)
    if version == 6 and len(pkt) >= 40:
        ecn = (pkt[1] >> 4) & 3  # Traffic Class spans bytes 0-1; ECN = its low two bits
        if ecn not in (1, 2):
            return None
        out = bytearray(pkt)
        out[1] |= 0x30
        return bytes(out)
    return None


def _headers_len(pkt: bytes) -> int:
    """IP + TCP header bytes (0 when the packet is not plain TCP)."""
    if len(pkt) < 40:
        return 0
    version = pkt[0] >> 4
    if version == 4 and pkt[9] == _PROTO_TCP:
        off = (pkt[0] & 15) << 2
    elif version == 6 and pkt[6] == _PROTO_TCP:
        off = 40
    else:
        return 0
    if off + 20 > len(pkt):
        return 0
    return off + ((pkt[off + 12] >> 4) << 2)


# ---------------------------------------------------------------------------------------------
# pcap


class PcapMiddleware(Middleware):
    """Records every packet in and out to a pcap file (raw IP, link type 101).

    Timestamps come from ``clock`` (wall clock, integer nanoseconds since the epoch).  Packets
    the kernel checksums -- outgoing with ``csum_offload``, incoming with ``csum_ok`` -- are
    recorded with the TCP checksum completed (:func:`complete_tcp_checksum`); the packet
    handed on is untouched.  A super-packet (TSO/GRO) is one record.  The file is flushed and
    closed by :meth:`close` (also :meth:`flush_file` at any time).
    """

    def __init__(
        self,
        inner: Driver,
        path: str | os.PathLike[str] | BinaryIO,
        *,
        clock: Callable[[], int] = time.time_ns,
        snaplen: int = 262144,
    ) -> None:
        super().__init__(inner)
        self._writer = PcapWriter(path, LINKTYPE_RAW, nanosecond=True, snaplen=snaplen)
        self._clock = clock
        self.packets_in = 0
        self.packets_out = 0
        self._closed = False

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        got = self.inner.recv_batch(now, limit)
        if got and not self._closed:
            ts = self._clock()
            write = self._writer.write_ns
            for pkt, ok in got:
                write(complete_tcp_checksum(pkt) if ok else pkt, ts)
            self.packets_in += len(got)
        return got

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        if packets and not self._closed:
            ts = self._clock()
            write = self._writer.write_ns
            partial = self.inner.csum_offload
            for pkt, _gso in packets:
                write(complete_tcp_checksum(pkt) if partial else pkt, ts)
            self.packets_out += len(packets)
        self.inner.send_batch(now, packets)

    @property
    def count(self) -> int:
        """Records written so far."""
        return self._writer.count

    def flush_file(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if not self._closed:
                self._closed = True
                self._writer.close()


# ---------------------------------------------------------------------------------------------
# impairment


class ImpairError(ValueError):
    """Invalid impairment parameters."""


@dataclass(frozen=True, slots=True)
class ImpairParams:
    """Impairments of one direction (all off by default).

    - ``delay`` seconds added to every packet; ``jitter``: plus a uniform draw in
      ``[0, jitter]`` -- packets stay in order (a packet never leaves before the previous
      one); reordering is ``reorder``'s job.
    - ``rate_bps``: serialization rate (0 = unlimited): a packet occupies the link for
      ``8 * wire_bytes / rate_bps`` s after the previous one; a super-packet counts its full
      size plus the headers of the segments it will be cut into.  ``queue_limit``: packets
      (wire segments) waiting for or in serialization; one more is dropped (drop-tail,
      like a pfifo of that many packets; 0 = unlimited).
    - ``loss``, ``duplicate``, ``reorder``, ``ce_mark``: probabilities per packet.  A reordered
      packet is held back and released right after the next packet of its direction (or
      ``reorder_hold`` s after its due time if none comes).  ``ce_mark`` sets CE on ECT
      packets only (RFC 3168 §5).
    """

    delay: float = 0.0
    jitter: float = 0.0
    rate_bps: float = 0.0
    loss: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    ce_mark: float = 0.0
    queue_limit: int = 1000
    reorder_hold: float = 0.01

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate", "ce_mark"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ImpairError(f"{name} = {p} is not a probability")
        for name in ("delay", "jitter", "rate_bps", "reorder_hold"):
            v = getattr(self, name)
            if not (v >= 0.0 and math.isfinite(v)):
                raise ImpairError(f"{name} = {v} must be finite and >= 0")
        if self.queue_limit < 0:
            raise ImpairError(f"queue_limit = {self.queue_limit} must be >= 0")

    @property
    def active(self) -> bool:
        """Whether anything is impaired (otherwise packets pass straight through)."""
        return bool(self.delay or self.jitter or self.rate_bps or self.loss or self.reorder
                    or self.duplicate or self.ce_mark)


@dataclass(slots=True)
class ImpairCounters:
    """What the impairment of one direction decided, packet by packet."""

    packets: int = 0
    bytes: int = 0
    lost: int = 0
    duplicated: int = 0
    queue_drops: int = 0
    ce_marked: int = 0
    reordered: int = 0
    delayed: int = 0
    released: int = 0

    def as_dict(self, prefix: str = "") -> dict[str, int]:
        return {prefix + f.name: getattr(self, f.name) for f in fields(self)}


class _Lane:
    """The delay line of one direction: (release time, order, packet, meta) in a heap.

    ``meta`` is the gso_size (send direction) or csum_ok as 0/1 (receive direction).
    """

    def __init__(self, params: ImpairParams, rng: random.Random, tx: bool) -> None:
        self.p = params
        self.rng = rng
        self.tx = tx
        self.counters = ImpairCounters()
        self.heap: list[tuple[float, int, bytes, int]] = []
        self.order = 0
        self.busy_until = -math.inf
        self.queue: deque[tuple[float, int]] = deque()
        self.occupancy = 0
        self.last_release = -math.inf
        self.held: tuple[float, bytes, int] | None = None

    def _wire(self, pkt: bytes, meta: int, mtu: int) -> tuple[int, int]:
        """(bytes on the wire, wire segments) of a possibly super packet."""
        n = len(pkt)
        if self.tx:
            seg = meta
        else:
            seg = 0
            if n > mtu:
                hl = _headers_len(pkt)
                seg = mtu - hl if 0 < hl < mtu else 0
        if seg <= 0:
            return n, 1
        hl = _headers_len(pkt)
        if not hl or n - hl <= seg:
            return n, 1
        nseg = -(-(n - hl) // seg)
        return n + (nseg - 1) * hl, nseg

    def _push(self, t: float, pkt: bytes, meta: int) -> None:
        heapq.heappush(self.heap, (t, self.order, pkt, meta))
        self.order += 1

    def admit(self, now: float, pkt: bytes, meta: int, mtu: int) -> None:
        p = self.p
        c = self.counters
        rng = self.rng
        c.packets += 1
        c.bytes += len(pkt)
        if p.loss and rng.random() < p.loss:
            c.lost += 1
            return
        copies = 1
        if p.duplicate and rng.random() < p.duplicate:
            c.duplicated += 1
            copies = 2
        for _ in range(copies):
            self._enqueue(now, pkt, meta, mtu)

    def _enqueue(self, now: float, pkt: bytes, meta: int, mtu: int) -> None:
        p = self.p
        c = self.counters
        rng = self.rng
        if p.ce_mark and rng.random() < p.ce_mark:
            marked = mark_ce(pkt)
            if marked is not None:
                pkt = marked
                c.ce_marked += 1
        t = now
        if p.rate_bps:
            wire_bytes, nseg = self._wire(pkt, meta, mtu)
            q = self.queue
            while q and q[0][0] <= now:
                self.occupancy -= q.popleft()[1]
            if p.queue_limit and self.occupancy and self.occupancy + nseg > p.queue_limit:
                c.queue_drops += 1
                return
            t = max(now, self.busy_until) + wire_bytes * 8 / p.rate_bps
            self.busy_until = t
            q.append((t, nseg))
            self.occupancy += nseg
        t += p.delay
        if p.jitter:
            t += rng.uniform(0.0, p.jitter)
        t = max(t, self.last_release)
        self.last_release = t
        if t > now:
            c.delayed += 1
        if self.held is not None:
            _, hpkt, hmeta = self.held
            self.held = None
            self._push(t, pkt, meta)
            self._push(t, hpkt, hmeta)  # right after the packet that overtook it
            c.reordered += 1
        elif p.reorder and rng.random() < p.reorder:
            self.held = (t + p.reorder_hold, pkt, meta)
        else:
            self._push(t, pkt, meta)

    def due(self, now: float) -> list[tuple[bytes, int]]:
        held = self.held
        if held is not None and held[0] <= now:
            self.held = None
            self._push(held[0], held[1], held[2])
        heap = self.heap
        out: list[tuple[bytes, int]] = []
        while heap and heap[0][0] <= now:
            _, _, pkt, meta = heapq.heappop(heap)
            out.append((pkt, meta))
        self.counters.released += len(out)
        return out

    def next_time(self) -> float | None:
        return _min_time(self.heap[0][0] if self.heap else None,
                         self.held[0] if self.held is not None else None)

    def __len__(self) -> int:
        return len(self.heap) + (self.held is not None)


class ImpairMiddleware(Middleware):
    """netem-like impairment of both directions (``tx`` = packets the stack sends).

    Delayed sends go to the inner driver from :meth:`poll` (or the next ``send_batch``) once
    due; delayed receives are returned by a later :meth:`recv_batch`, after :meth:`poll`
    released them.  :meth:`get_timer` says when the next packet is due, and returns a time
    in the past while released received packets wait to be read.  :meth:`pending` is the
    inner driver's (packets in the delay line are not waiting for the descriptor); see
    :meth:`in_flight`.  All randomness comes from ``rng``: the same seed and the same calls
    give the same decisions.
    """

    def __init__(
        self,
        inner: Driver,
        *,
        rng: random.Random,
        tx: ImpairParams | None = None,
        rx: ImpairParams | None = None,
    ) -> None:
        super().__init__(inner)
        self.tx_params = tx if tx is not None else ImpairParams()
        self.rx_params = rx if rx is not None else ImpairParams()
        self._tx = _Lane(self.tx_params, rng, tx=True)
        self._rx = _Lane(self.rx_params, rng, tx=False)
        self._ready: deque[RxPacket] = deque()
        self._ready_at = 0.0

    @property
    def tx_counters(self) -> ImpairCounters:
        return self._tx.counters

    @property
    def rx_counters(self) -> ImpairCounters:
        return self._rx.counters

    def counters(self) -> dict[str, int]:
        """Every counter, as ``tx_lost``, ``rx_ce_marked``, ..."""
        return {**self._tx.counters.as_dict("tx_"), **self._rx.counters.as_dict("rx_")}

    def in_flight(self) -> int:
        """Packets inside the delay lines (both directions) and released receives unread."""
        return len(self._tx) + len(self._rx) + len(self._ready)

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        lane = self._tx
        if not self.tx_params.active and not lane.heap and lane.held is None:
            c = lane.counters
            c.packets += len(packets)
            c.released += len(packets)
            c.bytes += sum(len(p) for p, _ in packets)
            self.inner.send_batch(now, packets)
            return
        mtu = self.inner.mtu
        for pkt, gso in packets:
            lane.admit(now, pkt, gso, mtu)
        out = lane.due(now)
        if out:
            self.inner.send_batch(now, out)

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        ready = self._ready
        lane = self._rx
        if not self.rx_params.active and not lane.heap and lane.held is None:
            got = self.inner.recv_batch(now, limit - len(ready)) if len(ready) < limit else []
            c = lane.counters
            c.packets += len(got)
            c.released += len(got)
            c.bytes += sum(len(p) for p, _ in got)
            if not ready:
                return got
            ready.extend(got)
        else:
            self._release_rx(now)
            mtu = self.inner.mtu
            while len(ready) < limit:
                got = self.inner.recv_batch(now, limit - len(ready))
                if not got:
                    break
                for pkt, ok in got:
                    lane.admit(now, pkt, 1 if ok else 0, mtu)
                self._release_rx(now)
        n = min(limit, len(ready))
        return [ready.popleft() for _ in range(n)]

    def _release_rx(self, now: float) -> None:
        due = self._rx.due(now)
        if due:
            if not self._ready:
                self._ready_at = now
            self._ready.extend((pkt, bool(ok)) for pkt, ok in due)

    def poll(self, now: float) -> None:
        out = self._tx.due(now)
        if out:
            self.inner.send_batch(now, out)
        self._release_rx(now)
        self.inner.poll(now)

    def get_timer(self) -> float | None:
        ready = self._ready_at if self._ready else None
        return _min_time(ready, self._tx.next_time(), self._rx.next_time(),
                         self.inner.get_timer())


# ---------------------------------------------------------------------------------------------
# tracing


def _addr(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(b) == 4 else socket.AF_INET6, b)


def _describe(pkt: bytes) -> dict[str, Any]:
    """Header fields of one packet for the trace (never raises)."""
    rec: dict[str, Any] = {"len": len(pkt)}
    n = len(pkt)
    version = pkt[0] >> 4 if n else 0
    if version == 4 and n >= 20:
        off = (pkt[0] & 15) << 2
        proto = pkt[9]
        total = _from_bytes(pkt[2:4], "big")
        end = total if off <= total <= n else n
        rec.update(src=_addr(pkt[12:16]), dst=_addr(pkt[16:20]), ecn=pkt[1] & 3)
    elif version == 6 and n >= 40:
        try:
            hdr, off, end = parse_ipv6(pkt)
            proto = hdr.proto
        except WireError:
            off, end, proto = 40, n, pkt[6]
        rec.update(src=_addr(pkt[8:24]), dst=_addr(pkt[24:40]), ecn=(pkt[1] >> 4) & 3)
    else:
        rec["malformed"] = True
        return rec
    if proto != _PROTO_TCP or end - off < 20 or off < 20:
        rec["proto"] = proto
        return rec
    sport, dport, seq, ack, off_flags, win, _, _ = _TCP_HDR.unpack_from(pkt, off)
    hlen = (off_flags >> 12) << 2
    rec.update(sport=sport, dport=dport, flags=flags_text(off_flags & 0xFFF), seq=seq,
               ack=ack, win=win, payload_len=max(0, end - off - hlen))
    return rec


class TraceMiddleware(Middleware):
    """JSON lines on ``out``: one object per packet (``t`` = the runner's ``now``, ``dir``
    "in"/"out", ``len``, ``src``, ``dst``, ``sport``, ``dport``, ``flags``, ``seq``, ``ack``,
    ``win``, ``payload_len``, ``gso_size`` (None for received packets, which carry
    ``csum_ok`` instead), ``ecn``) and one per :meth:`event`.  ``out`` is flushed, not
    closed, by :meth:`close`."""

    def __init__(self, inner: Driver, out: TextIO) -> None:
        super().__init__(inner)
        self.out = out
        self.lines = 0

    def _write(self, rec: dict[str, Any]) -> None:
        self.out.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")
        self.lines += 1

    def recv_batch(self, now: float, limit: int = 64) -> list[RxPacket]:
        got = self.inner.recv_batch(now, limit)
        for pkt, ok in got:
            rec: dict[str, Any] = {"t": now, "dir": "in"}
            rec.update(_describe(pkt))
            rec["gso_size"] = None
            rec["csum_ok"] = ok
            self._write(rec)
        return got

    def send_batch(self, now: float, packets: list[TxPacket]) -> None:
        for pkt, gso in packets:
            rec: dict[str, Any] = {"t": now, "dir": "out"}
            rec.update(_describe(pkt))
            rec["gso_size"] = gso
            self._write(rec)
        self.inner.send_batch(now, packets)

    def event(self, now: float, name: str, **fields_: Any) -> None:
        """Record a protocol event (``{"t": now, "event": name, ...fields}``)."""
        rec: dict[str, Any] = {"t": now, "event": name}
        rec.update(fields_)
        self._write(rec)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.out.flush()

