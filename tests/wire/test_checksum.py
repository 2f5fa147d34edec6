"""Internet checksum (RFC 1071) and pseudo-header sums against a naive word loop."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.wire.checksum import finish, internet_checksum, ones_sum, pseudo_v4, verify


def naive(data: bytes, initial_words: tuple[int, ...] = ()) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(initial_words)
    for i in range(0, len(data), 2):
        s += data[i] << 8 | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@pytest.mark.codec_fuzz
@pytest.mark.rfc("1071", "4.1")
@given(st.binary(max_size=3000))
def test_checksum_equals_naive_loop(data: bytes) -> None:
    assert internet_checksum(data) == naive(data)


@pytest.mark.rfc("1071", "4.1")
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_sums_add_across_even_split(a: bytes, b: bytes) -> None:
    if len(a) % 2:
        a += b"\x00"
    whole = internet_checksum(a + b)
    assert finish(int.from_bytes(a, "big") + (int.from_bytes(b, "big") << (8 * (len(b) % 2)))) \
        == whole


@pytest.mark.rfc("1071", "4.1")
@given(st.binary(min_size=1, max_size=500))
def test_data_with_its_checksum_verifies(data: bytes) -> None:
    if len(data) % 2:
        data += b"\x00"
    c = internet_checksum(data)
    assert verify(data + c.to_bytes(2, "big"))
    assert ones_sum(data + c.to_bytes(2, "big")) == 0  # 0xFFFF is 0 modulo 0xFFFF


def test_edge_values() -> None:
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\x00\x00\x00") == 0xFFFF
    assert internet_checksum(b"\xff\xff") == 0x0000
    assert internet_checksum(b"\xff\xfe\x00\x01") == 0x0000
    assert not verify(b"\x00\x00")


@pytest.mark.rfc("9293", "3.1")
def test_pseudo_header_v4_matches_byte_layout() -> None:
    src, dst = bytes((10, 0, 0, 1)), bytes((192, 0, 2, 7))
    tcp = bytes(range(21))
    layout = src + dst + b"\x00\x06" + len(tcp).to_bytes(2, "big")
    assert internet_checksum(tcp, pseudo_v4(src, dst, 6, len(tcp))) == naive(layout + tcp)


@pytest.mark.rfc("1071", "4.1")
def test_payload_sum_every_length() -> None:
    """The folds of ``payload_sum`` (unrolled up to 1500 bytes, a loop above) keep the sum
    modulo 0xFFFF, keep zero apart from non-zero, and end below 2**2064."""
    from mptcp.wire.checksum import payload_sum

    rng = random.Random(1071)
    for n in [*range(0, 3100), 9000, 9001, 65535]:
        for data in (rng.randbytes(n), b"\xff" * n, bytes(n)):
            full = int.from_bytes(data, "big") << (8 * (n & 1))
            got = payload_sum(data)
            assert got % 0xFFFF == full % 0xFFFF and (got == 0) == (full == 0), n
            assert 0 <= got < 1 << 2064, n
            assert payload_sum(memoryview(data)) == got
