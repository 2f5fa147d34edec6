"""Flow control and ACK policy: window scaling (RFC 7323 §2.3), zero window and persist
probes (RFC 9293 §3.8.6.1), SWS avoidance (§3.8.6.2), Nagle (§3.7.4), delayed ACKs
(§3.8.6.3, RFC 1122 §4.2.3.2), immediate ACKs for out-of-order data (RFC 5681 §4.2)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from mptcp.tcp.state import TcpState
from mptcp.wire.options import Sack
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK
from tests.tcp.test_conn_harness import Pair, cfg, forge, next_seq, peer_ack, st


@pytest.mark.rfc("7323", "2.3")
def test_scaled_window_advertised() -> None:
    p = Pair(cfg_b=cfg(recv_buffer=1 << 20))
    p.handshake()
    assert p.b is not None and p.a is not None
    assert p.b.rcv_wscale == 5
    assert p.sent("ba")[0].tcp.window == 0xFFFF  # the SYN-ACK's window is not scaled
    p.a.send(bytes(64000))
    p.run(until=p.now + 1)
    seg = p.sent("ba")[-1]
    assert seg.tcp.window == ((1 << 20) - 64000) >> 5
    assert p.a.snd_wnd == seg.tcp.window << 5


@pytest.mark.rfc("9293", "3.8.6.1")
def test_zero_window_persist_probes_back_off_then_recover() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False, recv_buffer=3000,
                                                        window_scaling=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    data = bytes(range(256)) * 40
    p.a.send(data)
    p.run(until=p.now + 20)
    assert p.b.readable == 3000
    assert p.a.snd_wnd == 0
    probes = [t for t, d, s in p.log if d == "ab" and len(s.payload) == 1]
    assert len(probes) >= 3
    gaps = [b - a for a, b in pairwise(probes)]
    assert all(g2 > g1 * 1.5 for g1, g2 in pairwise(gaps))
    assert p.a.mib["TcpExtTCPWinProbe"] == len(probes)
    assert st(p.a) is TcpState.ESTABLISHED  # never gives up while probing
    got = p.b.read()
    p.run(until=p.now + 0.5)
    got += p.transfer(p.a, p.b, b"", until=30)
    while len(got) < len(data):
        got += p.b.read()
        if not p.step():
            break
    assert got == data


@pytest.mark.rfc("9293", "3.8.6.2.2")
def test_receiver_sws_avoidance_window_update() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False, recv_buffer=10000,
                                                        window_scaling=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(bytes(20000))
    p.run(until=p.now + 1)
    assert p.a.snd_wnd == 0
    n = len(p.sent("ba"))
    p.b.read(100)  # far less than an MSS: no window update
    p.flush()
    assert len(p.sent("ba")) == n
    p.b.read(3000)  # now the right edge can move by more than an MSS
    p.flush()
    upd = p.sent("ba")[n:]
    assert len(upd) == 1 and upd[0].tcp.window == 3100
    assert p.b.mib["TcpExtTCPWindowUpdate"] == 1


@pytest.mark.rfc("9293", "3.7.4")
@pytest.mark.parametrize("nagle", [True, False])
def test_nagle(nagle: bool) -> None:
    p = Pair(cfg_a=cfg(nagle=nagle), delay=0.05)
    p.handshake()
    assert p.a is not None
    p.a.send(b"a" * 10)
    p.flush()
    p.a.send(b"b" * 10)
    p.flush()
    small = [s for s in p.sent("ab") if s.payload]
    assert len(small) == (1 if nagle else 2)
    p.run(until=p.now + 0.5)
    small = [s for s in p.sent("ab") if s.payload]
    assert len(small) == 2
    # with Nagle a full segment goes out at once even with data outstanding
    p.a.send(b"c" * 10)
    p.flush()
    p.a.send(b"d" * 5000)
    p.flush()
    sizes = [len(s.payload) for s in p.sent("ab") if s.payload][2:]
    assert sizes[0] == 10 and max(sizes) == p.a.mss_send - 12


@pytest.mark.rfc("9293", "3.8.6.3")
def test_delayed_ack_timeout_and_every_second_segment() -> None:
    p = Pair(cfg_b=cfg(delack_timeout=0.1), delay=0.01)
    p.handshake()
    assert p.a is not None and p.b is not None
    p.run(until=p.now + 0.5)
    n = len(p.sent("ba"))
    t0 = p.now
    p.a.send(b"x" * 100)
    p.run(until=t0 + 0.5)
    acks = [(t, s) for t, d, s in p.log if d == "ba"][n:]
    assert len(acks) == 1
    assert acks[0][0] == pytest.approx(t0 + 0.01 + 0.1)  # arrival + delack timeout
    assert p.b.mib["TcpExtDelayedACKs"] == 1
    # two full-sized segments: ACKed at once
    n = len(p.sent("ba"))
    t1 = p.now
    p.a.send(bytes(2 * (p.a.mss_send - 12)))
    p.run(until=t1 + 0.05)
    acks = [(t, s) for t, d, s in p.log if d == "ba"][n:]
    assert acks and acks[0][0] == pytest.approx(t1 + 0.01)


@pytest.mark.rfc("5681", "4.2")
@pytest.mark.rfc("2018", "4")
def test_out_of_order_immediate_ack_with_sack() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.handshake()
    p.run(until=p.now + 0.5)
    assert p.a is not None and p.b is not None
    n = len(p.sent("ba"))
    base = next_seq(p.b)
    p.inject("ab", forge(p, "ab", seq=base + 1000, ack=peer_ack(p.b), payload=b"y" * 500))
    ack = p.sent("ba")[n:]
    assert len(ack) == 1 and ack[0].tcp.ack == base
    sack = next(o for o in ack[0].tcp.options if type(o) is Sack)
    assert sack.blocks == (((base + 1000) & 0xFFFFFFFF, (base + 1500) & 0xFFFFFFFF),)
    # filling the gap is ACKed at once too
    p.inject("ab", forge(p, "ab", seq=base, ack=peer_ack(p.b), payload=b"x" * 1000))
    fill = p.sent("ba")[n + 1:]
    assert len(fill) == 1 and fill[0].tcp.ack == (base + 1500) & 0xFFFFFFFF
    assert p.b.read() == b"x" * 1000 + b"y" * 500


@pytest.mark.rfc("2883", "4")
def test_duplicate_segment_reported_with_dsack() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.handshake()
    p.run(until=p.now + 0.5)
    assert p.a is not None and p.b is not None
    base = next_seq(p.b)
    seg = forge(p, "ab", seq=base, ack=peer_ack(p.b), payload=b"z" * 100)
    p.inject("ab", seg)
    n = len(p.sent("ba"))
    p.inject("ab", seg)
    dup_ack: Segment = p.sent("ba")[n]
    assert dup_ack.tcp.flags == ACK
    sack = next(o for o in dup_ack.tcp.options if type(o) is Sack)
    assert sack.blocks[0] == (base, (base + 100) & 0xFFFFFFFF)


@pytest.mark.rfc("9293", "3.9.1.2")
def test_psh_on_the_segment_that_empties_the_queue() -> None:
    from mptcp.wire.tcp import PSH

    p = Pair(cfg_a=cfg(nagle=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(5000))
    data = [s for s in p.sent("ab") if s.payload]
    assert [bool(s.tcp.flags & PSH) for s in data] == [False] * (len(data) - 1) + [True]
