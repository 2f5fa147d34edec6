"""Send buffer in stream offsets (RFC 9293 §3.3.1 send sequence space, RFC 2018 §8)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.tcp.sendbuf import SendBuffer, SendBufferError


def test_write_respects_capacity_and_counts_backpressure() -> None:
    c: dict[str, int] = {}
    sb = SendBuffer(10, start=1, counters=c)
    assert sb.write(b"abcdef") == 6
    assert sb.free == 4
    assert sb.write(memoryview(b"0123456789")) == 4
    assert c["TcpExtTCPSndBufFull"] == 1
    assert sb.write(b"x") == 0
    assert c["TcpExtTCPSndBufFull"] == 2
    assert sb.end == 11 and sb.buffered == 10
    assert sb.peek(1, 100) == b"abcdef0123"


@pytest.mark.rfc("9293", "3.3.1")
def test_ack_frees_and_moves_snd_una() -> None:
    sb = SendBuffer(100, start=1000)
    sb.write(b"hello world")
    assert sb.snd_una == 1000
    assert sb.ack_to(1005) == 5
    assert sb.snd_una == 1005
    assert sb.peek(1005, 3) == b" wo"
    assert sb.ack_to(1003) == 0  # an old ACK changes nothing
    assert sb.snd_una == 1005
    with pytest.raises(SendBufferError):
        sb.peek(1004, 1)  # freed
    with pytest.raises(SendBufferError):
        sb.ack_to(1012)  # beyond the data, no FIN
    assert sb.free == 100 - 6


@pytest.mark.rfc("9293", "3.4")
def test_fin_marker_occupies_one_sequence_number() -> None:
    sb = SendBuffer(100, start=1)
    sb.write(b"abc")
    assert sb.seq_end() == 4
    assert sb.close() == 4
    assert sb.close() == 4  # idempotent
    assert sb.seq_end() == 5
    assert sb.free == 0
    with pytest.raises(SendBufferError):
        sb.write(b"more")
    assert sb.segment(1, 2) == (b"ab", False)
    assert sb.segment(1, 10) == (b"abc", True)
    assert sb.segment(4, 10) == (b"", True)  # a bare FIN retransmission
    assert sb.ack_to(4) == 3
    assert not sb.fin_acked
    assert sb.ack_to(5) == 0
    assert sb.fin_acked
    assert sb.end == 4
    with pytest.raises(SendBufferError):
        sb.ack_to(6)


def test_unsent_helper() -> None:
    sb = SendBuffer(100, start=1)
    sb.write(b"x" * 50)
    assert sb.unsent(1) == 50
    assert sb.unsent(31) == 20
    assert sb.unsent(51) == 0


def test_bad_arguments() -> None:
    with pytest.raises(SendBufferError):
        SendBuffer(-1)
    sb = SendBuffer(10)
    with pytest.raises(SendBufferError):
        sb.peek(0, -1)
    with pytest.raises(SendBufferError):
        sb.peek(1, 1)  # nothing written yet


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("w"), st.binary(max_size=300)),
            st.tuples(st.just("a"), st.integers(0, 400)),
            st.tuples(st.just("p"), st.integers(0, 400)),
        ),
        max_size=60,
    ),
    st.integers(0, 1000),
    st.integers(0, 1 << 40),
)
def test_matches_a_bytes_model(ops: list[tuple[str, object]], cap: int, start: int) -> None:
    """Whatever the interleaving, peek returns exactly the stream bytes at those offsets."""
    sb = SendBuffer(cap, start=start)
    stream = b""  # everything accepted so far
    una = start
    for op, arg in ops:
        if op == "w":
            assert isinstance(arg, bytes)
            n = sb.write(arg)
            assert n == min(len(arg), max(0, cap - (start + len(stream) - una)))
            stream += arg[:n]
        elif op == "a":
            assert isinstance(arg, int)
            target = min(una + arg, start + len(stream))
            freed = sb.ack_to(target)
            assert freed == target - una
            una = target
        else:
            assert isinstance(arg, int)
            off = una + arg
            if off > start + len(stream):
                with pytest.raises(SendBufferError):
                    sb.peek(off, 10)
            else:
                got = sb.peek(off, 37)
                assert got == stream[off - start:off - start + 37]
        assert sb.snd_una == una
        assert sb.end == start + len(stream)
        assert sb.buffered == sb.end - una <= cap
