"""64-bit DSN arithmetic and the 32 -> 64-bit promotion (RFC 8684 §3.3.1, §3.3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.dsn import (
    DSN_HALF,
    DSN_MASK,
    DSN_MOD,
    DsnError,
    dsn_add,
    dsn_diff,
    dsn_ge,
    dsn_gt,
    dsn_le,
    dsn_lt,
    dsn_sub,
    expand,
)

M32 = 1 << 32


def brute_expand(low: int, near: int) -> int:
    """Every 64-bit value congruent to ``low`` mod 2**32 within a few 2**32 steps of ``near``;
    the one at the smallest circular distance, ties going to the one before ``near``."""
    near &= DSN_MASK
    base = near & ~(M32 - 1)
    best: tuple[int, int, int] | None = None
    for k in range(-3, 4):
        c = (base + k * M32 + low) & DSN_MASK
        after = (c - near) % DSN_MOD
        before = (near - c) % DSN_MOD
        dist = min(after, before)
        key = (dist, 0 if before == dist else 1, c)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2]


WRAPS = [0, M32, 2 * M32, 1 << 63, DSN_MOD - M32, DSN_MASK, 0xDEADBEEF << 32]


@st.composite
def near_wrap(draw: st.DrawFn) -> int:
    """A 64-bit value close to a 2**32 or 2**64 wrap point, or anywhere."""
    if draw(st.booleans()):
        return draw(st.integers(0, DSN_MASK))
    point = draw(st.sampled_from(WRAPS))
    return (point + draw(st.integers(-(1 << 33), 1 << 33))) & DSN_MASK


@pytest.mark.rfc("8684", "3.3.1")
@given(near=near_wrap(), low=st.integers(0, M32 - 1))
def test_expand_matches_brute_force(near: int, low: int) -> None:
    assert expand(low, 32, near) == brute_expand(low, near)


@pytest.mark.rfc("8684", "3.3.1")
@given(near=near_wrap(), delta=st.integers(-(1 << 31) + 1, (1 << 31) - 1))
def test_expand_recovers_values_within_half_range(near: int, delta: int) -> None:
    """A DSN up to 2**31 - 1 before or after the expected value is recovered exactly from its
    low 32 bits, whatever wraps lie between (out-of-order data never fakes a wrap)."""
    true = (near + delta) & DSN_MASK
    assert expand(true & (M32 - 1), 32, near) == true


@pytest.mark.rfc("8684", "3.3.1")
def test_expand_examples_at_wraps() -> None:
    # the low 32 bits wrap: 0xFFFFFFF0 -> 0x1_00000010
    assert expand(0x10, 32, 0xFFFF_FFF0) == 0x1_0000_0010
    # an old (out-of-order) value just before the wrap stays before it
    assert expand(0xFFFF_FFF0, 32, 0x1_0000_0010) == 0xFFFF_FFF0
    # the 64-bit wrap
    assert expand(0x5, 32, DSN_MASK - 2) == 5
    assert expand(0xFFFF_FFFE, 32, 3) == DSN_MASK - 1
    # exactly 2**31 away: the earlier value
    assert expand(0x8000_0000, 32, 0x1_0000_0000) == 0x8000_0000
    assert expand(0x1234, 32, 0x1234) == 0x1234


@pytest.mark.rfc("8684", "3.3.2")
@given(v=st.integers(0, DSN_MASK), near=st.integers(0, DSN_MASK))
def test_expand_64_is_identity(v: int, near: int) -> None:
    assert expand(v, 64, near) == v


def test_expand_rejects_bad_input() -> None:
    with pytest.raises(DsnError):
        expand(M32, 32, 0)
    with pytest.raises(DsnError):
        expand(-1, 32, 0)
    with pytest.raises(DsnError):
        expand(DSN_MOD, 64, 0)
    with pytest.raises(DsnError):
        expand(1, 16, 0)
    assert issubclass(DsnError, ValueError)


@given(a=st.integers(0, DSN_MASK), d=st.integers(-(1 << 63) + 1, (1 << 63) - 1))
def test_serial_comparisons(a: int, d: int) -> None:
    b = dsn_add(a, d)
    assert dsn_sub(b, a) == d
    assert dsn_diff(a, b) == -d
    assert dsn_lt(a, b) == (d > 0)
    assert dsn_le(a, b) == (d >= 0)
    assert dsn_gt(a, b) == (d < 0)
    assert dsn_ge(a, b) == (d <= 0)
    assert dsn_lt(a, b) == dsn_gt(b, a)
    assert dsn_add(b, -d) == a


def test_serial_half_range_is_unordered() -> None:
    a, b = 5, 5 + DSN_HALF
    assert not dsn_lt(a, b) and not dsn_gt(a, b)
    assert not dsn_lt(b, a) and not dsn_gt(b, a)
    assert dsn_sub(b, a) == -DSN_HALF
    assert dsn_add(DSN_MASK, 1) == 0
    assert dsn_sub(0, DSN_MASK) == 1
    assert dsn_lt(DSN_MASK, 0)
