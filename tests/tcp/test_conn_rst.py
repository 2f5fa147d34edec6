"""RST processing and blind-attack defences: RFC 9293 §3.10.7.4 (acceptability, RST, SYN,
ACK checks) and RFC 5961 §3-§5, §7 (challenge ACKs and their rate limit)."""

from __future__ import annotations

import pytest

from mptcp.tcp.events import Reset
from mptcp.tcp.state import TcpState
from mptcp.wire.tcp import ACK, RST, SYN
from tests.tcp.test_conn_harness import Pair, cfg, forge, next_seq, peer_ack, st

NOTS = cfg(timestamps=False)


def _pair(**kw: object) -> Pair:
    p = Pair(cfg_a=cfg(timestamps=False, **kw), cfg_b=cfg(timestamps=False, **kw))
    p.handshake()
    p.run(until=p.now + 0.1)
    return p


def _count(p: Pair, direction: str) -> int:
    return len(p.sent(direction))


@pytest.mark.rfc("5961", "3.2")
def test_rst_exact_sequence_resets() -> None:
    p = _pair()
    assert p.a is not None
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), flags=RST))
    assert st(p.a) is TcpState.CLOSED
    assert Reset("connection reset") in p.events_a
    assert p.a.mib["TcpInRsts"] == 1


@pytest.mark.rfc("5961", "3.2")
def test_rst_in_window_not_exact_gets_challenge_ack() -> None:
    p = _pair()
    assert p.a is not None
    n = _count(p, "ab")
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 100, flags=RST))
    assert st(p.a) is TcpState.ESTABLISHED
    reply = p.sent("ab")[n:]
    assert len(reply) == 1 and reply[0].tcp.flags == ACK
    assert reply[0].tcp.seq == peer_ack(p.a) and reply[0].tcp.ack == next_seq(p.a)
    assert p.a.mib["TcpExtTCPChallengeACK"] == 1


@pytest.mark.rfc("9293", "3.10.7.4")
def test_rst_out_of_window_silently_dropped() -> None:
    p = _pair()
    assert p.a is not None
    n = _count(p, "ab")
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 10_000_000, flags=RST))
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) - 1, flags=RST))
    assert st(p.a) is TcpState.ESTABLISHED
    assert _count(p, "ab") == n
    assert p.a.mib["TcpExtTCPChallengeACK"] == 0


@pytest.mark.rfc("5961", "4.2")
def test_syn_in_established_gets_challenge_ack() -> None:
    p = _pair()
    assert p.a is not None
    n = _count(p, "ab")
    for seq in (next_seq(p.a), next_seq(p.a) + 5, next_seq(p.a) - 50_000):
        p.inject("ba", forge(p, "ba", seq=seq, flags=SYN))
    assert st(p.a) is TcpState.ESTABLISHED
    replies = p.sent("ab")[n:]
    assert [r.tcp.flags for r in replies] == [ACK, ACK, ACK]
    assert p.a.mib["TcpExtTCPSYNChallenge"] == 2  # the third was out of window: plain ACK


@pytest.mark.rfc("5961", "7")
def test_challenge_ack_rate_limited_per_second() -> None:
    p = _pair(challenge_ack_limit=3)
    assert p.a is not None
    n = _count(p, "ab")
    for i in range(10):
        p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 1 + i, flags=RST))
    assert _count(p, "ab") - n == 3
    assert p.a.mib["TcpExtTCPChallengeACKLimited"] == 7
    p.now += 1.5
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) + 1, flags=RST))
    assert _count(p, "ab") - n == 4


@pytest.mark.rfc("5961", "5.2")
def test_ack_of_unsent_data_dropped_with_ack() -> None:
    p = _pair()
    assert p.a is not None and p.b is not None
    n = _count(p, "ab")
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a) + 1000,
                         payload=b"evil"))
    assert p.a.readable == 0  # dropped, data not accepted
    assert p.sent("ab")[n].tcp.flags == ACK
    assert p.a.mib["TcpExtTCPACKUnsent"] == 1


@pytest.mark.rfc("5961", "5.2")
def test_too_old_ack_gets_challenge_ack() -> None:
    p = _pair(recv_buffer=20000, send_buffer=20000, window_scaling=False)
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(100_000))
    max_wnd = p.a.max_snd_wnd
    old = p.a.snd.seq(p.a.snd_una - max_wnd - 10)
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=old, payload=b"zz"))
    assert p.a.readable == 0
    assert p.a.mib["TcpExtTCPACKTooOld"] == 1
    assert p.a.mib["TcpExtTCPChallengeACK"] == 1


@pytest.mark.rfc("9293", "3.10.7.4")
def test_unacceptable_segment_answered_with_ack() -> None:
    p = _pair()
    assert p.a is not None
    n = _count(p, "ab")
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a) - 3000, ack=peer_ack(p.a), payload=b"old"))
    assert p.a.readable == 0
    reply = p.sent("ab")[n:]
    assert len(reply) == 1 and reply[0].tcp.ack == next_seq(p.a)


@pytest.mark.rfc("9293", "3.10.7.4")
def test_zero_window_accepts_ack_but_not_data() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False, recv_buffer=4000,
                                                        window_scaling=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(bytes(4000))
    p.run(until=p.now + 0.1)
    assert p.b.rcv_wnd == 0
    p.b.send(b"x")
    p.run(until=p.now + 0.001)
    una = p.b.snd_una
    # a segment at RCV.NXT with data in a zero window: text dropped, ACK processed
    p.inject("ab", forge(p, "ab", seq=next_seq(p.b), ack=peer_ack(p.b), payload=b"more",
                         window=8000))
    assert p.b.snd_una >= una
    assert p.b.recvbuf.readable == 4000
    # and an ACK-only segment (length 0, seq = RCV.NXT) is acceptable
    assert st(p.b) is TcpState.ESTABLISHED


@pytest.mark.rfc("9293", "3.10.7.1")
def test_closed_connection_answers_rst_per_rules() -> None:
    from mptcp.tcp.events import TcpMib
    from mptcp.tcp.output import closed_reply

    p = Pair(connect=False)
    mib = TcpMib()
    with_ack = forge(p, "ab", seq=1000, ack=5555, flags=ACK, payload=b"abc")
    r = closed_reply(with_ack, mib)[0]
    assert r.tcp.flags == RST and r.tcp.seq == 5555
    no_ack = forge(p, "ab", seq=1000, flags=SYN, payload=b"abc")
    r = closed_reply(no_ack, mib)[0]
    assert r.tcp.flags == RST | ACK and r.tcp.seq == 0 and r.tcp.ack == 1004
    assert closed_reply(forge(p, "ab", seq=1, flags=RST), mib) == []
    assert mib["TcpOutRsts"] == 2


@pytest.mark.rfc("9293", "3.10.7.4")
def test_rst_in_syn_received_passive_closes_quietly() -> None:
    p = Pair(cfg_a=cfg(timestamps=False), cfg_b=cfg(timestamps=False))
    p.flush()
    p.step()
    assert p.b is not None and st(p.b) is TcpState.SYN_RECEIVED
    p.inject("ab", forge(p, "ab", seq=next_seq(p.b), flags=RST))
    assert st(p.b) is TcpState.CLOSED
    assert p.b.mib["TcpAttemptFails"] == 1


@pytest.mark.rfc("9293", "3.10.7.4")
def test_acceptability_table() -> None:
    from mptcp.tcp.input import _acceptable

    # (seq, seglen, rcv_nxt, rcv_wnd) -> acceptable, the four cases of the table
    assert _acceptable(100, 0, 100, 0) and not _acceptable(101, 0, 100, 0)
    assert _acceptable(150, 0, 100, 100) and not _acceptable(200, 0, 100, 100)
    assert not _acceptable(99, 0, 100, 100)
    assert not _acceptable(100, 10, 100, 0)  # data in a zero window
    assert _acceptable(95, 10, 100, 100)  # its end is inside the window
    assert _acceptable(199, 10, 100, 100)  # its start is inside the window
    assert not _acceptable(80, 10, 100, 100) and not _acceptable(200, 10, 100, 100)


@pytest.mark.rfc("6093", "3")
def test_urgent_data_delivered_inline() -> None:
    from mptcp.wire.tcp import PSH, URG

    p = _pair()
    assert p.a is not None
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a), flags=ACK | URG | PSH,
                         payload=b"urgent!"))
    assert p.a.read() == b"urgent!"
    assert p.a.mib["TcpExtTCPUrgIgnored"] == 1
    assert p.a.mib["TcpCurrEstab"] == 1
