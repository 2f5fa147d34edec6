"""Data Sequence Mappings of one subflow's receive side (RFC 8684 §3.3.1, §3.3.3, §3.7)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.dsn import DSN_MASK
from mptcp.mapping import (
    INFINITE_LEN,
    Mapping,
    MappingError,
    MappingLimitError,
    RecvMappings,
)


@pytest.mark.rfc("8684", "3.3.1")
def test_add_lookup_and_duplicates() -> None:
    m = RecvMappings()
    assert m.lookup(1) is None
    assert m.add(Mapping(1, 1000, 100, False))
    assert not m.add(Mapping(1, 1000, 100, False))  # TSO: the same mapping on every segment
    assert m.lookup(1) == (1000, 100)
    assert m.lookup(50) == (1049, 51)
    assert m.lookup(100) == (1099, 1)
    assert m.lookup(101) is None
    assert m.lookup(0) is None
    assert m.stats == {"added": 1, "duplicates": 1, "conflicts": 0}
    assert m.fin_at() is None


@pytest.mark.rfc("8684", "3.3.1")
def test_overlapping_mappings_must_agree() -> None:
    m = RecvMappings()
    m.add(Mapping(1, 1000, 100))
    # overlaps and extends with the same offset: fine, one run
    assert m.add(Mapping(51, 1050, 100))
    assert len(m) == 1 and m.lookup(1) == (1000, 150)
    # contained: nothing new
    assert not m.add(Mapping(10, 1009, 5))
    # a different DSN for bytes already mapped: invalid, nothing changes
    before = m.runs()
    with pytest.raises(MappingError):
        m.add(Mapping(140, 5000, 20))
    with pytest.raises(MappingError):
        m.add(Mapping(150, 1150, 10))  # last byte (SSN 150) is DSN 1149, not 1150
    assert m.runs() == before and m.stats["conflicts"] == 2
    # adjacent with another offset: separate runs; contiguous_len stops at the boundary
    assert m.add(Mapping(151, 9000, 10))
    assert len(m) == 2
    assert m.lookup(150) == (1149, 1)
    assert m.lookup(151) == (9000, 10)
    # adjacent with the same offset: merged
    assert m.add(Mapping(161, 9010, 10))
    assert len(m) == 2 and m.lookup(151) == (9000, 20)
    # a gap filled in between two runs with a matching offset on one side only
    assert m.add(Mapping(300, 7000, 10))
    assert m.add(Mapping(171, 9020, 129))
    assert len(m) == 3 and m.lookup(171) == (9020, 129)


@pytest.mark.rfc("8684", "3.3.3")
def test_data_fin_mappings() -> None:
    m = RecvMappings()
    # "a segment with a DSN value of 80 and a Data-Level Length of 11, with DATA_FIN set,
    # would map 10 octets ... the DATA_FIN would be DSN 90"
    assert m.add(Mapping(1, 80, 10, True))
    assert m.fin_at() == 90
    assert m.lookup(10) == (89, 1) and m.lookup(11) is None
    assert not m.add(Mapping(1, 80, 10, True))
    assert not m.add(Mapping(11, 90, 0, True))  # the DATA_FIN again, without data
    with pytest.raises(MappingError):
        m.add(Mapping(11, 91, 0, True))
    with pytest.raises(MappingError):
        m.add(Mapping(100, 500, 5, True))
    assert m.fin_at() == 90
    # the DATA_FIN announced alone first, then the data
    m2 = RecvMappings()
    assert m2.add(Mapping(0, DSN_MASK, 0, True))
    assert m2.fin_at() == DSN_MASK
    assert m2.add(Mapping(1, DSN_MASK - 5, 5, False))
    assert not m2.add(Mapping(1, DSN_MASK - 5, 5, True))  # nothing new
    # a DATA_FIN right after data that crosses 2**64
    m3 = RecvMappings()
    m3.add(Mapping(1, DSN_MASK - 1, 4, True))
    assert m3.fin_at() == 2
    assert m3.lookup(3) == (0, 2)


def test_malformed_mappings() -> None:
    m = RecvMappings()
    with pytest.raises(MappingError):
        m.add(Mapping(1, 5, 0, False))  # that is an infinite mapping
    with pytest.raises(MappingError):
        m.add(Mapping(1, 5, -1, False))
    with pytest.raises(MappingError):
        m.add(Mapping(0, 5, 10, False))  # relative SSN 0 is the SYN
    with pytest.raises(MappingError):
        m.add(Mapping(1, 1 << 64, 10, False))
    with pytest.raises(MappingError):
        m.infinite(-1, 5)
    with pytest.raises(MappingError):
        RecvMappings(max_runs=0)
    assert len(m) == 0 and m.fin_at() is None
    assert issubclass(MappingError, ValueError)


@pytest.mark.rfc("8684", "3.3.1")
def test_consume_forgets() -> None:
    m = RecvMappings()
    m.add(Mapping(1, 100, 10))
    m.add(Mapping(11, 500, 10))
    m.add(Mapping(21, 900, 10))
    m.consume(15)
    assert len(m) == 2
    assert m.lookup(14) is None
    assert m.lookup(15) == (504, 6)
    assert m.lookup(21) == (900, 10)
    # mappings of consumed bytes are accepted without being stored (or checked)
    assert not m.add(Mapping(1, 100, 10))
    assert not m.add(Mapping(1, 12345, 10))
    # straddling: only the part not consumed is checked and kept
    assert not m.add(Mapping(11, 500, 10))
    with pytest.raises(MappingError):
        m.add(Mapping(11, 600, 10))
    m.consume(10)  # going back is a no-op
    assert m.lookup(15) == (504, 6)
    m.consume(31)
    assert len(m) == 0 and m.lookup(30) is None
    assert m.add(Mapping(31, 1000, 10))
    assert m.lookup(31) == (1000, 10)


def test_run_limit() -> None:
    m = RecvMappings(max_runs=2)
    m.add(Mapping(1, 100, 10))
    m.add(Mapping(21, 300, 10))
    with pytest.raises(MappingLimitError):
        m.add(Mapping(41, 500, 10))
    assert m.add(Mapping(11, 110, 10))  # merges with the first run: still 2
    assert len(m) == 2  # touching the second run, another offset: not merged
    with pytest.raises(MappingLimitError):
        m.add(Mapping(41, 500, 10))
    m.consume(31)
    assert m.add(Mapping(41, 500, 10))


@pytest.mark.rfc("8684", "3.7")
def test_infinite_mapping() -> None:
    m = RecvMappings()
    m.add(Mapping(1, 1000, 100))
    m.add(Mapping(101, 5000, 100))
    # retroactive: it replaces what the mappings said from SSN 51 on
    m.infinite(51, 2050)
    assert m.infinite_from == 51
    assert m.lookup(50) == (1049, 1)  # contiguous_len stops where the infinite one starts
    assert m.lookup(51) == (2050, INFINITE_LEN)
    assert m.lookup(10**9) == ((10**9 + 1999) & DSN_MASK, INFINITE_LEN)
    assert len(m) == 1
    # later mappings must agree with it
    assert not m.add(Mapping(60, 2059, 10))
    with pytest.raises(MappingError):
        m.add(Mapping(60, 5000, 10))
    m.infinite(51, 2050)  # repeated
    m.infinite(80, 2079)  # same offset from later on: nothing changes
    assert m.infinite_from == 51
    with pytest.raises(MappingError):
        m.infinite(80, 3000)
    m.infinite(41, 2040)  # same offset from earlier: extends back
    assert m.infinite_from == 41
    assert m.lookup(40) == (1039, 1)
    assert m.lookup(45) == (2044, INFINITE_LEN)
    # wraps modulo 2**64
    m2 = RecvMappings()
    m2.infinite(1, DSN_MASK)
    assert m2.lookup(3) == (1, INFINITE_LEN)


# --- properties -----------------------------------------------------------------------------


@st.composite
def consistent_mappings(draw: st.DrawFn) -> tuple[list[int], list[Mapping]]:
    """A subflow byte stream (SSN 1..n) cut into chunks, each chunk mapped to its own DSN
    (the scheduler's choice); mappings = the chunks plus sub-ranges of them, shuffled and
    duplicated.  Returns the true DSN of every SSN (index 0 unused) and the mappings."""
    n = draw(st.integers(1, 400))
    cuts = sorted(set(draw(st.lists(st.integers(2, max(2, n)), max_size=12))))
    bounds = [1, *[c for c in cuts if 1 < c <= n], n + 1]
    truth = [-1] * (n + 1)
    maps: list[Mapping] = []
    near_wrap = draw(st.booleans())
    for a, b in itertools.pairwise(bounds):
        dsn = draw(st.integers(DSN_MASK - 500, DSN_MASK) if near_wrap
                   else st.integers(0, DSN_MASK))
        for s in range(a, b):
            truth[s] = (dsn + s - a) & DSN_MASK
        maps.append(Mapping(a, dsn, b - a))
        for _ in range(draw(st.integers(0, 2))):
            x = draw(st.integers(a, b - 1))
            y = draw(st.integers(x + 1, b))
            maps.append(Mapping(x, truth[x], y - x))
    maps += draw(st.lists(st.sampled_from(maps), max_size=4))
    order = draw(st.permutations(range(len(maps))))
    return truth, [maps[i] for i in order]


@pytest.mark.rfc("8684", "3.3.1")
@given(case=consistent_mappings(), seed=st.integers(0, 2**32))
def test_consistent_mappings_resolve_every_byte(case: tuple[list[int], list[Mapping]],
                                                seed: int) -> None:
    truth, maps = case
    rng = random.Random(seed)
    m = RecvMappings()
    for mp in maps:
        m.add(mp)
        # a conflicting mapping over the same bytes raises and changes nothing
        if rng.random() < 0.3:
            before = m.runs()
            with pytest.raises(MappingError):
                m.add(Mapping(mp.ssn, (mp.dsn + rng.randrange(1, 1 << 40)) & DSN_MASK,
                              mp.length))
            assert m.runs() == before
    n = len(truth) - 1
    ssn = 1
    while ssn <= n:  # walking by contiguous_len visits every byte with its true DSN
        got = m.lookup(ssn)
        assert got is not None
        dsn, clen = got
        assert 1 <= clen <= n + 1 - ssn
        for k in (0, clen // 2, clen - 1):
            assert m.lookup(ssn + k) == (truth[ssn + k], clen - k)
        assert (dsn + clen - 1) & DSN_MASK == truth[ssn + clen - 1]
        ssn += clen
    assert m.lookup(n + 1) is None
    # runs are disjoint, sorted, and touching runs have different offsets
    runs = m.runs()
    for r1, r2 in itertools.pairwise(runs):
        assert r1.ssn + r1.length <= r2.ssn
        if r1.ssn + r1.length == r2.ssn:
            assert (r1.dsn - r1.ssn) & DSN_MASK != (r2.dsn - r2.ssn) & DSN_MASK
    # consuming in steps keeps the rest intact
    cut = rng.randint(1, n + 1)
    m.consume(cut)
    for s in range(1, n + 1):
        got = m.lookup(s)
        if s < cut:
            assert got is None
        else:
            assert got is not None and got[0] == truth[s]
