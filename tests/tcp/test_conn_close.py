"""Closing a connection: RFC 9293 §3.6 (active, passive, simultaneous close, TIME-WAIT),
§3.10.4-§3.10.5 (CLOSE, ABORT), RFC 2525 §2.17 (RST when data is lost on close)."""

from __future__ import annotations

import pytest

from mptcp.tcp.events import ConnectionClosed, EofReceived, Reset
from mptcp.tcp.state import TcpState
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, FIN, RST
from tests.tcp.test_conn_harness import Pair, cfg, forge, next_seq, peer_ack, st


def _states(p: Pair) -> tuple[TcpState, TcpState]:
    assert p.a is not None and p.b is not None
    return p.a.state, p.b.state


@pytest.mark.rfc("9293", "3.6")
def test_active_close_through_time_wait() -> None:
    p = Pair(cfg_a=cfg(msl=0.5))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(b"bye")
    p.a.shutdown_write()
    assert st(p.a) is TcpState.FIN_WAIT_1
    p.run(until=p.now + 0.05)
    assert _states(p) == (TcpState.FIN_WAIT_2, TcpState.CLOSE_WAIT)
    assert p.b.read() == b"bye"
    assert EofReceived() in p.events_b
    p.b.close()
    assert st(p.b) is TcpState.LAST_ACK
    p.run(until=p.now + 0.05)
    assert _states(p) == (TcpState.TIME_WAIT, TcpState.CLOSED)
    assert ConnectionClosed() in p.events_a and ConnectionClosed() in p.events_b
    t_tw = p.now
    p.run(until=p.now + 5)
    assert st(p.a) is TcpState.CLOSED
    assert p.a.mib["TcpExtTW"] == 1 and p.a.mib["TcpExtTWKilled"] == 1
    # 2 * MSL after the last segment (the FIN) arrived
    assert p.a.mib["TcpExtTWKilled"] == 1 and p.now >= t_tw


@pytest.mark.rfc("9293", "3.6")
def test_time_wait_lasts_two_msl() -> None:
    p = Pair(cfg_a=cfg(msl=2.0))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.shutdown_write()
    p.run(until=p.now + 0.1)
    p.b.close()
    p.run(until=p.now + 0.015)
    assert st(p.a) is TcpState.TIME_WAIT
    entered = p.a.last_activity
    assert p.a.get_timer() == pytest.approx(entered + 4.0)
    p.run(until=entered + 3.9)
    assert st(p.a) is TcpState.TIME_WAIT
    p.run(until=entered + 4.1)
    assert st(p.a) is TcpState.CLOSED


@pytest.mark.rfc("9293", "3.10.7.4")
def test_time_wait_acks_retransmitted_fin_and_restarts_timer() -> None:
    p = Pair(cfg_a=cfg(msl=1.0, timestamps=False), cfg_b=cfg(timestamps=False))
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.shutdown_write()
    p.run(until=p.now + 0.1)
    p.b.close()
    p.run(until=p.now + 0.015)
    assert st(p.a) is TcpState.TIME_WAIT
    first_deadline = p.a.get_timer()
    assert first_deadline is not None
    p.now += 1.0
    fin_seq = (next_seq(p.a) - 1) & 0xFFFFFFFF
    n = len(p.sent("ab"))
    p.inject("ba", forge(p, "ba", seq=fin_seq, ack=peer_ack(p.a), flags=FIN | ACK))
    ack = p.sent("ab")[n]
    assert ack.tcp.flags == ACK and ack.tcp.ack == next_seq(p.a)
    assert p.a.get_timer() == pytest.approx(p.now + 2.0)
    assert p.a.get_timer() != first_deadline


@pytest.mark.rfc("9293", "3.6")
def test_passive_close_close_wait_last_ack() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    p.b.shutdown_write()
    p.run(until=p.now + 0.05)
    assert _states(p) == (TcpState.CLOSE_WAIT, TcpState.FIN_WAIT_2)
    # half-closed: a can still send, b still receives
    data = b"after-fin" * 1000
    assert p.transfer(p.a, p.b, data) == data
    p.a.close()
    assert st(p.a) is TcpState.LAST_ACK
    p.run(until=p.now + 0.05)
    assert st(p.a) is TcpState.CLOSED
    assert st(p.b) is TcpState.TIME_WAIT


@pytest.mark.rfc("9293", "3.6")
def test_simultaneous_close_closing() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.shutdown_write()
    p.b.shutdown_write()
    p.flush()  # both FINs are on the wire before either arrives
    p.step()
    assert TcpState.CLOSING in _states(p)
    p.run(until=p.now + 0.1)
    assert _states(p) == (TcpState.TIME_WAIT, TcpState.TIME_WAIT)
    assert p.a.mib["TcpExtTW"] == 1


@pytest.mark.rfc("9293", "3.6")
def test_fin_retransmitted_when_lost() -> None:
    lost: list[int] = []

    def drop(d: str, seg: Segment, t: float) -> bool:
        if d == "ab" and seg.tcp.flags & FIN and not lost:
            lost.append(1)
            return True
        return False

    p = Pair(drop=drop)
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.shutdown_write()
    p.run(until=p.now + 3)
    assert len(p.sent("ab", FIN)) == 2
    assert st(p.b) is TcpState.CLOSE_WAIT
    assert st(p.a) is TcpState.FIN_WAIT_2


@pytest.mark.rfc("9293", "3.10.5")
def test_abort_sends_rst_and_peer_resets() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.abort()
    assert st(p.a) is TcpState.CLOSED
    p.flush()
    assert Reset("aborted") in p.events_a
    p.run(until=p.now + 0.1)
    assert p.sent("ab", RST)
    assert st(p.b) is TcpState.CLOSED
    assert Reset("connection reset") in p.events_b
    assert p.b.mib["TcpEstabResets"] == 1


@pytest.mark.rfc("2525", "2.17")
def test_close_with_unread_data_resets() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    p.a.send(b"unread")
    p.run(until=p.now + 0.05)
    assert p.b.readable == 6
    p.b.close()
    assert st(p.b) is TcpState.CLOSED
    assert p.b.mib["TcpExtTCPAbortOnClose"] == 1
    p.run(until=p.now + 0.05)
    assert st(p.a) is TcpState.CLOSED


@pytest.mark.rfc("2525", "2.17")
def test_data_after_close_resets() -> None:
    p = Pair()
    p.handshake()
    assert p.a is not None and p.b is not None
    p.b.close()
    p.run(until=p.now + 0.05)
    assert st(p.b) is TcpState.FIN_WAIT_2
    p.a.send(b"too late")
    p.run(until=p.now + 0.05)
    assert st(p.b) is TcpState.CLOSED
    assert p.b.mib["TcpExtTCPAbortOnData"] == 1
    assert st(p.a) is TcpState.CLOSED


@pytest.mark.rfc("9293", "3.10.4")
def test_close_in_syn_sent_deletes_tcb() -> None:
    p = Pair()
    assert p.a is not None
    p.a.close()
    assert st(p.a) is TcpState.CLOSED
    p.flush()
    assert p.sent("ab") == []


@pytest.mark.rfc("9293", "3.10.4")
def test_close_in_syn_received_waits_for_establishment() -> None:
    p = Pair()
    p.flush()
    p.step()
    assert p.b is not None and st(p.b) is TcpState.SYN_RECEIVED
    p.b.shutdown_write()
    assert st(p.b) is TcpState.SYN_RECEIVED
    p.run(until=p.now + 0.1)
    assert st(p.b) is TcpState.FIN_WAIT_2
    assert p.a is not None and st(p.a) is TcpState.CLOSE_WAIT
