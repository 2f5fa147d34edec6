"""Tiny Sans-IO endpoints for the simulator tests: a pinger sending numbered TCP-shaped
packets on a plan, an echoer answering each packet, a sink, and a ticker (a stack whose timer
never stops)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from interop.netsim import LinkParams, Simulator
from interop.netsim.host import Host, SansIOStack
from interop.netsim.link import Link
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.options import Sack, TcpOption
from mptcp.wire.segment import Segment, parse_segment
from mptcp.wire.tcp import ACK, PSH, TcpHeader

A4, B4 = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def make_packet(
    src: str, dst: str, payload: bytes = b"", *, seq: int = 0, ack: int = 0,
    sport: int = 1000, dport: int = 2000, flags: int = ACK | PSH, ecn: int = 0,
    options: tuple[TcpOption, ...] = (),
) -> bytes:
    s, d = packed(src), packed(dst)
    ip = ipv4(s, d, tos=ecn) if len(s) == 4 else ipv6(s, d, traffic_class=ecn)
    return Segment(ip, TcpHeader(sport, dport, seq, ack, flags, 65535, 0, 0, options),
                   payload).to_bytes()


def number_of(pkt: bytes) -> int:
    """The packet number a Pinger put at the start of the payload."""
    return int.from_bytes(parse_segment(pkt).payload[:4], "big")


class Pinger:
    """Sends packets at planned times (``plan``), records everything it receives."""

    def __init__(self) -> None:
        self.plan: list[tuple[float, bytes]] = []  # in time order; plan[next:] not sent yet
        self.next = 0
        self.outbox: list[bytes] = []
        self.received: list[tuple[float, bytes]] = []
        self.sent_at: list[float] = []

    def add(self, at: float, pkt: bytes) -> None:
        if self.plan and at < self.plan[-1][0]:
            raise ValueError("plan packets in time order")
        self.plan.append((at, pkt))

    def add_numbered(
        self, times: Iterable[float], src: str, dst: str, *, size: int = 100, ecn: int = 0,
        sport: int = 1000, dport: int = 2000, first: int = 0,
    ) -> None:
        """Packet ``i`` carries ``i`` in its first 4 payload bytes, seq = i * size, and is
        ``size`` payload bytes long."""
        for i, t in enumerate(times, first):
            body = i.to_bytes(4, "big") + bytes(size - 4)
            self.add(t, make_packet(src, dst, body, seq=i * size, sport=sport, dport=dport,
                                    ecn=ecn))

    def receive(self, packet: bytes, now: float) -> None:
        self.received.append((now, packet))

    def packets_to_send(self, now: float) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> float | None:
        return self.plan[self.next][0] if self.next < len(self.plan) else None

    def handle_timer(self, now: float) -> None:
        plan = self.plan
        while self.next < len(plan) and plan[self.next][0] <= now:
            self.outbox.append(plan[self.next][1])
            self.sent_at.append(now)
            self.next += 1


class Echoer:
    """Answers every TCP packet with addresses and ports swapped; the answer acknowledges the
    received data (ack = seq + len) and carries one SACK block covering it."""

    def __init__(self) -> None:
        self.outbox: list[bytes] = []
        self.received: list[tuple[float, bytes]] = []

    def receive(self, packet: bytes, now: float) -> None:
        self.received.append((now, packet))
        seg = parse_segment(packet)
        t = seg.tcp
        end = (t.seq + len(seg.payload)) & 0xFFFFFFFF
        ip = seg.ip._replace(src=seg.ip.dst, dst=seg.ip.src)
        tcp = TcpHeader(t.dport, t.sport, 7000, end, ACK, 65535, 0, 0, (Sack(((t.seq, end),)),))
        self.outbox.append(Segment(ip, tcp, seg.payload).to_bytes())

    def packets_to_send(self, now: float) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("the echoer has no timer")


class Ticker:
    """A stack with a timer every ``period`` seconds, forever (never idle)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.next = period
        self.fired: list[float] = []

    def receive(self, packet: bytes, now: float) -> None:
        pass

    def packets_to_send(self, now: float) -> list[bytes]:
        return []

    def get_timer(self) -> float | None:
        return self.next

    def handle_timer(self, now: float) -> None:
        self.fired.append(now)
        self.next = now + self.period


def pair(
    sim: Simulator, a_stack: SansIOStack, b_stack: SansIOStack, params: LinkParams | None = None, *,
    ab: LinkParams | None = None, ba: LinkParams | None = None, v6: bool = False,
) -> tuple[Host, Host, Link]:
    """Two hosts ``a`` (10.0.0.1 / fd00::1) and ``b`` (10.0.0.2 / fd00::2) on one link."""
    ha = sim.add_host("a", a_stack)
    hb = sim.add_host("b", b_stack)
    ia = ha.add_interface("eth0", A6 if v6 else A4)
    ib = hb.add_interface("eth0", B6 if v6 else B4)
    return ha, hb, sim.add_link(ia, ib, params, ab=ab, ba=ba)
