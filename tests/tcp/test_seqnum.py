"""32-bit sequence arithmetic (RFC 9293 §3.4, RFC 1982 §3) and the offset RangeSet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.seqnum import (
    SEQ_HALF,
    SEQ_MASK,
    RangeSet,
    SeqNumError,
    SeqSpace,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_sub,
    unwrap,
    wrap,
)

u32 = st.integers(0, SEQ_MASK)
near_wrap = st.one_of(u32, st.integers(SEQ_MASK - 70_000, SEQ_MASK), st.integers(0, 70_000))
signed31 = st.integers(-SEQ_HALF + 1, SEQ_HALF - 1)


def rfc1982_lt(i1: int, i2: int) -> bool:
    """RFC 1982 §3.2 literally, SERIAL_BITS = 32."""
    return (i1 < i2 and i2 - i1 < SEQ_HALF) or (i1 > i2 and i1 - i2 > SEQ_HALF)


@pytest.mark.rfc("1982", "3.2")
@given(near_wrap, near_wrap)
def test_comparisons_match_rfc1982(a: int, b: int) -> None:
    assert seq_lt(a, b) == rfc1982_lt(a, b)
    assert seq_gt(a, b) == rfc1982_lt(b, a)
    assert seq_le(a, b) == (a == b or rfc1982_lt(a, b))
    assert seq_ge(a, b) == (a == b or rfc1982_lt(b, a))


@pytest.mark.rfc("9293", "3.4")
@given(near_wrap, signed31)
def test_add_then_compare_across_wrap(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert 0 <= b <= SEQ_MASK
    assert seq_diff(b, a) == n
    assert seq_sub(b, n) == a
    assert seq_lt(a, b) == (n > 0)
    assert seq_gt(a, b) == (n < 0)
    assert seq_le(a, b) == (n >= 0)


@pytest.mark.rfc("1982", "3.2")
@given(u32)
def test_half_space_apart_is_undefined_and_neither_is_less(a: int) -> None:
    b = seq_add(a, SEQ_HALF)
    assert not seq_lt(a, b) and not seq_lt(b, a)
    assert not seq_gt(a, b) and not seq_gt(b, a)
    assert seq_diff(a, b) == seq_diff(b, a) == -SEQ_HALF


@pytest.mark.rfc("9293", "3.4")
def test_wrap_examples() -> None:
    assert seq_lt(SEQ_MASK, 0)
    assert seq_gt(5, SEQ_MASK - 5)
    assert seq_diff(3, SEQ_MASK) == 4
    assert seq_add(SEQ_MASK, 1) == 0
    assert seq_in_window(2, SEQ_MASK - 1, 10)
    assert not seq_in_window(SEQ_MASK - 2, SEQ_MASK - 1, 10)
    assert not seq_in_window(7, 7, 0)


@pytest.mark.rfc("9293", "3.10.7.4")
@given(near_wrap, st.integers(0, 1 << 20), st.integers(-(1 << 21), 1 << 21))
def test_in_window_matches_diff(left: int, size: int, d: int) -> None:
    s = seq_add(left, d)
    assert seq_in_window(s, left, size) == (0 <= d < size)


@given(st.integers(0, 1 << 62), signed31)
def test_unwrap_recovers_offset_near_reference(ref: int, d: int) -> None:
    v = ref + d
    assert unwrap(wrap(v), ref) == v


@pytest.mark.rfc("9293", "3.4")
@given(u32, st.integers(0, 1 << 40), st.integers(-(1 << 30), 1 << 30))
def test_seqspace_roundtrip(isn: int, ref: int, d: int) -> None:
    space = SeqSpace(isn)
    off = max(0, ref + d)
    seq = space.seq(off)
    assert seq == (isn + off) & SEQ_MASK
    assert space.offset(seq, ref) == off
    assert space.seq(0) == isn  # offset 0 is the SYN


def test_seqspace_rejects_bad_isn() -> None:
    with pytest.raises(SeqNumError):
        SeqSpace(1 << 32)
    with pytest.raises(SeqNumError):
        SeqSpace(-1)


# --- RangeSet against a plain Python set ----------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 200), st.integers(0, 40)),
        st.tuples(st.just("gaps"), st.integers(0, 200), st.integers(0, 40)),
        st.tuples(st.just("cut"), st.integers(0, 250), st.just(0)),
    ),
    max_size=40,
)


def runs(members: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for x in sorted(members):
        if out and out[-1][1] == x:
            out[-1] = (out[-1][0], x + 1)
        else:
            out.append((x, x + 1))
    return out


@given(ops, st.integers(0, 260), st.integers(0, 260))
def test_rangeset_matches_set_model(
    operations: list[tuple[str, int, int]], q1: int, q2: int
) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for op, a, n in operations:
        new = set(range(a, a + n)) - model
        if op == "add":
            assert rs.add(a, a + n) == len(new)
            model |= new
        elif op == "gaps":
            assert rs.add_gaps(a, a + n) == runs(new)
            model |= new
        else:
            dropped = {x for x in model if x < a}
            assert rs.remove_below(a) == len(dropped)
            model -= dropped
        assert rs.ranges() == runs(model)
        assert rs.total == len(model)
    lo, hi = min(q1, q2), max(q1, q2)
    assert rs.covered(lo, hi) == len([x for x in model if lo <= x < hi])
    assert (q1 in rs) == (q1 in model)
    x = q1
    while x in model:
        x += 1
    assert rs.first_absent(q1) == x
    assert rs.contains_range(lo, hi) == all(y in model for y in range(lo, hi))
    later = [s for s, _ in runs(model) if s > q1]
    assert rs.next_start(q1) == (later[0] if later else None)
    found = rs.find(q1)
    assert found == next(((s, e) for s, e in runs(model) if s <= q1 < e), None)


def test_rangeset_rejects_inverted_range() -> None:
    with pytest.raises(SeqNumError):
        RangeSet().add(5, 4)
