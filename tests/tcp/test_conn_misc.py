"""The state table (RFC 9293 §3.3.2), ECN (RFC 3168 §6.1), keepalive (RFC 9293 §3.8.4),
super-segments for TSO/GSO, SACK-less / timestamp-less interop, counters."""

from __future__ import annotations

import pytest

from mptcp.tcp.events import MIB_COUNTERS, ConnectionFailed, TcpMib
from mptcp.tcp.state import (
    TRANSITIONS,
    InvalidTransition,
    TcpState,
    Trigger,
    transition,
    validate_table,
)
from mptcp.wire.ip import ECN_CE, ECN_ECT0, ECN_NOT_ECT, IPv4Header
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, CWR, ECE, RST, SYN
from tests.tcp.test_conn_harness import Pair, cfg, st


@pytest.mark.rfc("9293", "3.3.2")
def test_state_table_shape_and_errors() -> None:
    validate_table()
    assert transition(TcpState.SYN_SENT, Trigger.RCV_SYN) is TcpState.SYN_RECEIVED
    assert transition(TcpState.FIN_WAIT_1, Trigger.RCV_FIN) is TcpState.CLOSING
    with pytest.raises(InvalidTransition):
        transition(TcpState.CLOSED, Trigger.RCV_FIN)
    broken = dict(TRANSITIONS)
    del broken[(TcpState.CLOSING, Trigger.RCV_ACK_OF_FIN)]
    del broken[(TcpState.FIN_WAIT_1, Trigger.RCV_FIN)]
    with pytest.raises(ValueError, match="unreachable"):
        validate_table(broken)
    bad = dict(TRANSITIONS)
    bad[(TcpState.TIME_WAIT, Trigger.RCV_SYN)] = TcpState.SYN_RECEIVED
    with pytest.raises(ValueError, match="TIME-WAIT"):
        validate_table(bad)


def test_mib_counts_and_defaults() -> None:
    mib = TcpMib()
    assert set(MIB_COUNTERS) <= set(mib)
    mib["Whatever"] += 2
    assert mib["Whatever"] == 2 and mib["Never"] == 0
    assert mib.nonzero() == {"Whatever": 2}


@pytest.mark.rfc("3168", "6.1.1")
def test_ecn_negotiation_and_echo() -> None:
    marked: list[int] = []

    def mark_ce(d: str, s: Segment, t: float) -> bool:
        return False

    p = Pair(cfg_a=cfg(ecn=True), cfg_b=cfg(ecn=True), drop=mark_ce)
    p.flush()
    syn = p.sent("ab")[0]
    assert syn.tcp.flags & (ECE | CWR) == ECE | CWR
    p.handshake()
    assert p.a is not None and p.b is not None
    synack = p.sent("ba")[0]
    assert synack.tcp.flags & (ECE | CWR) == ECE
    assert p.a.ecn_ok and p.b.ecn_ok
    # data carries ECT(0), pure ACKs Not-ECT (RFC 3168 §6.1.4)
    p.transfer(p.a, p.b, bytes(5000))
    assert all(s.ip.ecn == ECN_ECT0 for s in p.sent("ab") if s.payload)
    assert all(s.ip.ecn == ECN_NOT_ECT for s in p.sent("ba") if not s.payload)
    # a CE mark makes b echo ECE until a sends CWR; a reduces cwnd once
    orig = p.deliver

    def deliver_ce(direction: str, seg: Segment) -> None:
        if direction == "ab" and seg.payload and not marked:
            marked.append(1)
            ip = seg.ip
            assert isinstance(ip, IPv4Header)
            seg = seg._replace(ip=ip._replace(tos=ip.tos | ECN_CE))
        orig(direction, seg)

    p.deliver = deliver_ce  # type: ignore[method-assign]
    cwnd = p.a.cc.cwnd
    p.transfer(p.a, p.b, bytes(30000))
    assert p.b.mib["TcpExtTCPECNCE"] == 1
    assert any(s.tcp.flags & ECE for s in p.sent("ba"))
    assert any(s.tcp.flags & CWR for s in p.sent("ab"))
    assert p.a.mib["TcpExtTCPECNEcho"] >= 1
    assert p.a.cc.ssthresh < 1 << 40 and p.a.cc.cwnd < cwnd * 4
    assert p.a.mib["TcpRetransSegs"] == 0


@pytest.mark.rfc("3168", "6.1.1")
def test_ecn_not_negotiated_with_plain_peer() -> None:
    p = Pair(cfg_a=cfg(ecn=True))
    p.handshake()
    assert p.a is not None
    assert not p.a.ecn_ok
    p.transfer(p.a, p.b, bytes(3000))  # type: ignore[arg-type]
    assert all(s.ip.ecn == ECN_NOT_ECT for s in p.sent("ab"))


@pytest.mark.rfc("9293", "3.8.4")
def test_keepalive_probes_and_timeout() -> None:
    state = {"cut": False}
    p = Pair(cfg_a=cfg(keepalive=True, keepalive_idle=10.0, keepalive_interval=2.0,
                       keepalive_probes=3),
             drop=lambda d, s, t: state["cut"] and d == "ba")
    p.handshake()
    assert p.a is not None
    p.run(until=p.now + 25)
    probes = [s for s in p.sent("ab") if not s.payload and s.tcp.flags == ACK
              and s.tcp.seq == (p.a.snd.seq(p.a.snd_una) - 1) & 0xFFFFFFFF]
    assert len(probes) >= 2 and st(p.a) is TcpState.ESTABLISHED  # answered: alive
    state["cut"] = True
    p.run(until=p.now + 60)
    assert st(p.a) is TcpState.CLOSED
    assert ConnectionFailed("keepalive timeout") in p.events_a
    assert p.sent("ab", RST)
    assert p.a.mib["TcpExtTCPAbortOnKeepalive"] == 1


def test_gso_super_segments() -> None:
    p = Pair(cfg_a=cfg(gso_size=4 * 1448 + 100, nagle=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    data = bytes(range(256)) * 200
    assert p.transfer(p.a, p.b, data) == data
    sizes = [len(s.payload) for s in p.sent("ab") if s.payload]
    assert max(sizes) == 4 * 1448  # whole MSS multiples
    assert all(n % 1448 == 0 for n in sizes[:-1])


@pytest.mark.rfc("9293", "3.5")
def test_plain_tcp_without_options_transfers() -> None:
    plain = cfg(sack=False, timestamps=False, window_scaling=False, recv_buffer=65535)
    p = Pair(cfg_a=plain, cfg_b=plain)
    p.handshake()
    assert p.a is not None and p.b is not None
    data = bytes(200_000)
    assert p.transfer(p.a, p.b, data) == data
    assert all(s.tcp.options == () for s in p.sent("ab")[1:])
    assert p.sent("ab", SYN)[0].tcp.options[0].mss == 1460  # type: ignore[attr-defined]
