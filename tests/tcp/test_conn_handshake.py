"""Opening a connection: RFC 9293 §3.5 / §3.10.7.2-3, option negotiation (RFC 7323 §2-§3,
RFC 2018 §2, RFC 9293 §3.7.1), SYN retransmission and give-up (RFC 6298, §3.8.3)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from mptcp.tcp.config import TcpConfig, TcpConfigError
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.events import ConnectionFailed
from mptcp.tcp.state import TcpState
from mptcp.wire.options import (
    NOP,
    SACK_PERMITTED,
    Mss,
    SackPermitted,
    Timestamps,
    WindowScale,
)
from mptcp.wire.tcp import ACK, RST, SYN
from tests.tcp.test_conn_harness import A, B, Pair, cfg, forge, st


@pytest.mark.rfc("9293", "3.10.7.3")
def test_syn_option_layout_is_linux_like() -> None:
    p = Pair()
    p.flush()
    syn = p.sent("ab")[0]
    kinds = [type(o) for o in syn.tcp.options]
    assert kinds == [Mss, SackPermitted, Timestamps, type(NOP), WindowScale]
    assert syn.tcp.options[2] == Timestamps(syn.tcp.options[2].tsval, 0)  # type: ignore[attr-defined]  # RFC 7323 §3.2: TSecr of a SYN is 0


@pytest.mark.rfc("7323", "2.2")
def test_window_scale_needs_both_syns() -> None:
    p = Pair(cfg_b=cfg(window_scaling=False, recv_buffer=65535))
    p.handshake()
    assert p.a is not None and p.b is not None
    assert not p.a.ws_ok and not p.b.ws_ok
    synack = p.sent("ba")[0]
    assert not any(type(o) is WindowScale for o in synack.tcp.options)
    # without scaling the client's window field is its real window, capped at 65535
    later = p.sent("ab")[-1]
    assert later.tcp.window == min(p.a.recvbuf.window, 0xFFFF)


@pytest.mark.rfc("7323", "2.3")
def test_window_scale_shift_capped_at_14() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), connect=True)
    p.flush()
    assert p.a is not None
    syn = p.sent("ab")[0]
    synack = forge(p, "ba", seq=5000, ack=syn.tcp.seq + 1, flags=SYN | ACK, window=1000,
                   options=(Mss(1000), NOP, WindowScale(20)))
    p.inject("ba", synack)
    assert st(p.a) is TcpState.ESTABLISHED
    assert p.a.snd_wscale == 14
    assert p.a.snd_wnd == 1000  # the SYN-ACK's window is not scaled
    assert p.a.peer_mss == 1000
    # a later window update is scaled by 2**14
    upd = forge(p, "ba", seq=5001, ack=syn.tcp.seq + 1, window=3)
    p.inject("ba", upd)
    assert p.a.snd_wnd == 3 << 14


@pytest.mark.rfc("9293", "3.7.1")
def test_default_mss_without_option_and_path_clamp() -> None:
    p = Pair(cfg_a=cfg(timestamps=False, path_mss=1200))
    p.flush()
    assert p.a is not None
    syn = p.sent("ab")[0]
    assert syn.tcp.options[0] == Mss(1200)  # our MSS is clamped to the path too
    synack = forge(p, "ba", seq=77, ack=syn.tcp.seq + 1, flags=SYN | ACK)
    p.inject("ba", synack)
    assert p.a.peer_mss == 536 and p.a.mss_send == 536
    p6 = Pair(v6=True, cfg_a=cfg(timestamps=False))
    p6.flush()
    assert p6.a is not None
    s6 = p6.sent("ab")[0]
    p6.inject("ba", forge(p6, "ba", seq=9, ack=s6.tcp.seq + 1, flags=SYN | ACK))
    assert p6.a.peer_mss == 1220


@pytest.mark.rfc("9293", "3.7.1")
def test_send_mss_respected_and_timestamps_shrink_payload() -> None:
    p = Pair(cfg_b=cfg(mss=1000))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(20000))
    sizes = {len(s.payload) for s in p.sent("ab") if s.payload}
    assert max(sizes) == 1000 - 12  # RFC 9293 §3.7.1: options count against the MSS


@pytest.mark.rfc("7323", "3.2")
@pytest.mark.rfc("2018", "2")
def test_timestamps_and_sack_need_both_syns() -> None:
    p = Pair(cfg_b=cfg(timestamps=False, sack=False))
    p.handshake()
    assert p.a is not None
    assert not p.a.ts_ok and not p.a.sack_ok
    p.transfer(p.a, p.b, b"x" * 5000)  # type: ignore[arg-type]
    assert all(not s.tcp.options for s in p.sent("ab")[1:])


@pytest.mark.rfc("9293", "3.5")
def test_simultaneous_open() -> None:
    ca = TcpConnection.connect(A, B, cfg(), random.Random(1), 0.0)
    cb = TcpConnection.connect(B, A, cfg(), random.Random(2), 0.0)
    syn_a = ca.packets_to_send(0.0)
    syn_b = cb.packets_to_send(0.0)
    assert ca.state is st(cb) is TcpState.SYN_SENT
    for s in syn_b:
        ca.receive(s, 0.01)
    for s in syn_a:
        cb.receive(s, 0.01)
    assert ca.state is st(cb) is TcpState.SYN_RECEIVED
    out_a = ca.packets_to_send(0.01)
    out_b = cb.packets_to_send(0.01)
    assert out_a[0].tcp.flags & (SYN | ACK) == SYN | ACK
    assert out_a[0].tcp.seq == syn_a[0].tcp.seq  # the same ISN again (§3.5 Figure 8)
    for s in out_b:
        ca.receive(s, 0.02)
    for s in out_a:
        cb.receive(s, 0.02)
    assert ca.state is st(cb) is TcpState.ESTABLISHED
    # data flows
    ca.send(b"hello")
    for s in ca.packets_to_send(0.03):
        cb.receive(s, 0.04)
    assert cb.read() == b"hello"


@pytest.mark.rfc("6298", "5.5")
@pytest.mark.rfc("9293", "3.8.3")
def test_syn_retransmission_backoff_and_give_up() -> None:
    p = Pair(cfg_a=cfg(syn_retries=3), drop=lambda d, s, t: True)
    p.run(until=100)
    assert p.a is not None
    syns = p.sent("ab", SYN)
    assert len(syns) == 4
    times = [t for t, d, s in p.log if d == "ab"]
    gaps = [round(b - a, 6) for a, b in pairwise(times)]
    assert gaps == [1.0, 2.0, 4.0]
    assert st(p.a) is TcpState.CLOSED
    assert ConnectionFailed("timeout") in p.events_a
    assert p.a.mib["TcpExtTCPSynRetrans"] == 3


@pytest.mark.rfc("6298", "5.7")
def test_lost_syn_ack_retransmitted_and_rto_three_seconds() -> None:
    dropped: list[int] = []

    def drop(d: str, s: object, t: float) -> bool:
        if d == "ba" and not dropped:
            dropped.append(1)
            return True
        return False

    p = Pair(drop=drop, cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    assert len(p.sent("ba", SYN | ACK)) >= 2
    assert p.b.mib["TcpExtTCPSynRetrans"] >= 1
    # both timed out on the handshake and took no (Karn-invalid) sample: RTO = 3 s (§5.7)
    assert p.a.syn_retransmits == 1
    assert p.a.rtt.rto == 3.0
    assert p.b.rtt.rto == 3.0


@pytest.mark.rfc("9293", "3.10.7.3")
def test_rst_to_syn_is_connection_refused() -> None:
    p = Pair()
    p.flush()
    assert p.a is not None
    syn = p.sent("ab")[0]
    # an unacceptable RST (bad ACK) is ignored
    p.inject("ba", forge(p, "ba", seq=0, ack=syn.tcp.seq + 5, flags=RST | ACK))
    assert st(p.a) is TcpState.SYN_SENT
    p.inject("ba", forge(p, "ba", seq=0, ack=syn.tcp.seq + 1, flags=RST | ACK))
    assert st(p.a) is TcpState.CLOSED
    assert ConnectionFailed("refused") in p.events_a


@pytest.mark.rfc("9293", "3.10.7.3")
def test_bad_ack_in_syn_sent_answered_with_rst() -> None:
    p = Pair()
    p.flush()
    assert p.a is not None
    syn = p.sent("ab")[0]
    bogus = (syn.tcp.seq + 1000) & 0xFFFFFFFF
    p.inject("ba", forge(p, "ba", seq=123, ack=bogus, flags=SYN | ACK))
    rst = p.sent("ab")[-1]
    assert rst.tcp.flags & RST and rst.tcp.seq == bogus
    assert st(p.a) is TcpState.SYN_SENT


@pytest.mark.rfc("9293", "3.10.7.4")
def test_syn_received_bad_ack_gets_rst() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.flush()
    p.step()  # the SYN reaches b
    assert p.b is not None and st(p.b) is TcpState.SYN_RECEIVED
    p.flush()
    p.inject("ab", forge(p, "ab", seq=p.b.rcv.seq(1), ack=p.b.iss + 999, flags=ACK))
    rst = p.sent("ba")[-1]
    assert rst.tcp.flags & RST and rst.tcp.seq == (p.b.iss + 999) & 0xFFFFFFFF
    assert st(p.b) is TcpState.SYN_RECEIVED


@pytest.mark.rfc("9293", "3.10.7.4")
def test_duplicate_syn_in_syn_received_gets_syn_ack_again() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.flush()
    syn = p.sent("ab")[0]
    p.step()
    assert p.b is not None
    p.flush()
    n = len(p.sent("ba", SYN | ACK))
    p.inject("ab", syn)
    assert len(p.sent("ba", SYN | ACK)) == n + 1
    assert st(p.b) is TcpState.SYN_RECEIVED


@pytest.mark.rfc("9293", "3.10.2")
def test_api_misuse_errors() -> None:
    with pytest.raises(TcpConfigError):
        TcpConfig(mss=10)
    with pytest.raises(TcpConfigError):
        TcpConfig(delack_timeout=0.6)
    p = Pair()
    p.handshake()
    assert p.a is not None
    p.a.shutdown_write()
    with pytest.raises(TcpStateError):
        p.a.send(b"late")
    c = TcpConnection(A, B, cfg(), random.Random(1))
    with pytest.raises(TcpStateError):
        c.send(b"x")


@pytest.mark.rfc("6528", "3")
def test_isn_depends_on_tuple_secret_and_clock() -> None:
    from mptcp.tcp.isn import IsnGenerator

    g = IsnGenerator(b"k" * 32)
    a1 = g.isn((b"\x0a\0\0\1", 1), (b"\x0a\0\0\2", 80), 0.0)
    assert a1 == g.isn((b"\x0a\0\0\1", 1), (b"\x0a\0\0\2", 80), 0.0)
    assert a1 != g.isn((b"\x0a\0\0\1", 2), (b"\x0a\0\0\2", 80), 0.0)
    assert a1 != IsnGenerator(b"j" * 32).isn((b"\x0a\0\0\1", 1), (b"\x0a\0\0\2", 80), 0.0)
    # the 4 us clock: one second later the ISN advanced by 250000 (mod 2**32)
    assert (g.isn((b"\x0a\0\0\1", 1), (b"\x0a\0\0\2", 80), 1.0) - a1) & 0xFFFFFFFF == 250000
    assert SACK_PERMITTED is not None
