"""Super-segments for TSO/GSO drivers (``TcpConfig.gso_size``): new data leaves in segments
of whole MSS multiples (RFC 9293 §3.7.1: each piece a driver cuts respects the send MSS),
the receiver acknowledges them at once (RFC 9293 §3.8.6.3: at least every second full-sized
segment), and loss repair retransmits MSS-sized pieces."""

from __future__ import annotations

import random

import pytest

from mptcp.wire.segment import Segment
from tests.tcp.test_conn_harness import Pair, cfg

DATA = random.Random(31).randbytes(400_000)


def _data_segments(p: Pair) -> list[Segment]:
    return [s for _, d, s in p.log if d == "ab" and s.payload]


@pytest.mark.rfc("9293", "3.7.1")
def test_super_segments_are_whole_mss_multiples() -> None:
    p = Pair(cfg(gso_size=30_000, recv_buffer=1 << 20), cfg(recv_buffer=1 << 20))
    p.handshake()
    assert p.a is not None and p.b is not None
    cut = p.a.gso_segment_size
    assert cut == p.a.mss_send - 12  # timestamps negotiated
    assert p.transfer(p.a, p.b, DATA) == DATA
    sizes = [len(s.payload) for s in _data_segments(p)]
    assert max(sizes) == (30_000 // cut) * cut
    assert sum(1 for n in sizes if n > cut) >= 5
    # every segment is a whole number of MSS-sized pieces, but for the stream's tail
    assert all(n % cut == 0 for n in sizes[:-1])


@pytest.mark.rfc("9293", "3.7.1")
def test_gso_segment_size_without_timestamps() -> None:
    p = Pair(cfg(timestamps=False, gso_size=20_000), cfg(timestamps=False))
    p.handshake()
    assert p.a is not None
    assert p.a.gso_segment_size == p.a.mss_send
    assert p.transfer(p.a, p.b, DATA[:100_000]) == DATA[:100_000]  # type: ignore[arg-type]


@pytest.mark.rfc("9293", "3.8.6.3")
def test_each_super_segment_is_acknowledged_at_once() -> None:
    p = Pair(cfg(gso_size=60_000, recv_buffer=1 << 20), cfg(recv_buffer=1 << 20))
    p.handshake()
    assert p.a is not None and p.b is not None
    assert p.transfer(p.a, p.b, DATA) == DATA
    supers = [s for s in _data_segments(p) if len(s.payload) >= 2 * p.b.smss]
    acks = [s for _, d, s in p.log if d == "ba" and not s.payload]
    assert supers and len(acks) >= len(supers)
    assert p.b.mib["TcpExtDelayedACKs"] <= 1  # none waited for the delayed-ACK timer


@pytest.mark.rfc("8985", "6.2")
def test_lost_super_segment_is_repaired_in_mss_pieces() -> None:
    seen: list[Segment] = []
    dropped: list[Segment] = []

    def drop_second_super(d: str, s: Segment, t: float) -> bool:
        if d != "ab" or len(s.payload) <= 1448 or any(x.tcp.seq == s.tcp.seq for x in seen):
            return False
        seen.append(s)
        if len(seen) == 2:
            dropped.append(s)
            return True
        return False

    p = Pair(cfg(gso_size=30_000, recv_buffer=1 << 20), cfg(recv_buffer=1 << 20),
             drop=drop_second_super)
    p.handshake()
    assert p.a is not None and p.b is not None
    assert p.transfer(p.a, p.b, DATA) == DATA
    cut = p.a.gso_segment_size
    lost = dropped[0]
    lo = lost.tcp.seq
    hi = lo + len(lost.payload)
    segs = _data_segments(p)
    after = segs[next(i for i, s in enumerate(segs) if s is lost) + 1:]
    repairs = [s for s in after if lo <= s.tcp.seq < hi]
    assert p.a.mib["TcpRetransSegs"] >= len(repairs) >= len(lost.payload) // cut
    assert all(len(s.payload) <= cut for s in repairs)
    covered = sorted((s.tcp.seq, s.tcp.seq + len(s.payload)) for s in repairs)
    assert covered[0][0] == lo and covered[-1][1] == hi
