"""MPTCP crypto helpers: token, IDSN, MP_JOIN / ADD_ADDR HMACs, DSS checksum (RFC 8684).

Each known answer is restated independently here: with hashlib / hmac from the standard
library following the RFC's key order and message layout, with vectors from the Linux
kernel's KUnit test (net/mptcp/crypto_test.c), with values Wireshark 4.0 displays for a
key, and with a naive word-by-word ones' complement loop for the DSS checksum.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.wire.checksum import internet_checksum, ones_sum
from mptcp.wire.mptcp_crypto import (
    add_addr_hmac,
    dss_checksum,
    dss_checksum_ok,
    dss_pseudo_sum,
    idsn,
    join_ack_hmac,
    join_hmac,
    join_synack_hmac,
    key_bytes,
    mptcp_hmac,
    token,
    token_and_idsn,
)

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)

KEY = 0x0102030405060708


# --- token and IDSN (RFC 8684 §3.1) --------------------------------------------------------


@pytest.mark.rfc("8684", "3.1")
def test_token_idsn_fixed_key_against_hashlib() -> None:
    digest = hashlib.sha256(bytes([1, 2, 3, 4, 5, 6, 7, 8])).digest()
    assert token(KEY) == int.from_bytes(digest[:4], "big")
    assert idsn(KEY) == int.from_bytes(digest[-8:], "big")
    assert token_and_idsn(KEY) == (token(KEY), idsn(KEY))


@pytest.mark.rfc("8684", "3.1")
def test_token_idsn_match_wireshark() -> None:
    """Wireshark 4.0.17 shows, for Sender's Key 0x0102030405060708, "Subflow token generated
    from key: 1719930330" and "Subflow expected IDSN: 17699430019826020210"."""
    assert token(KEY) == 1719930330
    assert idsn(KEY) == 17699430019826020210


@pytest.mark.rfc("8684", "3.1")
def test_key_hashed_in_network_byte_order() -> None:
    """"the key MUST be hashed in network byte order": a little-endian hash differs."""
    assert key_bytes(KEY) == bytes.fromhex("0102030405060708")
    le = hashlib.sha256(KEY.to_bytes(8, "little")).digest()
    assert token(KEY) != int.from_bytes(le[:4], "big")


@pytest.mark.rfc("8684", "3.1")
@given(u64)
def test_token_idsn_any_key(key: int) -> None:
    d = hashlib.sha256(struct.pack("!Q", key)).digest()
    assert token_and_idsn(key) == (
        int.from_bytes(d[:4], "big"), int.from_bytes(d[24:], "big")
    )
    assert 0 <= token(key) < 2**32 and 0 <= idsn(key) < 2**64


# --- HMAC (RFC 8684 §3.2, §3.4.1) ----------------------------------------------------------

# Linux net/mptcp/crypto_test.c: the key and message strings are fed as ASCII bytes (the
# 16-byte key is read as two big-endian u64, the 8-byte message as two big-endian u32).
KUNIT_VECTORS = [
    (b"0b0b0b0b0b0b0b0b", b"48692054",
     "8385e24fb4235ac37556b6b886db106284a1da671699f46db1f235ec622dcafa"),
    (b"aaaaaaaaaaaaaaaa", b"dddddddd",
     "2c5e219164ff1dca1c4a92318d847bb6b9d44492984e1eb71aff9022f71046e9"),
    (b"0102030405060708", b"cdcdcdcd",
     "e73b9ba9969969cefb04aa0d6df18ec2fcc075b6f23b4d8c4da736a5dbbc6e7d"),
]


@pytest.mark.rfc("8684", "3.2")
@pytest.mark.parametrize(("key", "msg", "expected"), KUNIT_VECTORS)
def test_hmac_linux_kunit_vectors(key: bytes, msg: bytes, expected: str) -> None:
    k1 = int.from_bytes(key[:8], "big")
    k2 = int.from_bytes(key[8:], "big")
    assert mptcp_hmac(k1, k2, msg).hex() == expected
    n1 = int.from_bytes(msg[:4], "big")
    n2 = int.from_bytes(msg[4:], "big")
    assert join_hmac(k1, k2, n1, n2).hex() == expected
    # the truncations: SYN/ACK leftmost 64 bits, third ACK leftmost 160 bits
    assert join_synack_hmac(k1, k2, n1, n2).hex() == expected[:16]
    assert join_ack_hmac(k1, k2, n1, n2).hex() == expected[:40]


@pytest.mark.rfc("8684", "3.2")
@given(key_a=u64, key_b=u64, r_a=u32, r_b=u32)
def test_join_hmacs_restated(key_a: int, key_b: int, r_a: int, r_b: int) -> None:
    """Figure 8: HMAC-A = HMAC(Key=(Key-A + Key-B), Msg=(R-A + R-B)) truncated to the leftmost
    160 bits for the ACK; HMAC-B = HMAC(Key=(Key-B + Key-A), Msg=(R-B + R-A)) truncated to
    the leftmost 64 bits for the SYN/ACK."""
    ka, kb = struct.pack("!Q", key_a), struct.pack("!Q", key_b)
    ra, rb = struct.pack("!I", r_a), struct.pack("!I", r_b)
    hmac_a = hmac.new(ka + kb, ra + rb, hashlib.sha256).digest()
    hmac_b = hmac.new(kb + ka, rb + ra, hashlib.sha256).digest()
    assert join_ack_hmac(key_a, key_b, r_a, r_b) == hmac_a[:20]
    assert join_synack_hmac(key_b, key_a, r_b, r_a) == hmac_b[:8]
    assert len(join_ack_hmac(key_a, key_b, r_a, r_b)) == 20
    assert len(join_synack_hmac(key_b, key_a, r_b, r_a)) == 8


@pytest.mark.rfc("8684", "3.2")
def test_join_hmac_key_order_matters() -> None:
    assert join_hmac(1, 2, 3, 4) != join_hmac(2, 1, 3, 4)
    assert join_hmac(1, 2, 3, 4) != join_hmac(1, 2, 4, 3)


@pytest.mark.rfc("8684", "3.4.1")
@given(
    k_s=u64, k_r=u64, aid=st.integers(0, 255),
    addr=st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16),
    port=st.none() | st.integers(0, 0xFFFF),
)
def test_add_addr_hmac_restated(
    k_s: int, k_r: int, aid: int, addr: bytes, port: int | None
) -> None:
    """Rightmost 64 bits of HMAC(K_sender ‖ K_receiver, Address ID ‖ address ‖ port), with
    two zero octets when no port is present."""
    key = struct.pack("!QQ", k_s, k_r)
    msg = bytes([aid]) + addr + struct.pack("!H", 0 if port is None else port)
    expected = hmac.new(key, msg, hashlib.sha256).digest()[-8:]
    assert add_addr_hmac(k_s, k_r, aid, addr, port) == expected


@pytest.mark.rfc("8684", "3.4.1")
def test_add_addr_hmac_no_port_is_zero_port() -> None:
    addr = bytes([10, 0, 0, 2])
    assert add_addr_hmac(KEY, 7, 1, addr, None) == add_addr_hmac(KEY, 7, 1, addr, 0)
    assert add_addr_hmac(KEY, 7, 1, addr, None) != add_addr_hmac(KEY, 7, 1, addr, 80)
    # rightmost, not leftmost, 64 bits
    full = mptcp_hmac(KEY, 7, bytes([1]) + addr + b"\0\0")
    assert add_addr_hmac(KEY, 7, 1, addr, None) == full[24:]
    assert full[24:] != full[:8]


# --- DSS checksum (RFC 8684 §3.3.1) --------------------------------------------------------


def _naive_ones_sum(data: bytes) -> int:
    """RFC 1071 ones' complement sum with end-around carry, one 16-bit word at a time."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _naive_dss_checksum(dsn: int, ssn: int, length: int, payload: bytes) -> int:
    # Figure 10: DSN (8 octets), SSN (4 octets), Data-Level Length (2 octets), zeros (2).
    pseudo = struct.pack("!QIHH", dsn, ssn, length, 0)
    return ~_naive_ones_sum(pseudo + payload) & 0xFFFF


@pytest.mark.rfc("8684", "3.3.1")
def test_dss_checksum_hand_computed() -> None:
    # words: 0,0,0,1 (DSN) 0,1 (SSN) 1 (length) 0 (zeros) 0x0000 (payload, padded):
    # sum 3, checksum ~3 = 0xFFFC
    assert dss_checksum(1, 1, 1, b"\0") == 0xFFFC
    # DSN high bits count: the 64-bit DSN is used even if only 32 bits are on the wire
    assert dss_checksum(1 << 32, 0, 0, b"") != dss_checksum(0, 0, 0, b"")


@pytest.mark.rfc("8684", "3.3.1")
@given(dsn=u64, ssn=u32, length=st.integers(0, 0xFFFF), payload=st.binary(max_size=300))
def test_dss_checksum_matches_naive_loop(dsn: int, ssn: int, length: int, payload: bytes) -> None:
    csum = dss_checksum(dsn, ssn, length, payload)
    naive = _naive_dss_checksum(dsn, ssn, length, payload)
    assert csum == naive
    # the checksum in place of the zero field: everything sums to 0xFFFF
    assert _naive_ones_sum(struct.pack("!QIHH", dsn, ssn, length, csum) + payload) == 0xFFFF
    assert dss_checksum_ok(dsn, ssn, length, payload, csum)


@pytest.mark.rfc("8684", "3.3.1")
def test_dss_checksum_ok_accepts_both_zeros() -> None:
    """A mapping whose sum is 0xFFFF has checksum 0x0000; a receiver summing the TCP way
    (RFC 1071) also accepts the other ones' complement zero, 0xFFFF, and rejects others."""
    # pseudo-header words 0xFFFF (DSN low word) -> sum 0xFFFF
    assert dss_checksum(0xFFFF, 0, 0, b"") == 0
    assert dss_checksum_ok(0xFFFF, 0, 0, b"", 0)
    assert dss_checksum_ok(0xFFFF, 0, 0, b"", 0xFFFF)
    assert not dss_checksum_ok(0xFFFF, 0, 0, b"", 1)


@pytest.mark.rfc("8684", "3.3.1")
@given(
    dsn=u64, ssn=u32, length=st.integers(0, 0xFFFF), payload=st.binary(min_size=1, max_size=64),
    where=st.integers(0, 1 << 16), bit=st.integers(0, 7),
)
def test_dss_checksum_detects_a_flipped_bit(
    dsn: int, ssn: int, length: int, payload: bytes, where: int, bit: int
) -> None:
    csum = dss_checksum(dsn, ssn, length, payload)
    bad = bytearray(payload)
    bad[where % len(bad)] ^= 1 << bit
    assert not dss_checksum_ok(dsn, ssn, length, bytes(bad), csum)


@pytest.mark.rfc("8684", "3.3.1")
@given(
    dsn=u64, ssn=u32, length=st.integers(0, 0xFFFF),
    segs=st.lists(st.binary(max_size=40).map(lambda b: b + b"\0" * (len(b) % 2)), max_size=5),
    last=st.binary(max_size=41),
)
def test_dss_checksum_is_additive_over_segments(
    dsn: int, ssn: int, length: int, segs: list[bytes], last: bytes
) -> None:
    """"the checksum for a DSN_MAP can be constructed by simply adding together the checksums
    for the data of each constituent TCP segment [and] the DSS pseudo-header": per-segment
    sums (even-length segments, any last one) plus :func:`dss_pseudo_sum` give the same value
    as the naive loop over the whole mapping."""
    total = dss_pseudo_sum(dsn, ssn, length) + sum(ones_sum(s) for s in segs)
    csum = internet_checksum(last, total)
    naive = _naive_dss_checksum(dsn, ssn, length, b"".join(segs) + last)
    assert csum == naive
