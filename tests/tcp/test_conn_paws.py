"""Timestamps: RFC 7323 §3.2 (sending rules), §4 (RTTM), §5 (PAWS, the 24-day rule)."""

from __future__ import annotations

import pytest

from mptcp.tcp.state import TcpState
from mptcp.wire.options import NOP, Timestamps
from mptcp.wire.tcp import ACK, RST
from tests.tcp.test_conn_harness import Pair, forge, next_seq, peer_ack, st, ts_opt


def _pair() -> Pair:
    p = Pair()
    p.handshake()
    p.run(until=p.now + 0.1)
    return p


def _ts(p: Pair, tsval: int) -> tuple[object, ...]:
    assert p.a is not None
    return (NOP, NOP, Timestamps(tsval & 0xFFFFFFFF, p.a.tsval(p.now)))


@pytest.mark.rfc("7323", "3.2")
def test_every_segment_carries_timestamps() -> None:
    p = _pair()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(30000))
    for seg in p.sent("ab")[1:] + p.sent("ba")[1:]:
        ts = ts_opt(seg)
        assert ts is not None
    # TSecr echoes a TSval the peer sent (RFC 7323 §3.2, TS.Recent)
    a_vals = {ts_opt(s).tsval for s in p.sent("ab")}
    assert all(ts_opt(s).tsecr in a_vals for s in p.sent("ba"))


@pytest.mark.rfc("7323", "5.3")
def test_paws_drops_old_tsval_and_acks() -> None:
    p = _pair()
    assert p.a is not None
    recent = p.a.ts_recent
    n = len(p.sent("ab"))
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a), payload=b"old",
                         options=_ts(p, recent - 5)))
    assert p.a.readable == 0
    assert p.a.mib["TcpExtPAWSEstab"] == 1
    reply = p.sent("ab")[n:]
    assert len(reply) == 1 and reply[0].tcp.flags == ACK
    # a newer TSval is accepted and becomes TS.Recent
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a), payload=b"new",
                         options=_ts(p, recent + 5)))
    assert p.a.read() == b"new"
    assert p.a.ts_recent == (recent + 5) & 0xFFFFFFFF


@pytest.mark.rfc("7323", "5.2")
def test_rst_not_subject_to_paws() -> None:
    p = _pair()
    assert p.a is not None
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), flags=RST,
                         options=_ts(p, p.a.ts_recent - 1000)))
    assert st(p.a) is TcpState.CLOSED


@pytest.mark.rfc("7323", "5.5")
def test_paws_24_day_idle_rule() -> None:
    p = _pair()
    assert p.a is not None
    recent = p.a.ts_recent
    p.now += 25 * 24 * 3600.0
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a), payload=b"late",
                         options=_ts(p, recent - 5)))
    assert p.a.read() == b"late"
    assert p.a.mib["TcpExtPAWSIdleReset"] == 1
    assert p.a.ts_recent == (recent - 5) & 0xFFFFFFFF


@pytest.mark.rfc("7323", "3.2")
def test_segment_without_negotiated_timestamps_dropped() -> None:
    p = _pair()
    assert p.a is not None
    p.inject("ba", forge(p, "ba", seq=next_seq(p.a), ack=peer_ack(p.a), payload=b"nots"))
    assert p.a.readable == 0
    assert p.a.mib["TcpExtTCPTSMissingDrop"] == 1
    assert st(p.a) is TcpState.ESTABLISHED


@pytest.mark.rfc("7323", "4.1")
def test_rtt_measured_from_timestamps() -> None:
    p = Pair(delay=0.05)
    p.handshake()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, bytes(50000))
    assert p.a.rtt.srtt is not None
    assert 0.09 <= p.a.rtt.srtt <= 0.16  # RTT 100 ms plus delayed-ACK effects
    assert p.a.rtt.counters["TcpRttSamplesTimestamp"] > 0
