"""Connection-level send and receive buffers in DSN space (RFC 8684 §3.3.1-§3.3.4)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.datalevel import DataLevelError, DataReceiveBuffer, DataSendBuffer
from mptcp.dsn import DSN_MASK

MOD = 1 << 64
IDSNS = st.one_of(
    st.integers(0, DSN_MASK),
    st.integers(MOD - 300, DSN_MASK),  # the first bytes cross 2**64
    st.integers((1 << 32) - 300, (1 << 32) + 10),  # ... or 2**32
)


def d(idsn: int, off: int) -> int:
    """The DSN at ``off`` from the IDSN."""
    return (idsn + off) & DSN_MASK


# =========================================================================================
# DataSendBuffer
# =========================================================================================


@pytest.mark.rfc("8684", "3.3.1")
def test_send_first_byte_is_idsn_plus_one() -> None:
    b = DataSendBuffer(1000, 100)
    assert (b.una, b.nxt, b.end) == (1001, 1001, 1001)
    assert not b.fin_queued and b.fin_dsn is None and not b.fin_acked
    assert b.take(10) is None
    assert b.write(b"hello") == 5
    assert (b.una, b.nxt, b.end) == (1001, 1001, 1006)
    assert b.take(3) == (1001, b"hel")
    assert b.take(0) is None
    assert b.take(100) == (1004, b"lo")
    assert b.take(100) is None
    assert b.nxt == b.end == 1006
    assert b.stats["written"] == 5


def test_send_write_respects_capacity() -> None:
    b = DataSendBuffer(0, 10)
    assert b.free == 10
    assert b.write(memoryview(b"0123456789abc")) == 10
    assert b.free == 0 and b.write(b"x") == 0
    assert b.stats["write_truncated"] == 2
    b.take(4)
    assert b.ack(5) == 4  # DSNs 1..4 acknowledged
    assert b.free == 4
    assert b.write(bytearray(b"WXYZ!")) == 4
    assert b.peek(5, 10) == b"456789WXYZ"


@pytest.mark.rfc("8684", "3.3.2")
def test_send_ack_frees_and_old_acks_do_nothing() -> None:
    b = DataSendBuffer(0, 100)
    b.write(b"a" * 50)
    b.take(30)
    assert b.ack(11) == 10
    assert b.una == 11 and b.buffered == 40 and b.in_flight == 20
    assert b.ack(11) == 0
    assert b.ack(5) == 0
    assert b.stats["old_acks"] == 1
    assert b.ack(31) == 20
    assert b.stats["acked"] == 30
    with pytest.raises(DataLevelError):
        b.peek(30, 1)  # freed
    assert b.peek(31, 20) == b"a" * 20
    with pytest.raises(DataLevelError):
        b.peek(31, 21)  # not written


@pytest.mark.rfc("8684", "3.3.2")
def test_send_ack_beyond_sent_raises_without_change() -> None:
    b = DataSendBuffer(0, 100)
    b.write(b"x" * 20)
    b.take(10)
    with pytest.raises(DataLevelError):
        b.ack(12)  # acknowledges DSN 11, never handed out
    assert b.una == 1 and b.buffered == 20 and b.nxt == 11
    assert b.ack(11) == 10


@pytest.mark.rfc("8684", "3.3.3")
def test_send_data_fin_takes_one_dsn() -> None:
    b = DataSendBuffer(DSN_MASK - 2, 100)  # first byte: DSN 2**64 - 2
    b.write(b"0123")
    b.close()
    assert b.fin_queued and b.fin_dsn == 2
    with pytest.raises(DataLevelError):
        b.write(b"x")
    b.close()  # idempotent
    assert b.fin_dsn == 2
    # the DATA_FIN is not out before the last byte is: acking it is acking the unsent
    assert b.take(2) == (DSN_MASK - 1, b"01")
    with pytest.raises(DataLevelError):
        b.ack(3)
    assert b.take(10) == (0, b"23")
    assert b.fin_sent and b.max_ack == 3
    with pytest.raises(DataLevelError):
        b.ack(4)
    assert b.ack(2) == 4 and not b.fin_acked
    assert b.ack(3) == 0 and b.fin_acked
    assert b.una == 3 and b.nxt == 3 and b.end == 2  # una/nxt one past the DATA_FIN
    assert b.buffered == 0 and b.unmapped == 0 and b.in_flight == 0
    assert b.take(10) is None
    assert b.ack(3) == 0


@pytest.mark.rfc("8684", "3.3.3")
def test_send_data_fin_only_connection() -> None:
    b = DataSendBuffer(77, 10)
    b.close()
    assert b.fin_dsn == 78 and b.fin_sent
    assert b.ack(79) == 0 and b.fin_acked


@pytest.mark.rfc("8684", "3.3.3")
def test_send_data_fin_acked_with_the_data() -> None:
    b = DataSendBuffer(0, 10)
    b.write(b"abc")
    b.take(3)
    b.close()
    assert b.ack(5) == 3 and b.fin_acked


@pytest.mark.rfc("8684", "3.3.6")
def test_send_rewind_for_reinjection() -> None:
    b = DataSendBuffer(100, 1000)
    b.write(bytes(range(100)))
    assert b.take(60) == (101, bytes(range(60)))
    b.ack(111)
    with pytest.raises(DataLevelError):
        b.rewind(110)  # below una
    with pytest.raises(DataLevelError):
        b.rewind(162)  # above nxt
    b.rewind(121)
    assert b.nxt == 121 and b.unmapped == 80 and b.stats["rewinds"] == 1
    assert b.stats["rewound_bytes"] == 40
    assert b.take(10) == (121, bytes(range(20, 30)))
    # the peer acknowledges data sent before the rewind: fine, and nxt follows
    assert b.ack(151) == 40
    assert b.nxt == 151
    assert b.ack(161) == 10
    with pytest.raises(DataLevelError):
        b.ack(162)
    assert b.take(5) == (161, bytes(range(60, 65)))
    b.rewind(b.nxt)  # no-op rewind is allowed


def test_send_bad_arguments() -> None:
    with pytest.raises(DataLevelError):
        DataSendBuffer(MOD, 10)
    with pytest.raises(DataLevelError):
        DataSendBuffer(0, -1)
    b = DataSendBuffer(0, 10)
    with pytest.raises(DataLevelError):
        b.take(-1)
    with pytest.raises(DataLevelError):
        b.peek(1, -1)
    with pytest.raises(DataLevelError):
        b.ack(MOD)
    assert issubclass(DataLevelError, ValueError)


@pytest.mark.rfc("8684", "3.3.2")
@given(
    idsn=IDSNS,
    ops=st.lists(
        st.tuples(st.sampled_from(["write", "take", "ack", "rewind", "close", "peek"]),
                  st.integers(0, 70)),
        max_size=60,
    ),
)
def test_send_buffer_against_model(idsn: int, ops: list[tuple[str, int]]) -> None:
    """Random operations against a model in plain offsets (no wrap), DSNs compared mod 2**64."""
    cap = 100
    b = DataSendBuffer(idsn, cap)
    stream = bytearray()  # every byte written, from offset 1
    una = nxt = hi = 1
    fin: int | None = None
    fin_acked = False
    counter = 0
    for op, n in ops:
        end = 1 + len(stream)
        if op == "write":
            data = bytes((counter + i) & 0xFF for i in range(n))
            counter += n
            if fin is not None:
                with pytest.raises(DataLevelError):
                    b.write(data)
                continue
            k = min(n, cap - (end - una))
            assert b.write(data) == k
            stream += data[:k]
        elif op == "take":
            got = b.take(n)
            k = min(n, end - nxt)
            if k <= 0:
                assert got is None
            else:
                assert got == (d(idsn, nxt), bytes(stream[nxt - 1:nxt - 1 + k]))
                nxt += k
                hi = max(hi, nxt)
        elif op == "ack":
            target = una + n - 10  # some old, some new, some beyond
            limit = hi + (1 if fin is not None and hi >= fin else 0)
            if target > limit:
                with pytest.raises(DataLevelError):
                    b.ack(d(idsn, target))
            else:
                freed = b.ack(d(idsn, target))
                assert freed == max(0, min(target, end) - una)
                if target > una:
                    una = target
                    nxt = max(nxt, una)
                    if fin is not None and una > fin:
                        fin_acked = True
        elif op == "rewind":
            target = una + n
            if target > nxt:
                with pytest.raises(DataLevelError):
                    b.rewind(d(idsn, target))
            else:
                b.rewind(d(idsn, target))
                nxt = target
        elif op == "close":
            b.close()
            if fin is None:
                fin = end
        else:  # peek
            start = una + n // 2
            length = n // 3
            if start + length > end:
                with pytest.raises(DataLevelError):
                    b.peek(d(idsn, start), length)
            else:
                assert b.peek(d(idsn, start), length) == bytes(stream[start - 1:start - 1 + length])
        end = 1 + len(stream)
        assert (b.una, b.nxt, b.end) == (d(idsn, una), d(idsn, nxt), d(idsn, end))
        assert b.fin_dsn == (None if fin is None else d(idsn, fin))
        assert b.fin_acked == fin_acked
        assert b.free == max(0, cap - max(0, end - una))


# =========================================================================================
# DataReceiveBuffer
# =========================================================================================


@st.composite
def shuffled_segments(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A stream cut into segments, plus overlapping re-segmentations and exact duplicates,
    in random order; offsets from the first data byte (0)."""
    data = draw(st.binary(min_size=1, max_size=2000))
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=25))))
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    segs = [(bounds[i], data[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]
    for _ in range(draw(st.integers(0, 8))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        segs.append((a, data[a:b]))
    segs += draw(st.lists(st.sampled_from(segs), max_size=5))
    order = draw(st.permutations(range(len(segs))))
    return data, [segs[i] for i in order]


@pytest.mark.rfc("8684", "3.3.1")
@given(case=shuffled_segments(), idsn=IDSNS, reads=st.lists(st.integers(-1, 300), max_size=40),
       fin_first=st.booleans())
def test_recv_reassembles_any_order(case: tuple[bytes, list[tuple[int, bytes]]], idsn: int,
                                    reads: list[int], fin_first: bool) -> None:
    data, segs = case
    r = DataReceiveBuffer(idsn, 1 << 20)
    if fin_first:
        assert not r.data_fin(d(idsn, 1 + len(data)))
    out = bytearray()
    delivered = 0
    for i, (off, chunk) in enumerate(segs):
        got = r.insert(d(idsn, 1 + off), chunk)
        delivered += got
        assert r.rcv_nxt == d(idsn, 1 + delivered + r.fin_received)
        assert r.fin_received == (fin_first and delivered == len(data))
        assert r.readable + len(out) == delivered
        if i < len(reads):
            out += r.read(reads[i])
        assert r.readable + r.out_of_order_bytes + len(out) <= len(data)
        assert r.eof == (r.fin_received and r.readable == 0)
    assert delivered == len(data) and r.out_of_order_bytes == 0
    out += r.read()
    assert bytes(out) == data
    if not fin_first:
        assert not r.fin_received
        assert r.data_fin(d(idsn, 1 + len(data)))
    assert r.fin_received and r.eof
    assert r.rcv_nxt == d(idsn, len(data) + 2)  # the DATA_ACK covers the DATA_FIN
    assert r.stats["inserted"] == len(data) == r.stats["read"]
    total = sum(len(c) for _, c in segs)
    assert r.stats["duplicate_bytes"] == total - len(data)


@pytest.mark.rfc("8684", "3.3.1")
def test_recv_first_copy_wins() -> None:
    r = DataReceiveBuffer(0, 100)
    assert r.insert(11, b"BBBBB") == 0  # DSN 11..15 out of order
    assert r.out_of_order_bytes == 5
    assert r.insert(9, b"aaaaaaaaaa") == 0  # 9..18: new 9,10 and 16..18
    assert r.stats["duplicate_bytes"] == 5
    assert r.insert(1, b"xxxxxxxx") == 18
    assert r.read() == b"xxxxxxxx" + b"aa" + b"BBBBB" + b"aaa"
    assert r.insert(5, b"zzzz") == 0  # all before rcv_nxt
    assert r.stats["duplicate_bytes"] == 9
    assert r.out_of_order_ranges() == []


@pytest.mark.rfc("8684", "3.3.4")
def test_recv_window_and_right_edge() -> None:
    r = DataReceiveBuffer(DSN_MASK - 4, 10)  # first byte: DSN 2**64 - 4
    first = DSN_MASK - 3
    assert r.rcv_nxt == first and r.window == 10
    assert r.right_edge == 6
    # out of order within the window: kept, the right edge does not move
    assert r.insert(d(first, 6), b"6789ab") == 0
    assert r.stats["beyond_window"] == 2
    assert r.out_of_order_bytes == 4 and r.window == 10 and r.right_edge == 6
    assert r.free_space == 6
    assert r.insert(first, b"012345") == 10
    assert r.window == 0 and r.right_edge == 6 and r.readable == 10
    assert r.insert(6, b"x") == 0 and r.stats["beyond_window"] == 3
    assert r.read(4) == b"0123"
    assert r.window == 4 and r.right_edge == 10
    assert r.insert(6, b"abcdefg") == 4
    assert r.stats["beyond_window"] == 6
    assert r.read() == b"456789abcd"
    assert r.window == 10


@pytest.mark.rfc("8684", "3.3.3")
def test_recv_data_fin_after_and_before_data() -> None:
    r = DataReceiveBuffer(100, 100)
    assert r.insert(104, b"def") == 0
    assert not r.data_fin(107)  # bytes 101..103 missing
    assert r.fin_dsn == 107 and not r.fin_received
    assert r.data_fin(107) is False  # repeated: fine
    assert r.insert(101, b"abc") == 6
    assert r.fin_received and r.rcv_nxt == 108
    assert not r.eof
    assert r.read(5) == b"abcde" and not r.eof
    assert r.read() == b"f" and r.eof
    assert r.data_fin(107)
    assert r.insert(101, b"abc") == 0  # a late duplicate is harmless


@pytest.mark.rfc("8684", "3.3.3")
def test_recv_data_fin_conflicts() -> None:
    r = DataReceiveBuffer(0, 100)
    r.insert(1, b"abcd")
    with pytest.raises(DataLevelError):
        r.data_fin(3)  # before data already received
    r.insert(10, b"xy")
    with pytest.raises(DataLevelError):
        r.data_fin(8)  # before data held out of order
    assert r.fin_dsn is None
    r.data_fin(12)
    with pytest.raises(DataLevelError):
        r.data_fin(13)
    with pytest.raises(DataLevelError):
        r.insert(11, b"yz")  # DSN 12 is the DATA_FIN
    assert r.out_of_order_bytes == 2 and r.stats["inserted"] == 6
    assert r.insert(5, b"efghi") == 7
    assert r.fin_received and r.read() == b"abcdefghixy" and r.eof


@pytest.mark.rfc("8684", "3.3.3")
def test_recv_data_fin_with_no_data() -> None:
    r = DataReceiveBuffer(DSN_MASK, 10)
    assert r.rcv_nxt == 0
    assert r.data_fin(0)
    assert r.rcv_nxt == 1 and r.eof and r.read() == b""


def test_recv_bad_arguments() -> None:
    with pytest.raises(DataLevelError):
        DataReceiveBuffer(-1, 10)
    with pytest.raises(DataLevelError):
        DataReceiveBuffer(0, -1)
    r = DataReceiveBuffer(0, 10)
    with pytest.raises(DataLevelError):
        r.insert(MOD, b"x")
    assert r.insert(1, b"") == 0
    assert r.read(0) == b""


@pytest.mark.rfc("8684", "3.3.4")
@given(case=shuffled_segments(), idsn=IDSNS, cap=st.integers(0, 600),
       reads=st.lists(st.integers(0, 200), max_size=40))
def test_recv_bounded_by_capacity(case: tuple[bytes, list[tuple[int, bytes]]], idsn: int,
                                  cap: int, reads: list[int]) -> None:
    """With a small buffer: whatever is delivered is a prefix of the stream, held bytes never
    exceed the capacity, and the right edge never moves left."""
    data, segs = case
    r = DataReceiveBuffer(idsn, cap)
    out = bytearray()
    edge = 1 + cap  # offset of the right edge
    for i, (off, chunk) in enumerate(segs):
        r.insert(d(idsn, 1 + off), chunk)
        if i < len(reads):
            out += r.read(reads[i])
        assert r.readable + r.out_of_order_bytes <= cap
        new_edge = (r.right_edge - idsn) % MOD
        assert new_edge >= edge
        edge = new_edge
        assert r.window == cap - r.readable
    out += r.read()
    assert bytes(out) == data[:len(out)]


def test_recv_in_order_inserts_are_constant_time() -> None:
    """64 KB of 1-byte in-order inserts: the append fast path (no per-insert re-sorting)."""
    r = DataReceiveBuffer(DSN_MASK - 100, 1 << 20)
    dsn = r.rcv_nxt
    t0 = time.perf_counter()
    for i in range(65536):
        assert r.insert(dsn, b"%c" % (i & 0x7F)) == 1
        dsn = (dsn + 1) & DSN_MASK
    elapsed = time.perf_counter() - t0
    assert r.readable == 65536 and r.out_of_order_bytes == 0
    assert r.stats["ooo_pieces"] == 0
    assert elapsed < 2.0
    # a hole followed by a long in-order run queues at the end and drains in one go
    r2 = DataReceiveBuffer(0, 1 << 20)
    for i in range(2, 20002):
        r2.insert(i, b"x")
    assert r2.out_of_order_bytes == 20000
    assert r2.insert(1, b"y") == 20001
    assert r2.read() == b"y" + b"x" * 20000
