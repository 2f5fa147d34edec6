"""virtio-net header codec (virtio spec v1.2 §5.1.6, linux/virtio_net.h) and the per-packet
``tx_header`` builder used by the TUN driver."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.io.driver import DriverError
from mptcp.io.vnet import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_ECN,
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP,
    HDR_NONE,
    VNET_HDR_LEN,
    VnetError,
    VnetHdr,
    parse_vnet,
    tx_header,
)
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.options import Mss, TcpOption, Timestamps
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, CWR, PSH, TcpHeader

SRC4, DST4 = bytes([10, 0, 2, 2]), bytes([10, 0, 1, 2])
SRC6, DST6 = bytes.fromhex("fd00000200000000" "0000000000000002"), bytes.fromhex(
    "fd00000100000000" "0000000000000002")


def v4(payload: int, *, options: tuple[TcpOption, ...] = (), flags: int = ACK,
       ip_opts: bytes = b"") -> bytes:
    ip = ipv4(SRC4, DST4, options=ip_opts)
    return Segment(ip, TcpHeader(1, 2, 3, 4, flags, 5, options=options),
                   bytes(payload)).to_bytes(partial=True)


def v6(payload: int, *, options: tuple[TcpOption, ...] = (), flags: int = ACK) -> bytes:
    return Segment(ipv6(SRC6, DST6), TcpHeader(1, 2, 3, 4, flags, 5, options=options),
                   bytes(payload)).to_bytes(partial=True)


def hdr(packet: bytes, gso: int = 0, partial: bool = True) -> VnetHdr:
    raw = tx_header(packet, gso, partial)
    assert len(raw) == VNET_HDR_LEN
    return parse_vnet(raw)[0]


# -- the header itself -------------------------------------------------------------------
def test_layout_is_little_endian_10_bytes() -> None:
    h = VnetHdr(F_NEEDS_CSUM, GSO_TCPV4, 0x0102, 0x0304, 0x0506, 0x0708)
    assert h.to_bytes() == bytes([1, 1, 2, 1, 4, 3, 6, 5, 8, 7])
    assert h.to_bytes(big_endian=True) == bytes([1, 1, 1, 2, 3, 4, 5, 6, 7, 8])


@given(
    st.sampled_from([0, F_NEEDS_CSUM, F_DATA_VALID, F_NEEDS_CSUM | F_DATA_VALID]),
    st.sampled_from([GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_TCPV4 | GSO_ECN]),
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF), st.booleans(), st.binary(max_size=20),
)
def test_round_trip(flags: int, gso_type: int, a: int, b: int, c: int, d: int, be: bool,
                    tail: bytes) -> None:
    h = VnetHdr(flags, gso_type, a, b, c, d)
    raw = h.to_bytes(big_endian=be)
    got, off = parse_vnet(raw + tail, big_endian=be)
    assert (got, off) == (h, VNET_HDR_LEN)
    assert got.to_bytes(big_endian=be) == raw
    assert got.csum_ok == bool(flags)
    # at an offset
    got2, off2 = parse_vnet(b"xyz" + raw, 3, big_endian=be)
    assert (got2, off2) == (h, 3 + VNET_HDR_LEN)


@pytest.mark.parametrize("raw, why", [
    (b"", "truncated"),
    (bytes(9), "truncated"),
    (bytes([8]) + bytes(9), "flags"),
    (bytes([0, 2]) + bytes(8), "gso_type"),
    (bytes([0, 0x86]) + bytes(8), "gso_type"),
])
def test_parse_rejects(raw: bytes, why: str) -> None:
    with pytest.raises(VnetError, match=why):
        parse_vnet(raw)


def test_error_is_a_driver_error() -> None:
    assert issubclass(VnetError, DriverError)
    with pytest.raises(VnetError):
        VnetHdr(0, 0, 70000).to_bytes()
    with pytest.raises(VnetError):
        parse_vnet(bytes(10), -1)


# -- tx_header ---------------------------------------------------------------------------
def test_plain_packet_needs_nothing() -> None:
    assert tx_header(v4(100), 0, False) is HDR_NONE
    assert tx_header(b"", 0, False) is HDR_NONE  # not even looked at


def test_v4_partial_checksum() -> None:
    h = hdr(v4(100))
    assert h == VnetHdr(F_NEEDS_CSUM, GSO_NONE, 40, 0, 20, 16)
    opts = (Mss(1460), Timestamps(1, 2))  # 4 + 10 -> 16 bytes with padding
    h = hdr(v4(100, options=opts))
    assert (h.hdr_len, h.csum_start, h.csum_offset) == (56, 20, 16)


def test_v4_with_ip_options() -> None:
    h = hdr(v4(10, ip_opts=b"\x01\x01\x01\x00"), 0)
    assert (h.hdr_len, h.csum_start) == (44, 24)
    h = hdr(v4(3000, ip_opts=b"\x01\x01\x01\x00"), 1000)
    assert (h.gso_type, h.gso_size, h.hdr_len, h.csum_start) == (GSO_TCPV4, 1000, 44, 24)


def test_v4_gso() -> None:
    pkt = v4(3 * 1448, options=(Timestamps(1, 2),))
    h = hdr(pkt, 1448)
    assert h == VnetHdr(F_NEEDS_CSUM, GSO_TCPV4, 52, 1448, 20, 16)
    # one segment's worth: not a GSO packet
    assert hdr(v4(1448), 1448).gso_type == GSO_NONE
    assert hdr(v4(1449), 1448).gso_type == GSO_TCPV4
    # CWR on a super-packet: the kernel keeps it on the first segment only (GSO_ECN)
    assert hdr(v4(5000, flags=ACK | CWR), 1000).gso_type == GSO_TCPV4 | GSO_ECN
    assert hdr(v4(500, flags=ACK | CWR), 1000).gso_type == GSO_NONE


def test_gso_with_full_checksum() -> None:
    h = hdr(v4(5000), 1000, partial=False)
    assert h == VnetHdr(0, GSO_TCPV4, 40, 1000, 0, 0)
    assert tx_header(v4(500), 1000, False) is HDR_NONE


def test_v6() -> None:
    assert hdr(v6(10)) == VnetHdr(F_NEEDS_CSUM, GSO_NONE, 60, 0, 40, 16)
    assert hdr(v6(9000, flags=ACK | PSH), 1440) == VnetHdr(
        F_NEEDS_CSUM, GSO_TCPV6, 60, 1440, 40, 16)


def test_v6_extension_headers_are_skipped() -> None:
    pkt = bytearray(v6(3000))
    # insert an 8-byte hop-by-hop header (next header TCP) behind the fixed header
    hbh = bytes([6, 0, 1, 4, 0, 0, 0, 0])
    pkt[6] = 0
    struct.pack_into("!H", pkt, 4, len(pkt) - 40 + 8)
    pkt = pkt[:40] + hbh + pkt[40:]
    h = hdr(bytes(pkt), 1000)
    assert (h.gso_type, h.hdr_len, h.csum_start) == (GSO_TCPV6, 68, 48)


def test_non_tcp() -> None:
    udp = bytearray(v4(100))
    udp[9] = 17
    assert tx_header(bytes(udp), 0, True) is HDR_NONE
    with pytest.raises(VnetError, match="TCP packets only"):
        tx_header(bytes(udp), 1000, True)


def test_repeated_calls_are_cached_and_distinct() -> None:
    a = tx_header(v4(5000), 1000, True)
    assert tx_header(v4(6000), 1000, True) is a
    assert tx_header(v4(5000), 1200, True) != a
    assert tx_header(v6(5000), 1000, True) != a
    assert tx_header(v4(5000, options=(Mss(1),)), 1000, True) != a


@pytest.mark.parametrize("packet, gso, why", [
    (b"", 0, "empty"),
    (bytes([0x50]) + bytes(59), 0, "IP version 5"),
    (bytes([0x44]) + bytes(59), 0, "IHL"),
    (v4(0)[:30], 0, "truncated"),
    (v6(0)[:50], 0, "truncated"),
    (v4(100)[:32] + b"\x40" + v4(100)[33:], 0, "data offset"),
    (v4(0)[:32] + b"\xf0" + v4(0)[33:], 0, "overruns"),
    (v4(5000), 70000, "gso_size"),
    (v4(5000), -1, "gso_size"),
    (v4(100), 70000, "gso_size"),
])
def test_tx_header_rejects(packet: bytes, gso: int, why: str) -> None:
    with pytest.raises(VnetError, match=why):
        tx_header(packet, gso, True)


@given(st.binary(max_size=120), st.integers(-5, 70000), st.booleans())
def test_tx_header_arbitrary_bytes(packet: bytes, gso: int, partial: bool) -> None:
    try:
        raw = tx_header(packet, gso, partial)
    except VnetError:
        return
    h, _ = parse_vnet(raw)
    if h.flags & F_NEEDS_CSUM:
        assert h.csum_offset == 16 and h.csum_start + 20 <= h.hdr_len <= len(packet)


@given(st.integers(0, 3000), st.integers(0, 10), st.sampled_from([4, 6]),
       st.integers(1, 1500), st.booleans())
def test_tx_header_fields(payload: int, opt_words: int, version: int, gso: int,
                          partial: bool) -> None:
    opts = tuple(Mss(1) for _ in range(opt_words))
    pkt = v4(payload, options=opts) if version == 4 else v6(payload, options=opts)
    ip_hl = 20 if version == 4 else 40
    h = hdr(pkt, gso, partial)
    is_gso = payload > gso
    if not is_gso and not partial:
        assert h == VnetHdr()
        return
    assert h.flags == (F_NEEDS_CSUM if partial else 0)
    assert h.hdr_len == ip_hl + 20 + 4 * opt_words
    assert h.gso_size == (gso if is_gso else 0)
    assert h.gso_type == ((GSO_TCPV4 if version == 4 else GSO_TCPV6) if is_gso else GSO_NONE)
    if partial:
        assert (h.csum_start, h.csum_offset) == (ip_hl, 16)
