"""Receive reassembly (RFC 9293 §3.4, §3.8.6, §3.10.7.4), SACK (RFC 2018 §4) and D-SACK
(RFC 2883 §4) block generation."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.recvbuf import (
    Accepted,
    DataBeyondFinError,
    FinMismatchError,
    ReassemblyError,
    ReceiveBuffer,
)

# --- the reassembly property ------------------------------------------------------------


@st.composite
def shuffled_segments(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    data = draw(st.binary(min_size=1, max_size=3000))
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=30))))
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    segs = [(bounds[i], data[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]
    # overlapping re-segmentations of the same bytes and exact duplicates
    for _ in range(draw(st.integers(0, 10))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        segs.append((a, data[a:b]))
    segs += draw(st.lists(st.sampled_from(segs), max_size=5))
    order = draw(st.permutations(range(len(segs))))
    return data, [segs[i] for i in order]


@pytest.mark.rfc("9293", "3.4")
@given(shuffled_segments(), st.integers(0, 1 << 33), st.booleans())
def test_any_order_duplicates_overlaps_reassemble_exactly(
    case: tuple[bytes, list[tuple[int, bytes]]], base: int, read_between: bool
) -> None:
    data, segs = case
    rb = ReceiveBuffer(len(data), start=base)
    got = bytearray()
    for off, payload in segs:
        before = rb.rcv_nxt
        res = rb.accept(base + off, payload)
        assert rb.rcv_nxt == before + res.delivered
        assert res.duplicate + res.queued + res.delivered >= 0
        assert not res.mismatch
        if read_between:
            got += rb.read()
            # never a byte twice, never out of order: what was read is a prefix of the data
            assert data.startswith(bytes(got))
    got += rb.read()
    assert bytes(got) == data
    assert rb.rcv_nxt == base + len(data)
    assert rb.out_of_order == 0
    assert rb.read() == b""


@pytest.mark.rfc("9293", "3.8.6")
@given(st.binary(min_size=1, max_size=2000), st.integers(1, 300), st.randoms(use_true_random=False))
def test_small_window_with_retransmissions_converges(
    data: bytes, cap: int, rnd: random.Random
) -> None:
    """The sender keeps resending random pieces; the window trims; the stream still arrives
    exactly once and in order, and the window's right edge never moves left."""
    rb = ReceiveBuffer(cap, start=7)
    got = bytearray()
    right = rb.right_edge
    for _ in range(20_000):
        if rb.rcv_nxt == 7 + len(data):
            break
        a = rnd.randrange(max(0, rb.rcv_nxt - 7 - 50), len(data))
        b = min(len(data), a + rnd.randrange(1, 120))
        rb.accept(7 + a, data[a:b])
        assert rb.right_edge >= right
        right = rb.right_edge
        assert rb.out_of_order + rb.readable <= cap
        if rnd.random() < 0.3:
            got += rb.read(rnd.randrange(0, 100))
            assert data.startswith(bytes(got))
    got += rb.read()
    assert bytes(got) == data


# --- first copy wins, discrepancies counted ---------------------------------------------


@pytest.mark.rfc("9293", "3.4")
def test_differing_overlap_keeps_first_copy_and_counts() -> None:
    c: dict[str, int] = {}
    rb = ReceiveBuffer(100, counters=c)
    assert rb.accept(5, b"WORLD") == Accepted(0, 5, 0, 0, False)
    res = rb.accept(3, b"xxworXX")  # overlaps [5,10) with different bytes
    assert res.mismatch and res.duplicate == 5
    assert c["TcpExtTCPRcvDataMismatch"] == 1
    res = rb.accept(0, b"abcde")  # [3,5) was queued as "xx" by the previous one: differs
    assert res.delivered == 10 and res.mismatch and res.duplicate == 2
    assert rb.read() == b"abcxxWORLD"
    assert c["TcpExtTCPRcvDataMismatch"] == 2


@pytest.mark.rfc("9293", "3.4")
def test_duplicate_of_unread_delivered_data_is_compared() -> None:
    rb = ReceiveBuffer(100)
    rb.accept(0, b"hello")
    assert not rb.accept(0, b"hello").mismatch
    assert rb.accept(1, b"EL").mismatch
    assert rb.read() == b"hello"
    # once read, nothing is left to compare against: not reported
    assert not rb.accept(0, b"HELLO").mismatch


# --- window ------------------------------------------------------------------------------


@pytest.mark.rfc("9293", "3.8.6")
def test_window_is_free_space_and_data_beyond_is_trimmed() -> None:
    c: dict[str, int] = {}
    rb = ReceiveBuffer(10, counters=c)
    assert rb.window == 10
    res = rb.accept(0, b"0123456789ABC")
    assert res == Accepted(10, 0, 0, 3, False)
    assert rb.window == 0
    assert rb.accept(10, b"D").trimmed == 1
    assert c["TcpExtTCPZeroWindowDrop"] == 1
    assert rb.read(4) == b"0123"
    assert rb.window == 4 and rb.right_edge == 14
    assert rb.accept(12, b"CDEFG") == Accepted(0, 2, 0, 3, False)  # [12,14) queued
    assert rb.accept(20, b"x").trimmed == 1
    assert c["TcpExtTCPOFODrop"] == 1


def test_too_many_pieces_drops() -> None:
    c: dict[str, int] = {}
    rb = ReceiveBuffer(1000, max_pieces=3, counters=c)
    for off in (10, 20, 30):
        rb.accept(off, b"x")
    res = rb.accept(40, b"y")
    assert res.queued == 0 and res.trimmed == 1
    assert c["TcpExtTCPOFODrop"] == 1
    assert rb.accept(0, b"0123456789").delivered == 11  # in-order data still flows


# --- FIN ----------------------------------------------------------------------------------


@pytest.mark.rfc("9293", "3.10.7.4")
def test_fin_in_order_and_out_of_order() -> None:
    rb = ReceiveBuffer(100, start=1)
    rb.accept(4, b"def", fin=True)  # FIN at 7, out of order
    assert rb.fin_offset == 7 and not rb.fin_reached
    rb.accept(1, b"abc")
    assert rb.fin_reached and not rb.eof
    assert rb.read() == b"abcdef"
    assert rb.eof
    rb.accept(4, b"def", fin=True)  # a retransmitted FIN is fine


@pytest.mark.rfc("9293", "3.4")
def test_data_beyond_fin_is_a_typed_error() -> None:
    rb = ReceiveBuffer(100)
    rb.accept(0, b"abc", fin=True)
    with pytest.raises(DataBeyondFinError):
        rb.accept(2, b"cd")
    with pytest.raises(FinMismatchError):
        rb.accept(0, b"ab", fin=True)
    rb2 = ReceiveBuffer(100)
    rb2.accept(10, b"zz")
    with pytest.raises(DataBeyondFinError):
        rb2.accept(0, b"abc", fin=True)  # FIN at 3, data already up to 12
    rb3 = ReceiveBuffer(100)
    rb3.accept(0, b"abcdef")
    with pytest.raises(DataBeyondFinError):
        rb3.accept(0, b"ab", fin=True)  # FIN at 2 below RCV.NXT
    assert issubclass(DataBeyondFinError, ReassemblyError)
    assert issubclass(ReassemblyError, ValueError)


def test_fin_beyond_window_not_taken() -> None:
    rb = ReceiveBuffer(4)
    rb.accept(0, b"abcdef", fin=True)
    assert rb.fin_offset is None
    assert rb.read() == b"abcd"


# --- SACK blocks (RFC 2018 §4, the §5 example) ---------------------------------------------


@pytest.mark.rfc("2018", "4")
def test_rfc2018_example_every_other_segment_lost() -> None:
    """RFC 2018 §5, the case where the 2nd, 4th, 6th and 8th 500-byte segments from 5000
    are lost, then the 4th and the 2nd arrive."""
    rb = ReceiveBuffer(10_000, start=5000)
    seg = {s: bytes([s // 500 % 256]) * 500 for s in range(5000, 9000, 500)}
    rb.accept(5000, seg[5000])
    assert rb.rcv_nxt == 5500 and rb.sack_blocks(3) == []
    rb.accept(6000, seg[6000])
    assert rb.sack_blocks(3) == [(6000, 6500)]
    rb.accept(7000, seg[7000])
    assert rb.sack_blocks(3) == [(7000, 7500), (6000, 6500)]
    rb.accept(8000, seg[8000])
    assert rb.sack_blocks(3) == [(8000, 8500), (7000, 7500), (6000, 6500)]
    rb.accept(6500, seg[6500])
    assert rb.rcv_nxt == 5500
    assert rb.sack_blocks(3) == [(6000, 7500), (8000, 8500)]
    rb.accept(5500, seg[5500])
    assert rb.rcv_nxt == 7500
    assert rb.sack_blocks(3) == [(8000, 8500)]


@pytest.mark.rfc("2018", "4")
def test_most_recent_block_first_and_limit() -> None:
    rb = ReceiveBuffer(10_000)
    for off in (100, 300, 500, 700, 900):
        rb.accept(off, b"x" * 10)
    rb.accept(300, b"x" * 10)  # a duplicate: D-SACK first, then its block
    assert rb.sack_blocks(4) == [(300, 310), (300, 310), (900, 910), (700, 710)]
    # the duplicate at 300 is still the most recent arrival
    assert rb.sack_blocks(4) == [(300, 310), (900, 910), (700, 710), (500, 510)]
    assert rb.sack_blocks(1) == [(300, 310)]
    rb.accept(0, b"x" * 100)  # fills [0,100): RCV.NXT reaches the block at 100
    assert rb.rcv_nxt == 110
    assert rb.sack_blocks(4) == [(300, 310), (900, 910), (700, 710), (500, 510)]


# --- D-SACK (RFC 2883 §4) ------------------------------------------------------------------


@pytest.mark.rfc("2883", "4.1.1")
def test_dsack_for_duplicate_below_cumulative_ack() -> None:
    c: dict[str, int] = {}
    rb = ReceiveBuffer(10_000, start=3000, counters=c)
    rb.accept(3000, b"a" * 500)
    rb.accept(3500, b"b" * 500)
    res = rb.accept(3000, b"a" * 500)  # the ACKs were lost, the sender retransmitted
    assert res.duplicate == 500 and res.delivered == 0
    assert rb.sack_blocks(4) == [(3000, 3500)]
    assert rb.sack_blocks(4) == []  # reported once
    assert c["TcpExtTCPDSACKOldSent"] == 1


@pytest.mark.rfc("2883", "4.1.2")
def test_dsack_for_duplicate_above_cumulative_ack_then_containing_block() -> None:
    c: dict[str, int] = {}
    rb = ReceiveBuffer(10_000, start=3000, counters=c)
    rb.accept(3000, b"a" * 1000)
    rb.accept(4500, b"c" * 500)
    rb.accept(5000, b"d" * 500)
    rb.accept(5000, b"d" * 500)  # duplicated by the network
    assert rb.sack_blocks(4) == [(5000, 5500), (4500, 5500)]
    assert c["TcpExtTCPDSACKOfoSent"] == 1
    assert rb.sack_blocks(4) == [(4500, 5500)]


@pytest.mark.rfc("2883", "4.1.3")
def test_dsack_partial_duplicate_reports_only_the_duplicate_part() -> None:
    rb = ReceiveBuffer(10_000, start=0)
    rb.accept(0, b"a" * 100)
    rb.accept(50, b"a" * 100)
    assert rb.rcv_nxt == 150
    assert rb.sack_blocks(4) == [(50, 100)]
    rb.accept(300, b"z" * 100)
    rb.accept(250, b"z" * 100)  # [300,350) duplicate, [250,300) new
    assert rb.sack_blocks(4) == [(300, 350), (250, 400)]


def test_dsack_can_be_disabled() -> None:
    rb = ReceiveBuffer(1000, dsack=False)
    rb.accept(0, b"abc")
    rb.accept(0, b"abc")
    assert rb.sack_blocks(4) == []


def test_bad_construction() -> None:
    with pytest.raises(ReassemblyError):
        ReceiveBuffer(-1)
    with pytest.raises(ReassemblyError):
        ReceiveBuffer(10).accept(-1, b"x")


@given(st.lists(st.one_of(st.binary(min_size=0, max_size=50).map(lambda b: ("add", b)),
                          st.integers(0, 80).map(lambda n: ("take", n)),
                          st.tuples(st.integers(0, 80), st.integers(0, 80)).map(
                              lambda t: ("slice", t))), max_size=60))
def test_ready_chunk_queue_matches_a_bytearray(ops: list[tuple[str, object]]) -> None:
    """The in-order queue (chunks, no memmove on growth) behaves like a bytearray."""
    from mptcp.tcp.recvbuf import _Ready

    q = _Ready()
    model = bytearray()
    for op, arg in ops:
        if op == "add":
            q += arg  # type: ignore[operator]
            model += arg  # type: ignore[operator]
        elif op == "take":
            n = min(int(arg), len(model))  # type: ignore[call-overload]
            if n:
                assert q.take(n) == bytes(model[:n])
                del model[:n]
        else:
            i, j = sorted(arg)  # type: ignore[call-overload]
            assert q.slice(i, j) == bytes(model[i:j])
        assert len(q) == len(model)
