"""The helpers behind the engine's fast paths agree with the general code they shortcut:
the Stack's one-pass checksum check (RFC 1071, RFC 9293 §3.1, RFC 791 §3.1), the receive
buffer's in-order append, the scoreboard's quiet advance (RFC 6675 §4 Update()), RACK's
one-pass update and reordering detection (RFC 8985 §6.2 steps 2-3, against the RFC's loops),
the in-flight list of the recovery records, and the Stack's timer heap."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.rack import INFINITE_TS, Rack, sent_after
from mptcp.tcp.recovery import RecoveryState, TxSeg
from mptcp.tcp.recvbuf import ReceiveBuffer
from mptcp.tcp.scoreboard import Scoreboard
from mptcp.tcp.stack import Stack, _checksums_ok
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.options import NOP, Timestamps
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import TcpHeader


# --------------------------------------------------------------------------- checksums -----
@st.composite
def packets(draw: st.DrawFn) -> bytes:
    v6 = draw(st.booleans())
    a, b = draw(st.binary(min_size=16, max_size=16)), draw(st.binary(min_size=16, max_size=16))
    if v6:
        ip: Any = ipv6(a, b, traffic_class=draw(st.integers(0, 255)))
    else:
        opts = draw(st.sampled_from([b"", b"\x01\x01\x01\x00"]))
        ip = ipv4(a[:4], b[:4], tos=draw(st.integers(0, 255)), ident=draw(st.integers(0, 65535)),
                  options=opts)
    tcp_opts = (NOP, NOP, Timestamps(draw(st.integers(0, 2**32 - 1)), 7)) \
        if draw(st.booleans()) else ()
    tcp = TcpHeader(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)),
                    draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                    draw(st.integers(0, 0xFFF)), draw(st.integers(0, 65535)), 0, 0, tcp_opts)
    raw = bytearray(Segment(ip, tcp, draw(st.binary(max_size=300))).to_bytes())
    for pos in draw(st.lists(st.integers(0, len(raw) - 1), max_size=2)):
        raw[pos] ^= draw(st.integers(1, 255))  # corruption, anywhere (headers included)
    return bytes(raw) + draw(st.sampled_from([b"", b"\x00", b"pad"]))  # link-layer padding


@pytest.mark.rfc("9293", "3.1")
@given(packets())
def test_one_pass_checksum_check_agrees_with_checksum_ok(raw: bytes) -> None:
    try:
        seg = parse_segment(raw)
    except Exception:
        return  # the Stack then takes the general path
    fast = _checksums_ok(raw, seg)
    if seg.ip.header_length > (40 if len(seg.ip.src) == 16 else 20):
        assert not fast  # IP options: the Stack asks checksum_ok instead
    else:
        assert fast == checksum_ok(raw)


@pytest.mark.rfc("9293", "3.1")
def test_stack_counts_a_corrupted_payload_as_checksum_error() -> None:
    stack = Stack(["10.0.0.2"], random.Random(1))
    stack.listen(80)
    seg = Segment(ipv4(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])),
                  TcpHeader(1234, 80, 1, 0, 0x002, 65535), b"x" * 40)
    raw = bytearray(seg.to_bytes())
    raw[-5] ^= 0x10
    stack.receive(bytes(raw), 0.0)
    assert stack.mib["TcpInCsumErrors"] == 1 and not stack.connections
    stack.receive(seg.to_bytes(), 0.0)
    assert stack.mib["TcpInCsumErrors"] == 1 and len(stack.connections) == 1


# --------------------------------------------------------------------------- recvbuf -------
@pytest.mark.rfc("9293", "3.10.7.4")
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 1500)), max_size=40),
       st.integers(1, 20_000))
def test_in_order_append_is_accept(arrivals: list[tuple[int, int]], capacity: int) -> None:
    general, fast = ReceiveBuffer(capacity, start=1), ReceiveBuffer(capacity, start=1)
    data = random.Random(3).randbytes(6000)
    for back, n in arrivals:
        off = max(1, general.rcv_nxt - back % 3 * 500)
        chunk = data[off:off + n]
        if off == fast.rcv_nxt and 0 <= len(chunk) <= fast.in_order_room():
            fast.append(chunk)
            res = general.accept(off, chunk)
            assert res == (len(chunk), 0, 0, 0, False)
        else:
            general.accept(off, chunk)
            fast.accept(off, chunk)
        assert (fast.rcv_nxt, fast.window, fast.readable) == \
            (general.rcv_nxt, general.window, general.readable)
        if back % 5 == 0:
            assert fast.read(back) == general.read(back)
    assert fast.read() == general.read()


# --------------------------------------------------------------------------- scoreboard ----
@pytest.mark.rfc("6675", "4")
@given(st.lists(st.integers(0, 5000), max_size=30))
def test_quiet_advance_is_on_ack_without_blocks(acks: list[int]) -> None:
    a, b = Scoreboard(1, 1000), Scoreboard(1, 1000)
    a.on_transmit(1, 100_000)
    b.on_transmit(1, 100_000)
    una = 1
    for step in acks:
        una += step
        assert a.quiet and b.quiet
        a.advance(una)
        b.on_ack(una)
        assert (a.snd_una, a.high_rxt, a.dupacks, a.pipe) == \
            (b.snd_una, b.high_rxt, b.dupacks, b.pipe)
    b.on_ack(una, [(una + 2000, una + 3000)])
    assert not b.quiet


# --------------------------------------------------------------------------- RACK ----------
@dataclass
class Seg:
    end_seq: int
    xmit_ts: float
    retransmitted: bool = False


def _rfc_update(rack: Rack, delivered: list[Seg], now: float, tsecr: float | None) -> None:
    """RFC 8985 §6.2 step 2, literally: in transmission order."""
    min_rtt = rack.min_rtt
    for seg in sorted(delivered, key=lambda s: (s.xmit_ts, s.end_seq)):
        if seg.xmit_ts == INFINITE_TS:
            continue
        rtt = now - seg.xmit_ts
        if seg.retransmitted and ((tsecr is not None and tsecr < seg.xmit_ts)
                                  or min_rtt is None or rtt < min_rtt):
            continue
        rack.rtt = rtt
        if rack.xmit_ts is None or sent_after(seg.xmit_ts, seg.end_seq, rack.xmit_ts,
                                              rack.end_seq):
            rack.xmit_ts, rack.end_seq = seg.xmit_ts, seg.end_seq


def _rfc_reordering(rack: Rack, delivered: list[Seg]) -> bool:
    """RFC 8985 §6.2 step 3, literally: in sequence order."""
    for seg in sorted(delivered, key=lambda s: s.end_seq):
        if seg.end_seq > rack.fack:
            rack.fack = seg.end_seq
        elif seg.end_seq < rack.fack and not seg.retransmitted:
            rack.reordering_seen = True
    return rack.reordering_seen


acks_strategy = st.lists(st.lists(st.tuples(
    st.integers(1, 60), st.sampled_from([0.0, 0.5, 1.0, 1.5, INFINITE_TS]), st.booleans()),
    max_size=6), max_size=12)


@pytest.mark.rfc("8985", "6.2")
@given(acks_strategy, st.booleans())
def test_one_pass_update_and_reordering_match_the_rfc_loops(
        acks: list[list[tuple[int, float, bool]]], with_tsecr: bool) -> None:
    ours, ref = Rack(), Rack()
    for r in (ours, ref):
        r.on_rtt_sample(0.4, 0.0)
    now = 2.0
    for batch in acks:
        delivered = [Seg(end * 100, ts, rx) for end, ts, rx in batch]
        tsecr = 0.7 if with_tsecr else None
        ours.update(delivered, now, tsecr)
        _rfc_update(ref, delivered, now, tsecr)
        assert (ours.rtt, ours.xmit_ts, ours.end_seq) == (ref.rtt, ref.xmit_ts, ref.end_seq)
        assert ours.detect_reordering(delivered) == _rfc_reordering(ref, delivered)
        assert ours.fack == ref.fack
        now += 0.25


# --------------------------------------------------------------------------- in flight -----
class _Conn:
    """The two attributes RecoveryState reads from its connection."""

    def __init__(self) -> None:
        self.config = TcpConfig()
        self.mib: dict[str, int] = {}
        self.sack_ok = True


@pytest.mark.rfc("8985", "6.2")
@given(st.lists(st.tuples(st.sampled_from(["send", "rtx", "lost", "sack", "ack"]),
                          st.integers(0, 40), st.integers(1, 8)), max_size=60))
def test_in_flight_is_every_record_neither_sacked_nor_lost(
        ops: list[tuple[str, int, int]]) -> None:
    r = RecoveryState(_Conn())  # type: ignore[arg-type]
    nxt, una, now = 1, 1, 0.0
    for op, at, n in ops:
        now += 0.001
        lo = una + at * 100
        if op == "send":
            r.on_transmit(nxt, nxt + n * 100, now, False)
            nxt += n * 100
        elif lo < nxt and op == "rtx":
            r.on_transmit(lo, min(nxt, lo + n * 50), now, True)
        elif lo < nxt and op == "lost":
            for seg in r._range(lo, min(nxt, lo + n * 50)):
                r.mark_lost(seg)
        elif lo < nxt and op == "sack":
            r.sack(((lo, min(nxt, lo + n * 50)),))
        elif op == "ack":
            una = min(nxt, una + n * 70)
            r.cum_ack(una)
        flight = list(r.in_flight())
        assert set(map(id, flight)) == {id(s) for s in r.segs if not s.sacked and not s.lost}
        assert len(flight) == len(set(map(id, flight)))
        assert r.pipe == sum(s.end_seq - s.start for s in flight)
        assert [(s.xmit_ts, s.start) for s in flight] == \
            sorted((s.xmit_ts, s.start) for s in flight)  # transmission order
        assert all(isinstance(s, TxSeg) for s in flight)


# --------------------------------------------------------------------------- timer heap ----
@pytest.mark.rfc("6298", "5.3")
def test_timer_heap_stays_small_and_truthful() -> None:
    cfg = replace(TcpConfig(), send_buffer=1 << 20, recv_buffer=1 << 20)
    a = Stack(["10.0.0.1"], random.Random(1), config=cfg)
    b = Stack(["10.0.0.2"], random.Random(2), config=cfg)
    b.listen(80)
    conn = a.connect(("10.0.0.2", 80))
    data = random.Random(4).randbytes(1_500_000)
    pos = 0
    now = 0.0
    peer: TcpConnection | None = None
    for _ in range(20_000):
        now += 0.0005
        if conn.state.value == "ESTABLISHED" and pos < len(data):
            pos += conn.send(data[pos:pos + 100_000])
        for p in a.packets_to_send(now):
            b.receive(p, now)
            for q in b.packets_to_send(now):
                a.receive(q, now)
        peer = peer or b.accept(80)
        if peer is not None:
            peer.read()
            for q in b.packets_to_send(now):
                a.receive(q, now)
        for s in (a, b):
            assert len(s._heap) <= 64 + 4 * len(s._deadline) + 1
            expected = [c.get_timer() for c in s.connections.values()]
            t = s.get_timer()
            assert t == min((t for t in expected if t is not None), default=None)
            if t is not None and t <= now + 0.05:  # the delayed ACK of the last segment
                now = max(now, t)
                s.handle_timer(now)
        if pos == len(data) and conn.snd_una == conn.snd_nxt:
            break
    assert pos == len(data) and conn.snd_una == conn.snd_nxt
