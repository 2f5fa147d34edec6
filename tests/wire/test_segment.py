"""IPv4/IPv6 + TCP header codecs and whole segments, with scapy as an independent oracle."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment

from mptcp.wire.errors import WireError
from mptcp.wire.ip import ECN_CE, IPv4Header, IPv6Header, ipv4, ipv6
from mptcp.wire.segment import Segment, checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, AE, CWR, ECE, SYN, TcpHeader, flags_text, parse_tcp
from tests.strategies import base as sb


def _computed_fields_cleared(seg: Segment) -> Segment:
    ip = seg.ip
    ip = ip._replace(total_length=0, checksum=0) if isinstance(ip, IPv4Header) \
        else ip._replace(payload_length=0)
    return Segment(ip, seg.tcp._replace(checksum=0), seg.payload)


@pytest.mark.codec_fuzz
@pytest.mark.rfc("9293", "3.1")
@given(sb.segments())
def test_segment_roundtrip(seg: Segment) -> None:
    raw = seg.to_bytes()
    assert checksum_ok(raw)
    parsed = parse_segment(raw)
    assert _computed_fields_cleared(parsed) == seg
    assert parsed.to_bytes() == raw


@pytest.mark.rfc("9293", "3.1")
@given(sb.segments(max_payload=200, pool=sb.scapy_safe_option))
def test_scapy_agrees_on_header_fields(seg: Segment) -> None:
    raw = seg.to_bytes()
    pkt = IP(raw) if raw[0] >> 4 == 4 else IPv6(raw)
    tcp = pkt[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.window, tcp.urgptr) == (
        seg.tcp.sport, seg.tcp.dport, seg.tcp.seq, seg.tcp.ack, seg.tcp.window, seg.tcp.urgent)
    assert int(tcp.flags) | (tcp.reserved << 9) == seg.tcp.flags
    assert bytes(tcp.payload) == seg.payload
    # scapy recomputes the checksums when they are deleted: must equal ours
    del tcp.chksum
    if raw[0] >> 4 == 4:
        del pkt[IP].chksum
    assert bytes(pkt) == raw


@pytest.mark.codec_fuzz
@given(st.binary(max_size=120))
def test_arbitrary_bytes_parse_or_wireerror(raw: bytes) -> None:
    with contextlib.suppress(WireError):
        parse_segment(raw)


@pytest.mark.codec_fuzz
@given(sb.segments(max_payload=40), st.data())
def test_mutated_segments_parse_or_wireerror(seg: Segment, data: st.DataObject) -> None:
    raw = bytearray(seg.to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        parse_segment(bytes(raw[:cut]))
    except WireError as e:
        assert 0 <= e.offset <= len(raw)


@pytest.mark.rfc("9768", "3.1")
def test_all_twelve_flag_bits_kept() -> None:
    for flags in (AE, AE | CWR | ECE | SYN, 0xE00, 0xFFF):
        seg = Segment(ipv4(b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"),
                      TcpHeader(1, 2, 3, 4, flags, 5))
        raw = seg.to_bytes()
        assert raw[32] & 0x0F == flags >> 8 and raw[33] == flags & 0xFF
        assert parse_segment(raw).tcp.flags == flags
    assert flags_text(SYN | ACK | AE) == "AE|ACK|SYN"


@pytest.mark.rfc("3168", "5")
def test_ecn_field() -> None:
    seg = Segment(ipv6(bytes(16), bytes(16), traffic_class=0xB8 | ECN_CE), TcpHeader(1, 2, 3, 4,
                                                                                       ACK, 5))
    assert parse_segment(seg.to_bytes()).ip.ecn == ECN_CE
    v4 = Segment(ipv4(bytes(4), bytes(4), tos=2), TcpHeader(1, 2, 3, 4, ACK, 5))
    assert parse_segment(v4.to_bytes()).ip.ecn == 2


def test_ipv6_extension_headers_walked_and_kept() -> None:
    pkt = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrDestOpt() / TCP(sport=7, dport=9)
    raw = bytes(pkt)
    seg = parse_segment(raw)
    assert isinstance(seg.ip, IPv6Header)
    assert seg.tcp.sport == 7 and seg.ip.next_header == 60 and len(seg.ip.ext) == 8
    assert seg.to_bytes() == raw
    frag = bytes(IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(offset=3) / TCP())
    with pytest.raises(WireError, match="fragment"):
        parse_segment(frag)


@pytest.mark.rfc("9293", "3.1")
def test_header_errors() -> None:
    good = Segment(ipv4(bytes(4), bytes(4)), TcpHeader(1, 2, 3, 4, ACK, 5)).to_bytes()
    cases = {
        "empty": (b"", 0),
        "version": (b"\x50" + good[1:], 0),
        "ihl": (b"\x44" + good[1:], 0),
        "total length": (good[:2] + b"\x00\xff" + good[4:], 2),
        "not tcp": (good[:9] + b"\x11" + good[10:], 20),
        "data offset": (good[:32] + b"\x40" + good[33:], 32),
        "data offset overrun": (good[:32] + b"\xf0" + good[33:], 32),
        "fragment": (good[:6] + b"\x20\x00" + good[8:], 6),
        "truncated": (good[:30], 2),
    }
    for name, (raw, offset) in cases.items():
        with pytest.raises(WireError) as e:
            parse_segment(raw)
        assert e.value.offset == offset, name
    with pytest.raises(WireError):
        parse_tcp(b"\x00" * 19)


def test_checksum_ok_detects_corruption() -> None:
    raw = bytearray(Segment(ipv4(bytes(4), bytes(4)), TcpHeader(1, 2, 3, 4, ACK, 5),
                            b"hello").to_bytes())
    assert checksum_ok(bytes(raw))
    raw[-1] ^= 1
    assert not checksum_ok(bytes(raw))


@pytest.mark.rfc("9293", "3.1")
@given(sb.segments())
def test_partial_checksum_completes_to_the_full_one(seg: Segment) -> None:
    """``to_bytes(partial=True)`` (checksum offload) leaves the pseudo-header sum in the TCP
    checksum field; summing the TCP segment from there, as a NIC or the kernel does for
    CHECKSUM_PARTIAL, gives exactly the checksum ``to_bytes()`` computes itself."""
    from mptcp.wire.checksum import internet_checksum

    full = seg.to_bytes()
    part = seg.to_bytes(partial=True)
    start = len(full) - len(seg.tcp.to_bytes()) - len(seg.payload)
    assert part[:start + 16] == full[:start + 16]
    assert part[start + 18:] == full[start + 18:]
    completed = internet_checksum(part[start:])
    want = int.from_bytes(full[start + 16:start + 18], "big")
    assert completed == want or {completed, want} == {0, 0xFFFF}
