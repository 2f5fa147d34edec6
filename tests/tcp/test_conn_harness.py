"""A tiny in-memory harness wiring two TcpConnections (client and server), used by the
test_conn_* modules, and the basic handshake / transfer tests.

Every segment goes through ``to_bytes`` / ``parse_segment`` (so what the engine builds is
valid on the wire), is delayed by ``delay`` seconds and may be dropped, duplicated or
reordered by a filter.  Virtual time only advances to the next arrival or timer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.events import Connected, DataReceived, Event, StateChanged
from mptcp.tcp.state import TcpState
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, SYN

A = ("10.0.0.1", 40000)
B = ("10.0.0.2", 80)
A6 = ("2001:db8::1", 40000)
B6 = ("2001:db8::2", 80)

Filter = Callable[[str, Segment, float], bool]
"""(direction "ab"/"ba", segment, now) -> True to drop."""


class Pair:
    """Client ``a`` (active open) and server ``b`` (created from the first SYN)."""

    def __init__(
        self,
        cfg_a: TcpConfig | None = None,
        cfg_b: TcpConfig | None = None,
        *,
        delay: float = 0.01,
        seed: int = 1,
        drop: Filter | None = None,
        v6: bool = False,
        connect: bool = True,
        now: float = 0.0,
        a_kw: dict[str, Any] | None = None,
        b_kw: dict[str, Any] | None = None,
    ) -> None:
        self.cfg_a = cfg_a or TcpConfig()
        self.cfg_b = cfg_b or TcpConfig()
        self.delay = delay
        self.rng = random.Random(seed)
        self.drop = drop
        self.now = now
        self.addr_a, self.addr_b = (A6, B6) if v6 else (A, B)
        self.a: TcpConnection | None = None
        self.b: TcpConnection | None = None
        self.wire: list[tuple[float, int, str, bytes]] = []
        self._tie = itertools.count()
        self.log: list[tuple[float, str, Segment]] = []
        self.events_a: list[Event] = []
        self.events_b: list[Event] = []
        self.b_kw: dict[str, Any] = b_kw or {}
        self.a_kw: dict[str, Any] = a_kw or {}
        if connect:
            self.a = TcpConnection.connect(self.addr_a, self.addr_b, self.cfg_a,
                                           random.Random(seed + 1), now, **self.a_kw)

    # --------------------------------------------------------------- plumbing ----------
    def _emit(self, direction: str, conn: TcpConnection) -> None:
        for seg in conn.packets_to_send(self.now):
            raw = seg.to_bytes()
            assert checksum_ok(raw)
            parsed = parse_segment(raw)
            self.log.append((self.now, direction, parsed))
            if self.drop is not None and self.drop(direction, parsed, self.now):
                continue
            heapq.heappush(self.wire, (self.now + self.delay, next(self._tie), direction, raw))

    def flush(self) -> None:
        if self.a is not None:
            self._emit("ab", self.a)
        if self.b is not None:
            self._emit("ba", self.b)
        self._drain_events()

    def _drain_events(self) -> None:
        for conn, sink in ((self.a, self.events_a), (self.b, self.events_b)):
            if conn is None:
                continue
            while (ev := conn.next_event()) is not None:
                if not isinstance(ev, StateChanged):
                    sink.append(ev)

    def deliver(self, direction: str, seg: Segment) -> None:
        if direction == "ab":
            if self.b is None:
                if seg.tcp.flags & (SYN | ACK) != SYN:
                    return
                self.b = TcpConnection.accept_syn(seg, self.cfg_b, random.Random(7), self.now,
                                                  **self.b_kw)
                self._drain_events()
            else:
                self.b.receive(seg, self.now)
        elif self.a is not None:
            self.a.receive(seg, self.now)

    def inject(self, direction: str, seg: Segment) -> None:
        """Hand a forged segment to a side now."""
        self.deliver(direction, parse_segment(seg.to_bytes()))
        self.flush()

    def step(self, limit: float | None = None) -> bool:
        """Advance to the next arrival or timer (not past ``limit``: then the clock moves to
        ``limit`` and False is returned); False when nothing is pending."""
        self.flush()
        t_wire = self.wire[0][0] if self.wire else None
        timers = [c.get_timer() for c in (self.a, self.b) if c is not None]
        t_timer = min((t for t in timers if t is not None), default=None)
        cands = [t for t in (t_wire, t_timer) if t is not None]
        if not cands:
            return False
        t = min(cands)
        if limit is not None and t > limit:
            self.now = max(self.now, limit)
            return False
        self.now = max(self.now, t)
        if t_wire is not None and t_wire <= t:
            _, _, direction, raw = heapq.heappop(self.wire)
            self.deliver(direction, parse_segment(raw))
        else:
            for c in (self.a, self.b):
                if c is not None:
                    ct = c.get_timer()
                    if ct is not None and ct <= self.now:
                        c.handle_timer(self.now)
        self.flush()
        return True

    def run(self, until: float = 60.0, stop: Callable[[], bool] | None = None,
            max_steps: int = 200_000) -> None:
        for _ in range(max_steps):
            if stop is not None and stop():
                return
            if self.now > until:
                return
            if not self.step(until):
                return
        raise AssertionError("harness did not settle")

    def advance(self, dt: float) -> None:
        self.run(until=self.now + dt)

    # --------------------------------------------------------------- helpers -----------
    def established(self) -> bool:
        return (self.a is not None and self.b is not None
                and st(self.a) is TcpState.ESTABLISHED
                and st(self.b) is TcpState.ESTABLISHED)

    def handshake(self) -> None:
        self.run(until=self.now + 30, stop=self.established)
        assert self.established()

    def read_all(self, conn: TcpConnection) -> bytes:
        out = bytearray()
        while chunk := conn.read():
            out += chunk
        return bytes(out)

    def transfer(self, src: TcpConnection, dst: TcpConnection, data: bytes,
                 until: float = 120.0) -> bytes:
        """Write ``data`` (respecting back-pressure), read everything on the other side."""
        got = bytearray()
        pos = 0
        deadline = self.now + until
        while self.now <= deadline:
            if pos < len(data):
                pos += src.send(data[pos:pos + 65536])
            got += self.read_all(dst)
            if len(got) >= len(data):
                break
            if not self.step():
                break
        got += self.read_all(dst)
        return bytes(got)

    def sent(self, direction: str, flags: int | None = None) -> list[Segment]:
        return [s for _, d, s in self.log if d == direction
                and (flags is None or s.tcp.flags & flags == flags)]


def cfg(**kw: Any) -> TcpConfig:
    return replace(TcpConfig(), **kw)


# ------------------------------------------------------------------------- basic tests -----
@pytest.mark.rfc("9293", "3.5")
def test_three_way_handshake_ipv4() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    syn, synack = p.sent("ab")[0], p.sent("ba")[0]
    assert syn.tcp.flags & (SYN | ACK) == SYN
    assert synack.tcp.flags & (SYN | ACK) == SYN | ACK
    assert synack.tcp.ack == (syn.tcp.seq + 1) & 0xFFFFFFFF
    assert any(isinstance(e, Connected) for e in p.events_a)
    assert any(isinstance(e, Connected) for e in p.events_b)
    assert p.a.ts_ok and p.a.sack_ok and p.a.ws_ok
    assert p.b.ts_ok and p.b.sack_ok and p.b.ws_ok


@pytest.mark.rfc("9293", "3.5")
def test_handshake_ipv6_and_transfer() -> None:
    p = Pair(v6=True)
    p.handshake()
    assert p.a is not None and p.b is not None
    assert len(p.sent("ab")[0].ip.src) == 16
    data = bytes(range(256)) * 400
    assert p.transfer(p.a, p.b, data) == data
    assert any(isinstance(e, DataReceived) for e in p.events_b)


@pytest.mark.rfc("9293", "3.8.6")
def test_bulk_transfer_both_directions() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    d1 = random.Random(3).randbytes(300_000)
    d2 = random.Random(4).randbytes(100_000)
    assert p.transfer(p.a, p.b, d1) == d1
    assert p.transfer(p.b, p.a, d2) == d2
    assert p.a.mib["TcpRetransSegs"] == 0


def forge(p: Pair, direction: str, *, seq: int, ack: int = 0, flags: int = ACK,
          payload: bytes = b"", options: tuple[Any, ...] = (), window: int = 65535) -> Segment:
    """A segment as if sent by one side ("ab": from a to b, "ba": from b to a)."""
    from mptcp.wire.ip import ipv4, ipv6
    from mptcp.wire.tcp import TcpHeader

    src, dst = (p.addr_a, p.addr_b) if direction == "ab" else (p.addr_b, p.addr_a)
    import ipaddress

    s = ipaddress.ip_address(src[0]).packed
    d = ipaddress.ip_address(dst[0]).packed
    ip = ipv4(s, d) if len(s) == 4 else ipv6(s, d)
    return Segment(ip, TcpHeader(src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags,
                                 window, 0, 0, options), payload)


def ts_opt(seg: Segment) -> Any:
    from mptcp.wire.options import Timestamps

    return next((o for o in seg.tcp.options if type(o) is Timestamps), None)


def next_seq(conn: TcpConnection) -> int:
    """The sequence number the peer of ``conn`` would send next (conn's RCV.NXT)."""
    return conn.rcv.seq(conn.rcv_nxt)


def peer_ack(conn: TcpConnection) -> int:
    """An acceptable ACK value for segments sent to ``conn`` (its SND.NXT)."""
    return conn.snd.seq(conn.snd_nxt)


def st(conn: TcpConnection | None) -> TcpState:
    """A connection's state (a call, so that type checkers do not narrow it between steps)."""
    assert conn is not None
    return conn.state
