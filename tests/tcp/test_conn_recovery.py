"""Reliability: RFC 6298 (RTO, backoff, give-up), RFC 5681 / RFC 6582 (fast retransmit,
NewReno), RFC 6675 (SACK recovery), RFC 8985 (RACK, TLP), RFC 5482 (user timeout)."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from mptcp.tcp.events import ConnectionFailed
from mptcp.tcp.state import TcpState
from mptcp.wire.segment import Segment
from tests.tcp.test_conn_harness import Filter, Pair, cfg, st

DATA = random.Random(11).randbytes(60_000)


def drop_data(*indexes: int) -> tuple[Filter, list[int]]:
    """Drop the first transmission of the data segments with these (0-based) indexes."""
    seen: dict[int, int] = {}
    dropped: list[int] = []

    def f(d: str, s: Segment, t: float) -> bool:
        if d != "ab" or not s.payload:
            return False
        if s.tcp.seq in seen:
            return False
        seen[s.tcp.seq] = len(seen)
        if seen[s.tcp.seq] in indexes:
            dropped.append(s.tcp.seq)
            return True
        return False

    return f, dropped


def _run(p: Pair, data: bytes = DATA) -> bytes:
    p.handshake()
    assert p.a is not None and p.b is not None
    return p.transfer(p.a, p.b, data, until=120)


@pytest.mark.rfc("6298", "5.5")
@pytest.mark.rfc("9293", "3.8.3")
def test_rto_backoff_and_give_up() -> None:
    state = {"cut": False}

    def drop(d: str, s: Segment, t: float) -> bool:
        return state["cut"] and d == "ab"

    p = Pair(cfg_a=cfg(max_retries=5, timestamps=False, tlp=False), drop=drop)
    p.handshake()
    assert p.a is not None
    p.run(until=p.now + 1)
    state["cut"] = True
    t0 = p.now
    p.a.send(b"lost" * 10)
    p.run(until=t0 + 200)
    times = [t for t, d, s in p.log if d == "ab" and s.payload]
    gaps = [round(b - a, 3) for a, b in pairwise(times)]
    rto0 = gaps[0]
    assert gaps == [rto0 * 2**i for i in range(5)]
    assert 1.0 <= rto0 <= 1.1  # the RTO after a few small samples: at least rto_min
    assert st(p.a) is TcpState.CLOSED
    assert ConnectionFailed("timeout") in p.events_a
    assert p.a.mib["TcpExtTCPTimeouts"] == 5
    assert p.a.mib["TcpExtTCPAbortOnTimeout"] == 1


@pytest.mark.rfc("6298", "5.5")
def test_rto_capped_at_max() -> None:
    state = {"cut": False}
    p = Pair(cfg_a=cfg(max_retries=10, rto_max=4.0, timestamps=False, tlp=False),
             drop=lambda d, s, t: state["cut"] and d == "ab")
    p.handshake()
    assert p.a is not None
    state["cut"] = True
    p.a.send(b"x")
    p.run(until=p.now + 100)
    times = [t for t, d, s in p.log if d == "ab" and s.payload]
    gaps = [round(b - a, 3) for a, b in pairwise(times)]
    assert max(gaps) == 4.0 and gaps[-1] == 4.0


@pytest.mark.rfc("5482", "1")
def test_user_timeout() -> None:
    state = {"cut": False}
    p = Pair(cfg_a=cfg(user_timeout=5.0), drop=lambda d, s, t: state["cut"] and d == "ab")
    p.handshake()
    assert p.a is not None
    state["cut"] = True
    t0 = p.now
    p.a.send(b"x")
    p.run(until=t0 + 60)
    assert st(p.a) is TcpState.CLOSED
    assert ConnectionFailed("user timeout") in p.events_a
    assert p.now - t0 < 20


@pytest.mark.rfc("6582", "3.2")
@pytest.mark.rfc("5681", "3.2")
def test_newreno_fast_retransmit_single_loss() -> None:
    f, dropped = drop_data(5)
    p = Pair(cfg_a=cfg(sack=False), cfg_b=cfg(sack=False), drop=f)
    assert _run(p) == DATA
    assert p.a is not None
    assert dropped
    m = p.a.mib
    assert m["TcpExtTCPRenoRecovery"] == 1 and m["TcpExtTCPFastRetrans"] == 1
    assert m["TcpExtTCPTimeouts"] == 0
    assert m["TcpRetransSegs"] == 1
    assert p.a.cc.ssthresh < 1 << 40  # the controller reduced once


@pytest.mark.rfc("6582", "3.2")
def test_newreno_partial_ack_retransmits_next_hole() -> None:
    f, dropped = drop_data(5, 8)
    p = Pair(cfg_a=cfg(sack=False), cfg_b=cfg(sack=False), drop=f)
    assert _run(p) == DATA
    assert p.a is not None
    m = p.a.mib
    assert len(dropped) == 2
    assert m["TcpExtTCPRenoRecovery"] == 1
    assert m["TcpExtTCPPartialAck"] >= 1
    assert m["TcpExtTCPTimeouts"] == 0


@pytest.mark.rfc("6675", "5")
def test_sack_recovery_dupack_mode() -> None:
    f, dropped = drop_data(4, 6, 9)
    p = Pair(cfg_a=cfg(recovery="dupack"), drop=f)
    assert _run(p) == DATA
    assert len(dropped) == 3
    assert p.a is not None
    m = p.a.mib
    assert m["TcpExtTCPSACKRecovery"] == 1
    assert m["TcpExtTCPTimeouts"] == 0
    assert m["TcpRetransSegs"] == 3  # exactly the holes: SACK told what arrived


@pytest.mark.rfc("8985", "6.2")
def test_rack_recovers_multiple_losses_without_timeout() -> None:
    f, dropped = drop_data(4, 6, 9, 10)
    p = Pair(drop=f)
    assert _run(p) == DATA
    assert len(dropped) == 4
    assert p.a is not None
    m = p.a.mib
    assert m["TcpExtTCPSACKRecovery"] == 1
    assert m["TcpExtTCPTimeouts"] == 0
    assert m["TcpRetransSegs"] == 4
    assert m["TcpExtTCPRackLost"] >= 4


@pytest.mark.rfc("8985", "3.3.2")
@pytest.mark.rfc("8985", "6.2")
def test_rack_adapts_to_reordering() -> None:
    """The first reordering (many segments overtaking one, reordering not yet seen) costs
    one spurious retransmission, reported back by D-SACK; RACK then widens its reordering
    window and the same reordering later costs nothing."""
    import heapq

    p = Pair(delay=0.02)
    p.handshake()
    assert p.a is not None and p.b is not None
    p.transfer(p.a, p.b, DATA[:20000])  # min_RTT known
    held: list[int] = []
    orig = p._emit

    def late_emit(direction: str, conn: object) -> None:
        n = len(p.wire)
        orig(direction, conn)  # type: ignore[arg-type]
        if direction == "ab" and len(held) < 1 and len(p.wire) > n + 3:
            t, tie, dd, raw = p.wire[n]
            p.wire[n] = (t + 0.003, tie, dd, raw)  # 3 ms late: less than min_RTT / 4
            heapq.heapify(p.wire)
            held.append(1)

    p._emit = late_emit  # type: ignore[method-assign]
    assert p.transfer(p.a, p.b, DATA[20000:40000]) == DATA[20000:40000]
    p.run(until=p.now + 0.5)  # the D-SACK comes back
    first = p.a.mib["TcpRetransSegs"]
    assert first <= 1
    assert p.a.rec.rack.reordering_seen
    assert p.a.mib["TcpExtTCPDSACKRecv"] == first
    held.clear()
    assert p.transfer(p.a, p.b, DATA[40000:]) == DATA[40000:]
    assert held
    assert p.a.mib["TcpRetransSegs"] == first


@pytest.mark.rfc("8985", "7.3")
def test_tail_loss_probe_repairs_last_segment() -> None:
    total = 10 * 1448
    f, dropped = drop_data(9)
    p = Pair(drop=f, delay=0.02)
    data = DATA[:total]
    assert _run(p, data) == data
    assert p.a is not None
    m = p.a.mib
    assert dropped
    assert m["TcpExtTCPLossProbes"] >= 1
    assert m["TcpExtTCPTimeouts"] == 0
    rtx = [t for t, d, s in p.log if d == "ab" and s.tcp.seq == dropped[0] and s.payload]
    assert len(rtx) == 2 and rtx[1] - rtx[0] < 0.5  # well before the 1 s RTO


@pytest.mark.rfc("6298", "5.4")
def test_rto_go_back_n_without_sack() -> None:
    """A blackout eats a window and its fast retransmission: the RTO resends from SND.UNA
    on, the rest follows as the restarted slow start allows (RFC 5681 §3.1)."""
    window = {"start": 1e9}

    def drop(d: str, s: Segment, t: float) -> bool:
        return d == "ab" and window["start"] <= t < window["start"] + 0.3

    p = Pair(cfg_a=cfg(sack=False), cfg_b=cfg(sack=False), drop=drop)
    p.handshake()
    assert p.a is not None and p.b is not None
    got = p.transfer(p.a, p.b, DATA[:20000])
    window["start"] = p.now + 0.001
    got += p.transfer(p.a, p.b, DATA[20000:])
    assert got == DATA
    assert p.a.mib["TcpExtTCPTimeouts"] >= 1
    assert p.a.mib["TcpExtTCPSlowStartRetrans"] >= 1
