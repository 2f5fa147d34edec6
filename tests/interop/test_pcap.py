"""pcap / pcapng reading, the raw-IP pcap writer and link-layer decapsulation (mptcp.wire.pcap).

Files are built here byte by byte from the format descriptions (draft-ietf-opsawg-pcap,
draft-ietf-opsawg-pcapng) and, as an independent writer, with scapy.
"""

from __future__ import annotations

import contextlib
import io
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.wire.errors import WireError
from mptcp.wire.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Frame,
    PcapWriter,
    link_payload,
    read_frames,
    read_pcap,
    write_pcap,
)

V4 = bytes.fromhex("4500001c000000004011") + bytes(10) + bytes(8)  # a 28-byte IPv4/UDP packet
V6 = bytes.fromhex("6000000000003b40") + bytes(32)  # IPv6, no next header
ETH = bytes(12)  # Ethernet destination + source addresses


# --------------------------------------------------------------------------------------------
# hand-made files


def classic(
    order: str, magic: int, network: int, records: list[tuple[int, int, bytes, int]]
) -> bytes:
    """A classic pcap file: records are (seconds, fraction, data, original length)."""
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, network)
    for sec, frac, data, orig in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    return out


def ng_block(order: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def ng_opt(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def shb(order: str) -> bytes:
    return ng_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, link: int, snaplen: int = 0, options: bytes = b"") -> bytes:
    if options:
        options += ng_opt(order, 0, b"")
    return ng_block(order, 1, struct.pack(order + "HHI", link, 0, snaplen) + options)


def epb(order: str, iface: int, ticks: int, data: bytes, orig: int | None = None) -> bytes:
    head = struct.pack(
        order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
        len(data) if orig is None else orig,
    )
    # an epb_flags option after the data must be ignored
    opts = ng_opt(order, 2, struct.pack(order + "I", 1)) + ng_opt(order, 0, b"")
    return ng_block(order, 6, head + data + bytes(-len(data) % 4) + opts)


def spb(order: str, data: bytes, orig: int | None = None) -> bytes:
    return ng_block(order, 3, struct.pack(order + "I", len(data) if orig is None else orig) + data)


def frames(data: bytes) -> list[Frame]:
    return list(read_frames(io.BytesIO(data)))


# --------------------------------------------------------------------------------------------
# writer round trip


@pytest.mark.codec_fuzz
@given(
    st.lists(st.tuples(st.integers(0, 2**32 * 10**9 - 1), st.binary(max_size=80)), max_size=6),
    st.booleans(),
)
def test_writer_round_trip(packets: list[tuple[int, bytes]], nanos: bool) -> None:
    buf = io.BytesIO()
    w = PcapWriter(buf, nanosecond=nanos)
    for ts, pkt in packets:
        w.write_ns(pkt, ts)
    w.close()
    got = frames(buf.getvalue())
    assert [f.index for f in got] == list(range(len(packets)))
    assert [f.data for f in got] == [p for _, p in packets]
    assert [f.orig_len for f in got] == [len(p) for _, p in packets]
    assert {f.link_type for f in got} <= {LINKTYPE_RAW}
    want_ts = [ts if nanos else ts - ts % 1000 for ts, _ in packets]
    assert [f.timestamp_ns for f in got] == want_ts


def test_writer_file_and_float_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    assert write_pcap(path, [(1.5, V4), (2.25, V6)]) == 2
    got = list(read_pcap(path))
    assert [(p.index, p.timestamp, p.link_type, p.ip) for p in got] == [
        (0, 1.5, LINKTYPE_RAW, V4), (1, 2.25, LINKTYPE_RAW, V6),
    ]
    raw = path.read_bytes()
    assert struct.unpack_from("<IHHiIII", raw) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 101)


def test_writer_snaplen_truncates() -> None:
    buf = io.BytesIO()
    with PcapWriter(buf, snaplen=10) as w:
        w.write(V4, 0.0)
    (f,) = frames(buf.getvalue())
    assert f.data == V4[:10]
    assert f.orig_len == len(V4)


def test_scapy_reads_our_writer(tmp_path: Path) -> None:
    from scapy.utils import rdpcap

    path = tmp_path / "x.pcap"
    write_pcap(path, [(1.25, V4), (3.0, V6)], nanosecond=True)
    pkts = rdpcap(str(path))
    assert [bytes(p) for p in pkts] == [V4, V6]
    assert [float(p.time) for p in pkts] == [1.25, 3.0]


# --------------------------------------------------------------------------------------------
# classic pcap variants


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(("magic", "scale"), [(0xA1B2C3D4, 1000), (0xA1B23C4D, 1)])
def test_classic_orders_and_magics(order: str, magic: int, scale: int) -> None:
    data = classic(order, magic, LINKTYPE_RAW, [(7, 123, V4, 99), (8, 0, V6, len(V6))])
    got = frames(data)
    assert [(f.timestamp_ns, f.data, f.orig_len) for f in got] == [
        (7_000_000_000 + 123 * scale, V4, 99), (8_000_000_000, V6, len(V6)),
    ]
    assert got[0].offset == 24 + 16
    assert got[1].offset == 24 + 16 + len(V4) + 16


def test_classic_linktype_ignores_fcs_bits() -> None:
    # draft-ietf-opsawg-pcap §5: the upper bits of LinkType carry the FCS length
    data = classic("<", 0xA1B2C3D4, 0x14000000 | LINKTYPE_ETHERNET, [(0, 0, bytes(14), 14)])
    assert frames(data)[0].link_type == LINKTYPE_ETHERNET


def test_empty_capture_has_no_packets() -> None:
    assert frames(classic("<", 0xA1B2C3D4, 1, [])) == []
    assert frames(shb("<")) == []


# --------------------------------------------------------------------------------------------
# pcapng


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_blocks(order: str) -> None:
    data = (
        shb(order)
        + idb(order, LINKTYPE_RAW, 0, ng_opt(order, 9, b"\x09"))  # ns resolution
        + ng_block(order, 0x00000BAD, b"custom block to skip")
        + epb(order, 0, 5_000_000_123, V4)
        + ng_block(order, 4, b"\x00\x00\x00\x00")  # name resolution block: skipped
        + idb(order, LINKTYPE_ETHERNET)
        + epb(order, 1, 2_000_001, ETH + b"\x86\xdd" + V6, orig=200)  # default resolution: us
        + spb(order, V6)
        + ng_block(order, 5, bytes(12))  # interface statistics: skipped
    )
    got = frames(data)
    assert [f.index for f in got] == [0, 1, 2]
    assert [f.link_type for f in got] == [LINKTYPE_RAW, LINKTYPE_ETHERNET, LINKTYPE_RAW]
    assert [f.data for f in got] == [V4, ETH + b"\x86\xdd" + V6, V6]
    assert [f.orig_len for f in got] == [len(V4), 200, len(V6)]
    assert [f.timestamp_ns for f in got] == [5_000_000_123, 2_000_001_000, 0]
    assert data[got[0].offset : got[0].offset + len(V4)] == V4
    assert [p.ip for p in read_pcap(io.BytesIO(data))] == [V4, V6, V6]


def test_pcapng_power_of_two_resolution_and_offset() -> None:
    opts = ng_opt("<", 9, bytes([0x80 | 10])) + ng_opt("<", 14, struct.pack("<q", 100))
    data = shb("<") + idb("<", LINKTYPE_RAW, 0, opts) + epb("<", 0, 3 * 1024 + 512, V4)
    (f,) = frames(data)
    assert f.timestamp_ns == 103_500_000_000


def test_pcapng_simple_packet_respects_snaplen() -> None:
    data = shb("<") + idb("<", LINKTYPE_RAW, 20) + spb("<", V4)
    (f,) = frames(data)
    assert f.data == V4[:20]
    assert f.orig_len == len(V4)


def test_pcapng_sections_switch_byte_order() -> None:
    data = (
        shb("<") + idb("<", LINKTYPE_RAW) + epb("<", 0, 1, V4)
        + shb(">") + idb(">", LINKTYPE_IPV6) + epb(">", 0, 2, V6)
    )
    got = frames(data)
    assert [(f.index, f.link_type, f.data) for f in got] == [
        (0, LINKTYPE_RAW, V4), (1, LINKTYPE_IPV6, V6),
    ]


def test_pcapng_from_scapy(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcapng

    pkts = []
    for i in range(3):
        p = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1000 + i)
        p.time = 1_700_000_000 + i / 4
        pkts.append(p)
    path = tmp_path / "s.pcapng"
    wrpcapng(str(path), pkts)
    got = list(read_pcap(path))
    assert [g.ip for g in got] == [bytes(p)[14:] for p in pkts]
    assert [g.timestamp for g in got] == [float(p.time) for p in pkts]
    assert {g.link_type for g in got} == {LINKTYPE_ETHERNET}


# --------------------------------------------------------------------------------------------
# malformed files


def _bad_cases() -> list[tuple[str, bytes, int]]:
    good_rec = classic("<", 0xA1B2C3D4, 101, [(0, 0, V4, len(V4))])
    bad_trailer = bytearray(shb("<"))
    bad_trailer[-4:] = struct.pack("<I", 64)
    bad_bom = bytearray(shb("<"))
    bad_bom[8:12] = b"\x00\x00\x00\x00"
    return [
        ("empty", b"", 0),
        ("bad magic", b"GIF89a" + bytes(40), 0),
        ("short header", classic("<", 0xA1B2C3D4, 1, [])[:10], 10),
        ("wrong major", classic("<", 0xA1B2C3D4, 1, []).replace(b"\x02\x00", b"\x03\x00", 1), 4),
        ("short record header", good_rec[:30], 30),
        ("short record data", good_rec[:-3], len(good_rec) - 3),
        ("usec out of range",
         classic("<", 0xA1B2C3D4, 101, [(0, 1_000_000, b"", 0)]), 28),
        ("huge record", classic("<", 0xA1B2C3D4, 101, [])
         + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30), 32),
        ("pcapng bad bom", bytes(bad_bom), 8),
        ("pcapng bad trailer", bytes(bad_trailer), 24),
        ("pcapng length not multiple of 4",
         shb("<") + struct.pack("<II", 1, 13) + bytes(5), 28 + 4),
        ("pcapng truncated block", shb("<") + idb("<", 101)[:-2], 28 + 20 - 2),
        ("pcapng packet on undeclared interface", shb("<") + epb("<", 3, 0, V4), 28 + 8),
        ("pcapng spb before idb", shb("<") + spb("<", V4), 28 + 8),
        ("pcapng epb caplen overrun",
         shb("<") + idb("<", 101) + epb("<", 0, 0, V4)[:20] + struct.pack("<I", 999)
         + epb("<", 0, 0, V4)[24:], 28 + 20 + 8 + 12),
        ("pcapng option overrun",
         shb("<") + ng_block("<", 1, struct.pack("<HHI", 101, 0, 0) + struct.pack("<HH", 9, 40)),
         28 + 8 + 8 + 2),
    ]


@pytest.mark.parametrize(("name", "data", "offset"), _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_malformed_file_raises_with_offset(name: str, data: bytes, offset: int) -> None:
    with pytest.raises(WireError) as exc:
        frames(data)
    assert exc.value.offset == offset, exc.value.reason


@pytest.mark.codec_fuzz
@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        frames(data)


@pytest.mark.codec_fuzz
@given(st.sampled_from(["<", ">"]), st.sampled_from([0xA1B2C3D4, 0xA1B23C4D]),
       st.binary(max_size=200))
def test_arbitrary_records_behind_classic_header(order: str, magic: int, tail: bytes) -> None:
    try:
        got = frames(classic(order, magic, 1, []) + tail)
    except WireError as e:
        assert 24 <= e.offset <= 24 + len(tail)
    else:
        assert all(24 + 16 <= f.offset <= 24 + len(tail) for f in got)


_BLOCK = st.builds(
    lambda order, t, body: ng_block(order, t, body),
    st.just("<"), st.sampled_from([1, 2, 3, 5, 6, 0x0A0D0D0A, 0xBAD]), st.binary(max_size=40),
)


@pytest.mark.codec_fuzz
@given(st.lists(_BLOCK, max_size=5), st.binary(max_size=30))
def test_arbitrary_blocks_behind_pcapng_header(blocks: list[bytes], tail: bytes) -> None:
    try:
        frames(shb("<") + b"".join(blocks) + tail)
    except WireError as e:
        assert e.offset >= 0


# --------------------------------------------------------------------------------------------
# link layers


LINK_CASES: list[tuple[str, int, bytes, bytes | None]] = [
    ("raw v4", LINKTYPE_RAW, V4, V4),
    ("raw v6", LINKTYPE_RAW, V6, V6),
    ("raw not ip", LINKTYPE_RAW, b"\x20" + V4[1:], None),
    ("dlt12", 12, V4, V4),
    ("dlt14", 14, V6, V6),
    ("ipv4", LINKTYPE_IPV4, V4, V4),
    ("ipv6", LINKTYPE_IPV6, V6, V6),
    ("ether v4", LINKTYPE_ETHERNET, ETH + b"\x08\x00" + V4 + bytes(18), V4 + bytes(18)),
    ("ether v6", LINKTYPE_ETHERNET, ETH + b"\x86\xdd" + V6, V6),
    ("ether arp", LINKTYPE_ETHERNET, ETH + b"\x08\x06" + bytes(28), None),
    ("ether 802.3", LINKTYPE_ETHERNET, ETH + b"\x00\x2e" + bytes(46), None),
    ("vlan", LINKTYPE_ETHERNET, ETH + b"\x81\x00\x00\x05\x08\x00" + V4, V4),
    ("qinq", LINKTYPE_ETHERNET, ETH + b"\x88\xa8\x00\x05\x81\x00\x00\x06\x86\xdd" + V6, V6),
    ("sll v4", LINKTYPE_LINUX_SLL, bytes(14) + b"\x08\x00" + V4, V4),
    ("sll arp", LINKTYPE_LINUX_SLL, bytes(14) + b"\x08\x06" + bytes(28), None),
    ("sll2 v6", LINKTYPE_LINUX_SLL2, b"\x86\xdd" + bytes(18) + V6, V6),
    ("null le v4", LINKTYPE_NULL, b"\x02\x00\x00\x00" + V4, V4),
    ("null be v4", LINKTYPE_NULL, b"\x00\x00\x00\x02" + V4, V4),
    ("null linux v6", LINKTYPE_NULL, b"\x0a\x00\x00\x00" + V6, V6),
    ("null bsd v6", LINKTYPE_NULL, b"\x00\x00\x00\x18" + V6, V6),
    ("null freebsd v6", LINKTYPE_NULL, b"\x1c\x00\x00\x00" + V6, V6),
    ("null darwin v6", LINKTYPE_NULL, b"\x1e\x00\x00\x00" + V6, V6),
    ("null other", LINKTYPE_NULL, b"\x07\x00\x00\x00" + V4, None),
    ("loop v4", LINKTYPE_LOOP, b"\x00\x00\x00\x02" + V4, V4),
    ("unknown link type", 147, V4, None),
]


@pytest.mark.parametrize(("name", "link", "frame", "ip"), LINK_CASES,
                         ids=[c[0] for c in LINK_CASES])
def test_link_payload(name: str, link: int, frame: bytes, ip: bytes | None) -> None:
    assert link_payload(link, frame) == ip


@pytest.mark.parametrize(("link", "frame"), [
    (LINKTYPE_ETHERNET, bytes(13)),
    (LINKTYPE_ETHERNET, ETH + b"\x81\x00\x00\x05\x08"),
    (LINKTYPE_LINUX_SLL, bytes(15)),
    (LINKTYPE_LINUX_SLL2, bytes(19)),
    (LINKTYPE_NULL, b"\x02\x00"),
    (LINKTYPE_LOOP, b""),
    (LINKTYPE_RAW, b""),
])
def test_truncated_link_header_raises(link: int, frame: bytes) -> None:
    with pytest.raises(WireError) as exc:
        link_payload(link, frame, base=1000)
    assert exc.value.offset == 1000 + len(frame)


def test_scapy_link_layers_round_trip(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback
    from scapy.utils import wrpcap

    v4 = IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=5, dport=6)
    v6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=7, dport=8)
    cases = [
        (Ether() / v4, LINKTYPE_ETHERNET),
        (Ether() / Dot1Q(vlan=9) / v6, LINKTYPE_ETHERNET),
        (CookedLinux() / v4, LINKTYPE_LINUX_SLL),
        (CookedLinuxV2() / v6, LINKTYPE_LINUX_SLL2),
        (Loopback() / v4, LINKTYPE_NULL),
    ]
    for i, (pkt, link) in enumerate(cases):
        path = tmp_path / f"{i}.pcap"
        wrpcap(str(path), [pkt])
        (got,) = read_pcap(path)
        assert got.link_type == link
        want = v4 if IP in pkt else v6
        assert got.ip == bytes(want)
