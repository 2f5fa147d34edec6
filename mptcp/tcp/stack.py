"""The Sans-IO TCP ``Stack``: addresses, listeners, demultiplexing, timers of many connections.

- ``receive(packet_bytes, now)``: checksum validation (RFC 9293 §3.1; counted as
  ``TcpInCsumErrors`` / ``TcpInErrs``), one parse, drop of packets for addresses we do not own
  (``TcpExtOtherHostDrops``), 4-tuple lookup, then listener-level hooks (:class:`ListenerHook`,
  e.g. MPTCP MP_JOIN routing by token), then the listener for a SYN (backlog limit:
  ``TcpExtListenOverflows``, the SYN is dropped without answer like Linux), else the
  RFC 9293 §3.10.7.1 RST (never for a RST; ``TcpNoPortRsts``).
- TIME-WAIT reuse: a new SYN for a TIME-WAIT 4-tuple reopens it when RFC 6191 §2 allows (with
  timestamps: SEG.TSval > TS.Recent) or, without timestamps, RFC 9293 §3.6.1 / RFC 1122
  §4.2.2.13 (SEG.SEQ > the final RCV.NXT) -- ``TcpExtTWRecycled``.
- ``packets_to_send(now)`` polls only the connections that something happened to (a packet,
  a timer, an application call -- connections call ``wake``), serializes their segments and
  removes CLOSED connections afterwards.
- ``get_timer()`` is the top of a heap of (deadline, connection) with lazy invalidation: O(1)
  to read, O(log n) per change, so thousands of connections stay cheap.
- ``connect`` (ephemeral ports from the injected randomness), ``listen``, ``accept``.

One :class:`~mptcp.tcp.events.TcpMib` is shared by every connection of the stack.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from mptcp.tcp import output
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection, normalize_endpoint
from mptcp.tcp.events import TcpMib
from mptcp.tcp.isn import IsnGenerator
from mptcp.tcp.seqnum import seq_gt
from mptcp.tcp.state import TcpState
from mptcp.tcp.tfo import TfoClientCache, TfoServer
from mptcp.tcp.timers import next_deadline
from mptcp.wire.checksum import payload_sum
from mptcp.wire.errors import WireError
from mptcp.wire.ip import PROTO_TCP, IPv4Header, IPv6Header
from mptcp.wire.options import Timestamps
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, RST, SYN

__all__ = ["Stack", "Listener", "ListenerHook", "StackError", "FourTuple"]

FourTuple = tuple[bytes, int, bytes, int]
"""(local address, local port, remote address, remote port)."""

_EPHEMERAL = (32768, 60999)  # Linux's ip_local_port_range
_from_bytes = int.from_bytes
_CLOSED = TcpState.CLOSED  # (an Enum member lookup costs ~0.1 us each time)


class StackError(ValueError):
    """Misuse of the Stack API (address not ours, port in use, ...)."""


class ListenerHook:
    """Listener-level extension: sees every SYN that matches no connection, before the
    listener lookup.  MPTCP uses it to route an MP_JOIN SYN by its token (RFC 8684 §3.2) to the
    MPTCP connection that owns the token, on any port.

    ``on_syn`` returns a :class:`TcpConnection` to claim the SYN (the hook built it, e.g. with
    ``TcpConnection.accept_syn``; the stack registers it under the SYN's 4-tuple and polls
    it), ``False`` to drop the SYN silently, or ``None`` to let the normal path go on.
    """

    def on_syn(self, stack: Stack, seg: Segment, now: float
               ) -> TcpConnection | Literal[False] | None:
        return None


@dataclass
class Listener:
    """A passive OPEN on ``port`` (any local address, or ``address``)."""

    port: int
    config: TcpConfig
    backlog: int
    address: bytes | None = None
    pending: set[TcpConnection] = field(default_factory=set)  # SYN-RECEIVED
    ready: deque[TcpConnection] = field(default_factory=deque)  # established, not accepted

    @property
    def queued(self) -> int:
        return len(self.pending) + len(self.ready)


class Stack:
    """A host's TCP: Sans-IO like its connections (bytes in, bytes out, time passed in)."""

    def __init__(
        self,
        addresses: Iterable[bytes | str],
        rng: random.Random,
        *,
        config: TcpConfig | None = None,
        verify_checksums: bool = True,
        csum_offload: bool = False,
    ) -> None:
        self.addresses: set[bytes] = {_addr(a) for a in addresses}
        self.rng = rng
        self.config = config if config is not None else TcpConfig()
        self.verify_checksums = verify_checksums
        self.csum_offload = csum_offload
        """Serialize TCP checksums as partial (pseudo-header sum only) for a driver whose
        device completes them (``Segment.to_bytes(partial=True)``)."""
        self.mib = TcpMib()
        self.isn_gen = (IsnGenerator(self.config.isn_secret) if self.config.isn_secret
                        else IsnGenerator.from_rng(rng))
        self.tfo_cache = TfoClientCache()
        self._tfo_server: TfoServer | None = None
        self.connections: dict[FourTuple, TcpConnection] = {}
        self.listeners: dict[tuple[bytes | None, int], Listener] = {}
        self.hooks: list[ListenerHook] = []
        self._dirty: dict[TcpConnection, None] = {}
        self._heap: list[tuple[float, int, TcpConnection]] = []
        self._deadline: dict[TcpConnection, float | None] = {}
        self._tie = itertools.count()
        self._out: list[bytes] = []
        self._owner: dict[TcpConnection, Listener] = {}

    # ----------------------------------------------------------------- configuration -------
    def add_address(self, address: bytes | str) -> None:
        self.addresses.add(_addr(address))

    def add_listener_hook(self, hook: ListenerHook) -> None:
        self.hooks.append(hook)

    def tfo_server(self) -> TfoServer:
        """The host's TFO cookie authority (key from the config or the injected randomness)."""
        if self._tfo_server is None:
            key = self.config.tfo_key
            self._tfo_server = (TfoServer(key) if key is not None
                                else TfoServer.from_rng(self.rng))
        return self._tfo_server

    def listen(self, port: int, config: TcpConfig | None = None, *, backlog: int = 128,
               address: bytes | str | None = None) -> Listener:
        """Passive OPEN (RFC 9293 §3.10.1) on ``port``."""
        if not 0 < port <= 0xFFFF or backlog < 1:
            raise StackError(f"bad port {port} or backlog {backlog}")
        addr = _addr(address) if address is not None else None
        if addr is not None and addr not in self.addresses:
            raise StackError("listening on an address the stack does not own")
        key = (addr, port)
        if key in self.listeners:
            raise StackError(f"port {port} already has a listener")
        lst = Listener(port, config if config is not None else self.config, backlog, addr)
        self.listeners[key] = lst
        return lst

    def unlisten(self, port: int, address: bytes | str | None = None) -> None:
        addr = _addr(address) if address is not None else None
        self.listeners.pop((addr, port), None)

    def connect(self, remote: tuple[bytes | str, int], *, local: tuple[bytes | str, int] |
                None = None, config: TcpConfig | None = None, now: float = 0.0
                ) -> TcpConnection:
        """Active OPEN: a new connection (its SYN leaves with the next packets_to_send)."""
        raddr, rport = normalize_endpoint(remote)
        if local is None:
            fam = [a for a in sorted(self.addresses) if len(a) == len(raddr)]
            if not fam:
                raise StackError("no local address of the remote's family")
            laddr, lport = fam[0], 0
        else:
            laddr, lport = normalize_endpoint(local)
            if laddr not in self.addresses:
                raise StackError("local address not owned by the stack")
        if lport == 0:
            lport = self._ephemeral(laddr, raddr, rport)
        key = (laddr, lport, raddr, rport)
        if key in self.connections:
            raise StackError("4-tuple in use")
        conn = TcpConnection.connect((laddr, lport), (raddr, rport), config or self.config,
                                     self.rng, now, mib=self.mib, isn_gen=self.isn_gen,
                                     tfo_cache=self.tfo_cache)
        self.register(conn)
        return conn

    def _ephemeral(self, laddr: bytes, raddr: bytes, rport: int) -> int:
        lo, hi = _EPHEMERAL
        for _ in range(hi - lo + 1):
            port = self.rng.randint(lo, hi)
            if (laddr, port, raddr, rport) not in self.connections:
                return port
        raise StackError("no free ephemeral port")

    def register(self, conn: TcpConnection) -> None:
        """Start demultiplexing to ``conn`` (hooks that build connections call this)."""
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        self.connections[key] = conn
        conn.wake = self._wake
        self._dirty[conn] = None

    def accept(self, port: int | None = None) -> TcpConnection | None:
        """An established connection from a listener's queue (any listener when ``port`` is
        None), or None."""
        for lst in self.listeners.values():
            if (port is None or lst.port == port) and lst.ready:
                conn = lst.ready.popleft()
                self._owner.pop(conn, None)
                return conn
        return None

    def connection(self, local: tuple[bytes | str, int], remote: tuple[bytes | str, int]
                   ) -> TcpConnection | None:
        la, lp = normalize_endpoint(local)
        ra, rp = normalize_endpoint(remote)
        return self.connections.get((la, lp, ra, rp))

    def __iter__(self) -> Iterator[TcpConnection]:
        return iter(list(self.connections.values()))

    # ----------------------------------------------------------------- Sans-IO -------------
    def receive(self, packet: bytes, now: float, csum_ok: bool = False) -> None:
        """One IP packet from the network.  ``csum_ok``: the driver's kernel already verified
        the checksums (virtio-net ``DATA_VALID``) or will compute them (``NEEDS_CSUM``: a
        locally generated, possibly GSO super-packet whose checksum field is partial)."""
        mib = self.mib
        verify = self.verify_checksums and not csum_ok
        try:
            seg: Segment | None = parse_segment(packet)
        except WireError:
            seg = None
        if seg is None or (verify and not _checksums_ok(packet, seg)):
            # The slow path decides (and counts) exactly as before: checksum, then parse
            if not _maybe_tcp(packet):
                mib["IpExtNonTcpDrops"] += 1  # ICMPv6 router solicitations on a TUN, ...
                return
            try:
                if verify and not checksum_ok(packet):
                    mib["TcpInCsumErrors"] += 1
                    mib["TcpInErrs"] += 1
                    return
                seg = parse_segment(packet)
            except WireError:
                mib["TcpInErrs"] += 1
                return
        ip = seg.ip
        dst = ip.dst if type(ip.dst) is bytes else bytes(ip.dst)
        if dst not in self.addresses:
            mib["TcpExtOtherHostDrops"] += 1
            return
        tcp = seg.tcp
        src = ip.src if type(ip.src) is bytes else bytes(ip.src)
        conn = self.connections.get((dst, tcp.dport, src, tcp.sport))
        is_syn = tcp.flags & (SYN | ACK | RST) == SYN
        if conn is not None and is_syn and conn.state is TcpState.TIME_WAIT \
                and conn.config.timewait_reuse and _reopen_ok(conn, seg):
            mib["TcpExtTWRecycled"] += 1
            self._remove(conn)
            conn = None
        if conn is not None:
            conn.receive(seg, now)
            self._dirty[conn] = None
            self._schedule(conn)
            return
        if is_syn:
            for hook in self.hooks:
                claim = hook.on_syn(self, seg, now)
                if claim is False:
                    mib["TcpExtListenDrops"] += 1
                    return
                if claim is not None:
                    self.register(claim)
                    return
            lst = self.listeners.get((dst, tcp.dport)) or self.listeners.get((None, tcp.dport))
            if lst is not None:
                if lst.queued >= lst.backlog:
                    mib["TcpExtListenOverflows"] += 1
                    mib["TcpExtListenDrops"] += 1
                    return
                conn = TcpConnection.accept_syn(
                    seg, lst.config, self.rng, now, mib=mib, isn_gen=self.isn_gen,
                    tfo_server=self.tfo_server() if lst.config.tfo_server else None)
                self.register(conn)
                lst.pending.add(conn)
                self._owner[conn] = lst
                return
        rst = output.rst_for(seg)
        if rst is not None:
            mib["TcpOutRsts"] += 1
            mib["TcpNoPortRsts"] += 1
            self._out.append(rst.to_bytes(self.csum_offload))

    def packets_to_send(self, now: float) -> list[bytes]:
        """Every packet due now, from every connection that may have some."""
        out = self._out
        self._out = []
        partial = self.csum_offload
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                for seg in conn.packets_to_send(now):
                    out.append(seg.to_bytes(partial))
                self._after(conn)
        return out

    def packets_to_send_gso(self, now: float) -> list[tuple[bytes, int]]:
        """Like :meth:`packets_to_send`, for TSO/GSO drivers: (packet, gso_size) pairs, where
        gso_size is the payload per wire segment of a super-segment (``TcpConfig.gso_size``)
        and 0 for a packet that needs no cutting."""
        out: list[tuple[bytes, int]] = [(p, 0) for p in self._out]
        self._out = []
        partial = self.csum_offload
        while self._dirty:
            dirty = list(self._dirty)
            self._dirty.clear()
            for conn in dirty:
                segs = conn.packets_to_send(now)
                if segs:
                    cut = conn.gso_segment_size
                    for seg in segs:
                        out.append((seg.to_bytes(partial),
                                    cut if len(seg.payload) > cut else 0))
                self._after(conn)
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline of all connections."""
        heap = self._heap
        while heap:
            t, _, conn = heap[0]
            if self._deadline.get(conn) == t:
                return t
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, _, conn = heapq.heappop(heap)
            if self._deadline.get(conn) != t:
                continue
            self._deadline[conn] = None
            conn.handle_timer(now)
            self._dirty[conn] = None
        # deadlines are recomputed by packets_to_send (_after); keep get_timer truthful now
        for conn in list(self._dirty):
            self._schedule(conn)

    # ----------------------------------------------------------------- internals -----------
    def _wake(self, conn: TcpConnection) -> None:
        self._dirty[conn] = None

    def _schedule(self, conn: TcpConnection) -> None:
        t = next_deadline(conn)  # conn.get_timer()
        deadline = self._deadline
        if deadline.get(conn) != t:
            deadline[conn] = t
            if t is not None:
                if len(self._heap) > 64 + 4 * len(deadline):
                    self._compact()
                heapq.heappush(self._heap, (t, next(self._tie), conn))

    def _compact(self) -> None:
        """Drop the heap entries that can no longer fire.  Outdated entries (a deadline that
        moved on) are otherwise only dropped when they reach the top, and would pile up (an
        RTO re-armed by every ACK).  Kept: the first entry of each connection whose time is
        its deadline (a later one with the same time is skipped once the first has fired),
        in the same order."""
        deadline = self._deadline
        keep: dict[TcpConnection, tuple[float, int, TcpConnection]] = {}
        for e in sorted(self._heap):
            conn = e[2]
            if conn not in keep and deadline.get(conn) == e[0]:
                keep[conn] = e
        self._heap = list(keep.values())
        heapq.heapify(self._heap)

    def _after(self, conn: TcpConnection) -> None:
        lst = self._owner.get(conn)
        if lst is not None and conn in lst.pending and conn.state is not TcpState.SYN_RECEIVED:
            lst.pending.discard(conn)
            if conn.state is not TcpState.CLOSED:
                lst.ready.append(conn)
            else:
                self._owner.pop(conn, None)
        if conn._state is _CLOSED:
            self._remove(conn)
        else:
            self._schedule(conn)

    def _remove(self, conn: TcpConnection) -> None:
        key = (conn.local[0], conn.local[1], conn.remote[0], conn.remote[1])
        if self.connections.get(key) is conn:
            del self.connections[key]
        self._deadline.pop(conn, None)
        self._dirty.pop(conn, None)
        lst = self._owner.pop(conn, None)
        if lst is not None:
            lst.pending.discard(conn)
            if conn in lst.ready:
                lst.ready.remove(conn)
        conn.wake = None


def _addr(a: bytes | str) -> bytes:
    if isinstance(a, str):
        return ipaddress.ip_address(a).packed
    if len(a) not in (4, 16):
        raise StackError(f"address of {len(a)} bytes")
    return bytes(a)


def _maybe_tcp(packet: bytes) -> bool:
    """False for a packet that is certainly not TCP: IPv4 with another protocol, IPv6 whose
    first next-header is ICMPv6, UDP or none (anything else may reach TCP through extension
    headers and is left to the parser)."""
    if len(packet) < 20:
        return True  # malformed: the parser counts it
    v = packet[0] >> 4
    if v == 4:
        return packet[9] == PROTO_TCP
    if v == 6 and len(packet) >= 40:
        return packet[6] not in (17, 58, 59)
    return True


def _checksums_ok(packet: bytes, seg: Segment) -> bool:
    """The IPv4 header checksum and the TCP checksum of a packet ``parse_segment`` accepted
    (RFC 1071 / RFC 9293 §3.1 / RFC 791 §3.1), with one pass over the packet: the ones'
    complement sum of the whole packet is the sum of the IP header's words plus the TCP
    segment's (the TCP header starts at an even offset), so the header's sum -- 20 or 40
    bytes -- is summed once more on its own and subtracted.  False for anything unusual (IP
    options, IPv6 extension headers): the caller then asks ``checksum_ok``."""
    ip = seg.ip
    if type(ip) is IPv4Header:
        if ip.options:
            return False
        end = ip.total_length
        hlen = 20
    elif type(ip) is IPv6Header and not ip.ext:
        end = 40 + ip.payload_length
        hlen = 40
    else:
        return False
    head = _from_bytes(packet[:hlen], "big")
    whole = payload_sum(packet if len(packet) == end else packet[:end])
    pseudo = _from_bytes(ip.src, "big") + _from_bytes(ip.dst, "big") + PROTO_TCP + end - hlen
    if hlen == 20 and head % 0xFFFF:
        return False  # RFC 791 header checksum (head is never 0: version 4)
    return (whole - head + pseudo) % 0xFFFF == 0  # never all-zero words: proto is 6


def _reopen_ok(conn: TcpConnection, seg: Segment) -> bool:
    """RFC 6191 §2 (timestamps) or RFC 9293 §3.6.1 / RFC 1122 §4.2.2.13 (sequence numbers)."""
    ts = next((o for o in seg.tcp.options if type(o) is Timestamps), None)
    if conn.ts_ok and ts is not None and conn.ts_recent_time is not None:
        return seq_gt(ts.tsval, conn.ts_recent)
    return seq_gt(seg.tcp.seq, conn.rcv.seq(conn.rcv_nxt))

