"""The Sans-IO Stack: RST for closed ports (RFC 9293 §3.10.7.1), address and checksum
filtering, demultiplexing, listeners and their backlog, TIME-WAIT reuse (RFC 6191), cleanup,
the timer heap, the listener hook; and a transfer through interop.netsim."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Literal

import pytest

from interop.netsim import LinkParams, Simulator
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.stack import ListenerHook, Stack, StackError
from mptcp.tcp.state import TcpState
from mptcp.wire.ip import ipv4
from mptcp.wire.segment import Segment, parse_segment
from mptcp.wire.tcp import ACK, RST, SYN, TcpHeader
from tests.tcp.test_conn_harness import st

CA, SA = "10.0.0.1", "10.0.0.2"
CAB, SAB = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def _stacks(**kw: object) -> tuple[Stack, Stack]:
    cfg = replace(TcpConfig(), **kw)  # type: ignore[arg-type]
    return (Stack([CA], random.Random(1), config=cfg),
            Stack([SA], random.Random(2), config=cfg))


def pump(a: Stack, b: Stack, now: float, rounds: int = 100) -> None:
    for _ in range(rounds):
        pa = a.packets_to_send(now)
        pb = b.packets_to_send(now)
        if not pa and not pb:
            return
        for x in pa:
            b.receive(x, now)
        for x in pb:
            a.receive(x, now)


def _seg(flags: int, *, seq: int = 1000, ack: int = 0, dport: int = 80, dst: bytes = SAB,
         payload: bytes = b"") -> bytes:
    return Segment(ipv4(CAB, dst), TcpHeader(5555, dport, seq, ack, flags, 1000), payload
                   ).to_bytes()


@pytest.mark.rfc("9293", "3.10.7.1")
def test_rst_for_closed_port() -> None:
    s = Stack([SA], random.Random(1))
    s.receive(_seg(SYN, seq=1000, payload=b"abc"), 0.0)
    (r,) = [parse_segment(x) for x in s.packets_to_send(0.0)]
    assert r.tcp.flags == RST | ACK and r.tcp.seq == 0 and r.tcp.ack == 1004
    assert (r.tcp.sport, r.tcp.dport) == (80, 5555) and r.ip.dst == CAB
    s.receive(_seg(ACK, seq=7, ack=424242), 0.0)
    (r,) = [parse_segment(x) for x in s.packets_to_send(0.0)]
    assert r.tcp.flags == RST and r.tcp.seq == 424242
    s.receive(_seg(RST, seq=7), 0.0)  # never a RST for a RST
    assert s.packets_to_send(0.0) == []
    assert s.mib["TcpNoPortRsts"] == 2 and s.mib["TcpOutRsts"] == 2


@pytest.mark.rfc("9293", "3.1")
def test_other_address_bad_checksum_and_garbage_dropped() -> None:
    s = Stack([SA], random.Random(1))
    s.listen(80)
    s.receive(_seg(SYN, dst=bytes([10, 9, 9, 9])), 0.0)
    assert s.mib["TcpExtOtherHostDrops"] == 1
    raw = bytearray(_seg(SYN))
    raw[-1] ^= 0xFF  # the urgent pointer's low byte: checksum now wrong
    s.receive(bytes(raw), 0.0)
    assert s.mib["TcpInCsumErrors"] == 1
    s.receive(b"\x45\x00", 0.0)
    assert s.mib["TcpInErrs"] == 2
    assert s.packets_to_send(0.0) == [] and not s.connections


@pytest.mark.rfc("9293", "3.10.1")
def test_connect_accept_and_demux_many() -> None:
    c, s = _stacks()
    s.listen(80)
    s.listen(81)
    conns = [c.connect((SA, 80 + i % 2)) for i in range(6)]
    assert len({x.local[1] for x in conns}) == 6  # distinct ephemeral ports
    pump(c, s, 0.0)
    accepted: list[TcpConnection] = []
    while (a := s.accept()) is not None:
        accepted.append(a)
    assert len(accepted) == 6
    assert all(st(x) is TcpState.ESTABLISHED for x in conns + accepted)
    for i, x in enumerate(conns):
        x.send(f"hello {i}".encode())
    pump(c, s, 0.1)
    by_port = {a.remote[1]: a for a in accepted}
    for i, x in enumerate(conns):
        peer = by_port[x.local[1]]
        assert peer.read() == f"hello {i}".encode()
        assert peer.local[1] == 80 + i % 2
    assert s.mib["TcpPassiveOpens"] == 6 and c.mib["TcpActiveOpens"] == 6


@pytest.mark.rfc("9293", "3.10.1")
def test_listener_backlog() -> None:
    c, s = _stacks()
    s.listen(80, backlog=2)
    conns = [c.connect((SA, 80)) for _ in range(4)]
    pump(c, s, 0.0)
    assert s.mib["TcpExtListenOverflows"] == 2
    est = [x for x in conns if st(x) is TcpState.ESTABLISHED]
    assert len(est) == 2
    assert s.accept() is not None and s.accept() is not None and s.accept() is None
    # the refused clients retransmit their SYN and get in now
    c.handle_timer(1.5)
    pump(c, s, 1.5)
    assert all(st(x) is TcpState.ESTABLISHED for x in conns)


def test_cleanup_after_close_and_timer_heap() -> None:
    c, s = _stacks(msl=0.5)
    s.listen(80)
    conns = [c.connect((SA, 80)) for _ in range(3)]
    pump(c, s, 0.0)
    srv = [s.accept() for _ in range(3)]
    t = c.get_timer()
    assert t is None or t > 0
    for x in conns:
        x.close()
    pump(c, s, 0.1)
    for y in srv:
        assert y is not None
        y.close()
    pump(c, s, 0.2)
    assert not s.connections  # LAST-ACK -> CLOSED: removed
    assert len(c.connections) == 3  # in TIME-WAIT
    assert c.get_timer() == pytest.approx(1.2)
    c.handle_timer(1.3)
    assert c.packets_to_send(1.3) == []
    assert not c.connections and c.get_timer() is None
    assert c.mib["TcpExtTWKilled"] == 3


def test_timer_is_min_over_connections() -> None:
    c, _ = _stacks()
    for i in range(50):
        c.connect((SA, 1000 + i))
    c.packets_to_send(0.0)  # SYNs out, RTO timers armed (nobody answers)
    assert c.get_timer() == pytest.approx(1.0)
    c.handle_timer(1.0)
    out = c.packets_to_send(1.0)
    assert len(out) == 50  # every SYN retransmitted once
    assert c.get_timer() == pytest.approx(3.0)


@pytest.mark.rfc("6191", "2")
def test_time_wait_reopened_by_new_syn() -> None:
    c, s = _stacks(msl=30.0)
    s.listen(80)
    x = c.connect((SA, 80), local=(CA, 40000))
    pump(c, s, 0.0)
    y = s.accept()
    assert y is not None
    y.close()  # the server closes first: it ends in TIME-WAIT
    pump(c, s, 0.1)
    x.close()
    pump(c, s, 0.2)
    assert st(y) is TcpState.TIME_WAIT
    c.handle_timer(100.0)
    c.packets_to_send(100.0)
    assert not c.connections
    x2 = c.connect((SA, 80), local=(CA, 40000), now=1.0)
    pump(c, s, 1.0)
    assert s.mib["TcpExtTWRecycled"] == 1
    y2 = s.accept()
    assert y2 is not None and y2 is not y and st(y2) is TcpState.ESTABLISHED
    assert st(x2) is TcpState.ESTABLISHED


def test_listener_hook_claims_or_drops_syn() -> None:
    class Hook(ListenerHook):
        def __init__(self) -> None:
            self.seen = 0

        def on_syn(self, stack: Stack, seg: Segment, now: float
                   ) -> TcpConnection | Literal[False] | None:
            self.seen += 1
            if seg.tcp.dport == 9:
                return False
            if seg.tcp.dport == 7:
                return TcpConnection.accept_syn(seg, stack.config, stack.rng, now,
                                                mib=stack.mib)
            return None

    c, s = _stacks()
    h = Hook()
    s.add_listener_hook(h)
    drop = c.connect((SA, 9))
    claim = c.connect((SA, 7))
    pump(c, s, 0.0)
    assert h.seen == 2
    assert st(drop) is TcpState.SYN_SENT  # silently dropped: no RST
    assert st(claim) is TcpState.ESTABLISHED  # claimed on a port nobody listens on
    assert s.mib["TcpExtListenDrops"] == 1


def test_api_errors() -> None:
    s = Stack([SA], random.Random(1))
    s.listen(80)
    with pytest.raises(StackError):
        s.listen(80)
    with pytest.raises(StackError):
        s.listen(81, address="10.9.9.9")
    with pytest.raises(StackError):
        s.connect(("10.0.0.1", 80), local=("10.7.7.7", 1))
    with pytest.raises(StackError):
        s.connect(("2001:db8::1", 80))


def test_transfer_over_netsim_with_loss() -> None:
    sim = Simulator(seed=4)
    c, s = _stacks()
    hc = sim.add_host("c", c)
    hs = sim.add_host("s", s)
    sim.add_link(hc.add_interface("eth0", CA), hs.add_interface("eth0", SA),
                 LinkParams(delay=0.01, rate=10e6, queue_packets=50, loss=0.01))
    s.listen(80)
    conn = c.connect((SA, 80))
    sim.poke(hc)
    data = random.Random(9).randbytes(300_000)
    pos = 0
    got = bytearray()
    srv: TcpConnection | None = None
    while len(got) < len(data) and sim.now < 60:
        if pos < len(data):
            pos += conn.send(data[pos:pos + 32768])
        srv = srv or s.accept()
        if srv is not None:
            got += srv.read()
        sim.poke(hc)
        sim.poke(hs)
        sim.run(until=sim.now + 0.01)
    assert bytes(got) == data
    conn.close()
    assert srv is not None
    sim.poke(hc)
    sim.run(until=sim.now + 1)
    assert st(srv) is TcpState.CLOSE_WAIT and srv.at_eof


@pytest.mark.rfc("9293", "3.1")
def test_checksum_offload_and_gso_annotations() -> None:
    """A stack serving a TSO + checksum-offload driver: super-segments come out annotated with
    the wire segment size, TCP checksums partial; a receiver told ``csum_ok`` (the kernel
    vouches) takes them, one that verifies itself counts them as checksum errors."""
    cfg = replace(TcpConfig(), gso_size=60_000, send_buffer=1 << 20, recv_buffer=1 << 20)
    a = Stack([CA], random.Random(1), config=cfg, csum_offload=True)
    b = Stack([SA], random.Random(2), config=cfg)
    b.listen(80)
    conn = a.connect((SA, 80))
    data = random.Random(5).randbytes(300_000)
    got = bytearray()
    now = 0.0
    sizes: list[tuple[int, int]] = []
    sent = 0
    for _ in range(500):
        now += 0.001
        if conn.state is TcpState.ESTABLISHED and sent < len(data):
            sent += conn.send(data[sent:])
        for pkt, gso in a.packets_to_send_gso(now):
            seg = parse_segment(pkt)
            sizes.append((len(seg.payload), gso))
            b.receive(pkt, now, csum_ok=True)
        for pkt in b.packets_to_send(now):
            a.receive(pkt, now)
        srv = b.accept(80) if not got else None
        if srv is not None:
            b_conn = srv
        if got or srv is not None:
            got += b_conn.read()
        if len(got) == len(data):
            break
    assert bytes(got) == data
    cut = conn.gso_segment_size
    assert any(n > cut for n, _ in sizes)
    assert all(g == (cut if n > cut else 0) for n, g in sizes)
    assert b.mib["TcpInCsumErrors"] == 0
    # the same partial-checksum packet, not vouched for: a checksum error
    c = Stack([SA], random.Random(3))
    c.listen(80)
    x = Stack([CA], random.Random(4), csum_offload=True)
    x.connect((SA, 80))
    (syn,) = x.packets_to_send(0.0)
    c.receive(syn, 0.0)
    assert c.mib["TcpInCsumErrors"] == 1 and not c.packets_to_send(0.0)


def test_non_tcp_packets_are_counted_not_checksum_errors() -> None:
    """An ICMPv6 router solicitation (what a fresh TUN device emits) or UDP is not a TCP
    checksum error."""
    s = Stack([SA], random.Random(1))
    rs = bytes.fromhex("6000000000103aff") + bytes(15) + b"\x01" + bytes.fromhex(
        "ff020000000000000000000000000002") + bytes.fromhex("8500000000000000") + bytes(8)
    s.receive(rs, 0.0)
    udp = bytes.fromhex("450000200000000040110000") + CAB + SAB + bytes(12)
    s.receive(udp, 0.0)
    assert s.mib["IpExtNonTcpDrops"] == 2
    assert s.mib["TcpInCsumErrors"] == 0 and s.mib["TcpInErrs"] == 0
