"""``decode_pcap`` / ``mptcp-lab decode``: record shape, link types, errors, text and CLI."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accecn.option import AccEcnOption
from interop.cli import main as cli_main
from interop.decode import decode_ip, decode_pcap, format_record, iter_decode, option_json
from mptcp.wire.ip import ipv4, ipv6
from mptcp.wire.mptcp_handshake import MpCapable
from mptcp.wire.mptcp_options import AddAddr, RemoveAddr
from mptcp.wire.options import NOP, Mss, SackPermitted, TcpOption, Timestamps, UnknownOption
from mptcp.wire.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapWriter,
    write_pcap,
)
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK, AE, CWR, ECE, PSH, SYN, TcpHeader
from tcpinc.eno_option import EnoOption, GlobalSuboption, Tep
from tests.strategies.base import segments
from tests.strategies.ext import accecn_options, eno_options
from tests.strategies.mptcp import any_mptcp_option

A4, B4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db800000000000000000000abcd")
RECORD_KEYS = [
    "index", "src", "dst", "sport", "dport", "seq", "ack", "flags", "payload_len", "ace",
    "accecn", "mptcp", "options",
]


def seg4(opts: tuple[TcpOption, ...] = (), flags: int = ACK, payload: bytes = b"") -> bytes:
    tcp = TcpHeader(40000, 443, 0xDEADBEEF, 0x01020304, flags, 512, 0, 0, opts)
    return Segment(ipv4(A4, B4), tcp, payload).to_bytes()


def seg6(opts: tuple[TcpOption, ...] = (), flags: int = ACK, payload: bytes = b"") -> bytes:
    tcp = TcpHeader(5201, 33000, 7, 9, flags, 65535, 0, 0, opts)
    return Segment(ipv6(A6, B6), tcp, payload).to_bytes()


def pcap_of(tmp_path: Path, frames: list[bytes], link: int = LINKTYPE_RAW) -> Path:
    path = tmp_path / "t.pcap"
    write_pcap(path, [(1.0 + i, f) for i, f in enumerate(frames)], link)
    return path


def with_raw_options(opts: bytes, payload: bytes = b"") -> bytes:
    """An IPv4/TCP packet whose option bytes are given verbatim (checksums left stale)."""
    assert len(opts) % 4 == 0
    base = seg4()
    tcp = bytearray(base[20:40])
    tcp[12] = ((20 + len(opts)) // 4) << 4
    ip = bytearray(base[:20])
    ip[2:4] = struct.pack("!H", 40 + len(opts) + len(payload))
    return bytes(ip) + bytes(tcp) + opts + payload


UDP4 = bytes.fromhex("4500001c00000000401100000a0000010a000002") + bytes.fromhex("0035003500080000")


# --------------------------------------------------------------------------------------------
# record shape and values


@pytest.mark.rfc("9293", "3.1")
@pytest.mark.rfc("9768", "3.2.2")
def test_record_shape_and_header_fields(tmp_path: Path) -> None:
    flags = SYN | ACK | AE | ECE  # ACE = AE,CWR,ECE = 1,0,1
    frames = [seg4((Mss(1460), NOP, NOP, SackPermitted()), flags, b"hello"), seg6()]
    recs = decode_pcap(pcap_of(tmp_path, frames))
    assert [list(r) for r in recs] == [RECORD_KEYS, RECORD_KEYS]
    r = recs[0]
    assert (r["index"], r["src"], r["dst"], r["sport"], r["dport"]) == (
        0, "192.0.2.1", "198.51.100.7", 40000, 443,
    )
    assert (r["seq"], r["ack"], r["flags"], r["payload_len"]) == (0xDEADBEEF, 0x01020304, 0x152, 5)
    assert r["ace"] == 0b101
    assert r["accecn"] is None
    assert r["mptcp"] == []
    assert r["options"] == [
        {"kind": 2, "name": "MSS", "mss": 1460},
        {"kind": 1, "name": "NOP"}, {"kind": 1, "name": "NOP"},
        {"kind": 4, "name": "SACK_PERM"},
    ]
    assert (recs[1]["src"], recs[1]["dst"]) == ("2001:db8::1", "2001:db8::abcd")
    assert recs[1]["ace"] == 0
    json.dumps(recs)  # JSON-serializable


@pytest.mark.rfc("8684", "3.3")
def test_mptcp_fields_from_hand_made_bytes(tmp_path: Path) -> None:
    # RFC 8684 §3.3 Figure 9: flags A|a|M (0x07): 8-byte data ACK, 4-byte DSN, SSN, length,
    # checksum -> length 4 + 8 + 4 + 4 + 2 + 2 = 24
    dss = bytes.fromhex("1e182007" "0000000100000002" "00000003" "00000004" "0005" "abcd")
    # RFC 8684 §3.4.1: ADD_ADDR IPv4 with HMAC, no port (length 16), address ID 9
    add = bytes.fromhex("1e10" "3009" "c0000263" "0102030405060708")
    raw = with_raw_options(dss + add)
    rec = decode_ip(3, raw)
    assert rec is not None
    assert "error" not in rec
    assert rec["mptcp"] == [
        {"subtype": "DSS", "flags": 0x07, "data_ack": 0x100000002, "dsn": 3, "ssn": 4,
         "data_level_length": 5, "checksum": 0xABCD, "data_fin": False},
        {"subtype": "ADD_ADDR", "flags": 0, "echo": False, "address_id": 9,
         "address": "192.0.2.99", "hmac": "0102030405060708"},
    ]
    assert [o["name"] for o in rec["options"]] == ["MPTCP", "MPTCP"]
    assert rec["options"][0] == {"kind": 30, "name": "MPTCP", **rec["mptcp"][0]}


@pytest.mark.rfc("9768", "3.2.3")
def test_first_accecn_option_is_the_summary(tmp_path: Path) -> None:
    first = AccEcnOption.of(1, ee1b=1, eceb=2, ee0b=3)
    second = AccEcnOption.of(0, ee0b=4)
    rec = decode_ip(0, seg4((first, second, NOP, NOP)))
    assert rec is not None
    assert rec["accecn"] == {"order": 1, "ee0b": 3, "eceb": 2, "ee1b": 1}
    assert [o["kind"] for o in rec["options"][:2]] == [174, 172]
    assert rec["options"][1] == {"kind": 172, "name": "AccECN0", "order": 0, "ee0b": 4}


@pytest.mark.rfc("8547", "4.1")
def test_eno_option_uses_its_json() -> None:
    eno = EnoOption((GlobalSuboption(1), Tep(0x21)))
    rec = decode_ip(0, seg6((eno, NOP), SYN))
    assert rec is not None
    assert rec["options"][0] == {"kind": 69, "name": "ENO", **{
        k: v for k, v in eno.to_json().items() if k != "kind"}}
    assert rec["options"][0]["suboptions"][1]["id"] == 0x21


def test_base_option_forms() -> None:
    opts: tuple[TcpOption, ...] = (Timestamps(1, 2), UnknownOption(99, b"\xab"), NOP)
    rec = decode_ip(0, seg4(opts))
    assert rec is not None
    assert rec["options"] == [
        {"kind": 8, "name": "TS", "tsval": 1, "tsecr": 2},
        {"kind": 99, "name": "UNKNOWN", "data": "ab"},
        {"kind": 1, "name": "NOP"},
        {"kind": 0, "name": "EOL", "padding": "00"},  # 14 option bytes, zero-padded to 16
    ]
    assert option_json(Mss(9000)) == {"kind": 2, "name": "MSS", "mss": 9000}


# --------------------------------------------------------------------------------------------
# skipping, counting, errors


def test_non_tcp_packets_are_skipped_but_counted(tmp_path: Path) -> None:
    icmp6 = bytes.fromhex("6000000000083a40") + A6 + B6 + bytes(8)
    frames = [UDP4, seg4(), icmp6, b"\x20garbage", seg6()]
    recs = decode_pcap(pcap_of(tmp_path, frames))
    assert [r["index"] for r in recs] == [1, 4]


@pytest.mark.rfc("8684", "3.3")
def test_malformed_packet_gets_error_and_decoding_continues(tmp_path: Path) -> None:
    good = seg4((Mss(1400), NOP, NOP))
    # MSS, then a DSS whose flags say "4-byte data ACK" (A) but whose length byte says 10:
    # no such layout (§3.3, Figure 9); then two NOPs
    bad_bytes = with_raw_options(bytes.fromhex("02040578" "1e0a2001" "000000050000" "0101"))
    tcp_off = 20
    recs = decode_pcap(pcap_of(tmp_path, [good, bad_bytes, seg6()]))
    assert [r["index"] for r in recs] == [0, 1, 2]
    err = recs[1]
    assert "MPTCP DSS" in err["error"]
    assert err["error"].startswith(f"at byte {tcp_off + 20 + 4 + 1}:")
    assert (err["src"], err["sport"], err["dport"], err["seq"]) == ("192.0.2.1", 40000, 443,
                                                                      0xDEADBEEF)
    assert err["options"] == [{"kind": 2, "name": "MSS", "mss": 1400}]
    assert err["mptcp"] == []
    assert "error" not in recs[0] and "error" not in recs[2]


def test_truncated_capture_and_bad_ip_are_errors(tmp_path: Path) -> None:
    full = seg4(payload=b"x" * 100)
    path = tmp_path / "snap.pcap"
    with PcapWriter(path, snaplen=60) as w:
        w.write(full, 0.0)
        w.write(seg4(), 1.0)
    recs = decode_pcap(path)
    assert [r["index"] for r in recs] == [0, 1]
    assert "total length" in recs[0]["error"]
    assert recs[0]["dport"] == 443
    bad_v6 = seg6()[:30]  # IPv6 header cut short
    rec = decode_ip(7, bad_v6)
    assert rec is not None and rec["index"] == 7 and "error" in rec and "src" not in rec


def test_partial_fields_only_where_a_tcp_header_is() -> None:
    later_fragment = bytearray(seg4())
    later_fragment[6:8] = b"\x00\x10"  # fragment offset 16 (x 8 bytes): no TCP header here
    rec = decode_ip(0, bytes(later_fragment))
    assert rec is not None and "fragment" in rec["error"]
    assert rec["src"] == "192.0.2.1" and "sport" not in rec
    short6 = seg6(payload=b"12345678")[:-4]  # payload length overruns; TCP header readable
    rec = decode_ip(1, short6)
    assert rec is not None and "error" in rec
    assert (rec["sport"], rec["dport"], rec["seq"], rec["ack"]) == (5201, 33000, 7, 9)


def test_truncated_link_header_is_an_error(tmp_path: Path) -> None:
    path = pcap_of(tmp_path, [b"\x00" * 10, b"\x00" * 12 + b"\x08\x00" + seg4()],
                   LINKTYPE_ETHERNET)
    recs = decode_pcap(path)
    assert [r["index"] for r in recs] == [0, 1]
    assert "link layer" in recs[0]["error"]
    assert recs[1]["dport"] == 443


@given(st.binary(max_size=120))
@pytest.mark.codec_fuzz
def test_arbitrary_ip_bytes_never_raise(data: bytes) -> None:
    rec = decode_ip(0, data)
    assert rec is None or rec["index"] == 0
    if rec is not None:
        json.dumps(rec)
        format_record(rec)


@given(st.binary(min_size=20, max_size=60), st.binary(max_size=60))
@pytest.mark.codec_fuzz
def test_arbitrary_tcp_header_never_raises(tcp: bytes, rest: bytes) -> None:
    body = tcp + rest
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, 6, 0, A4, B4) + body
    rec = decode_ip(0, ip)
    assert rec is not None
    assert rec["sport"] == struct.unpack_from("!H", tcp)[0]


# --------------------------------------------------------------------------------------------
# link types and file formats


def _frames_for_links() -> list[tuple[str, int, list[bytes]]]:
    v4, v6 = seg4((Mss(1460),), SYN, b"abc"), seg6((NOP, NOP, Timestamps(5, 6)), ACK | PSH, b"z")
    eth = bytes(12)
    return [
        ("raw", LINKTYPE_RAW, [v4, v6]),
        ("dlt12", 12, [v4, v6]),
        ("dlt14", 14, [v4, v6]),
        ("ipv4/ipv6", LINKTYPE_IPV4, [v4]),
        ("ethernet", LINKTYPE_ETHERNET,
         [eth + b"\x08\x00" + v4 + bytes(6), eth + b"\x86\xdd" + v6]),
        ("vlan", LINKTYPE_ETHERNET, [eth + b"\x81\x00\x00\x07\x08\x00" + v4,
                                     eth + b"\x88\xa8\x00\x01\x81\x00\x00\x02\x86\xdd" + v6]),
        ("sll", LINKTYPE_LINUX_SLL, [bytes(14) + b"\x08\x00" + v4, bytes(14) + b"\x86\xdd" + v6]),
        ("sll2", LINKTYPE_LINUX_SLL2, [b"\x08\x00" + bytes(18) + v4, b"\x86\xdd" + bytes(18) + v6]),
        ("null", LINKTYPE_NULL, [b"\x02\x00\x00\x00" + v4, b"\x00\x00\x00\x1c" + v6]),
    ]


@pytest.mark.parametrize(("name", "link", "frames"), _frames_for_links(),
                         ids=[c[0] for c in _frames_for_links()])
def test_every_link_type_decodes_the_same(
    tmp_path: Path, name: str, link: int, frames: list[bytes]
) -> None:
    want = decode_pcap(pcap_of(tmp_path, [seg4((Mss(1460),), SYN, b"abc"),
                                          seg6((NOP, NOP, Timestamps(5, 6)), ACK | PSH, b"z")]))
    got = decode_pcap(pcap_of(tmp_path, frames, link))
    assert got == want[: len(got)]
    assert got[0]["payload_len"] == 3  # Ethernet padding is not payload


def test_ipv6_link_type(tmp_path: Path) -> None:
    (rec,) = decode_pcap(pcap_of(tmp_path, [seg6()], LINKTYPE_IPV6))
    assert rec["src"] == "2001:db8::1"


def test_scapy_written_captures(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether, Loopback
    from scapy.utils import wrpcap, wrpcapng

    t4 = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=1, dport=2, flags="SE", seq=11,
                                                 options=[("MSS", 1200), ("NOP", None),
                                                          ("NOP", None), ("SAckOK", b"")])
    t6 = IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=3, dport=4, flags="A", ack=12) / b"data"
    cases: list[tuple[str, list[Any]]] = [
        ("ether", [Ether() / t4, Ether() / Dot1Q(vlan=3) / t6]),
        ("sll", [CookedLinux() / t4, CookedLinux(proto=0x86DD) / t6]),
        ("sll2", [CookedLinuxV2() / t4, CookedLinuxV2(proto=0x86DD) / t6]),
        ("null", [Loopback() / t4, Loopback(type=24) / t6]),
    ]
    for name, pkts in cases:
        for writer in (wrpcap, wrpcapng):
            path = tmp_path / f"{name}.cap"
            writer(str(path), pkts)
            recs = decode_pcap(path)
            assert [(r["src"], r["dport"], r["seq"], r["ack"], r["payload_len"]) for r in recs] == [
                ("10.1.1.1", 2, 11, 0, 0), ("fd00::1", 4, 0, 12, 4),
            ], (name, writer)
            assert recs[0]["flags"] == SYN | ECE
            assert [o["name"] for o in recs[0]["options"]] == ["MSS", "NOP", "NOP", "SACK_PERM"]


@settings(max_examples=100)
@given(st.lists(segments(extra=st.one_of(any_mptcp_option(), eno_options(), accecn_options())),
                min_size=1, max_size=4))
def test_random_segments_round_trip_through_a_capture(segs: list[Segment]) -> None:
    buf = io.BytesIO()
    with PcapWriter(buf) as w:
        for s in segs:
            w.write(s.to_bytes(), 0.0)
    recs = list(iter_decode(io.BytesIO(buf.getvalue())))
    assert [r["index"] for r in recs] == list(range(len(segs)))
    for rec, s in zip(recs, segs, strict=True):
        assert "error" not in rec, rec
        assert (rec["sport"], rec["dport"], rec["seq"], rec["ack"], rec["flags"]) == (
            s.tcp.sport, s.tcp.dport, s.tcp.seq, s.tcp.ack, s.tcp.flags,
        )
        assert rec["payload_len"] == len(s.payload)
        assert rec["ace"] == (s.tcp.flags >> 6) & 7
        assert rec["mptcp"] == [o.to_json() for o in s.tcp.options  # type: ignore[attr-defined]
                                if o.to_bytes()[0] == 30]
        acc = [o for o in s.tcp.options if isinstance(o, AccEcnOption)]
        assert rec["accecn"] == (acc[0].to_json() if acc else None)
        assert len(rec["options"]) >= len(s.tcp.options)


# --------------------------------------------------------------------------------------------
# text and CLI


def test_text_lists_every_option(tmp_path: Path) -> None:
    opts: tuple[TcpOption, ...] = (
        MpCapable(1, 0x81, 0x1122334455667788), RemoveAddr((1, 2)), NOP,
        AccEcnOption.of(0, ee0b=1, eceb=2),
    )
    text = format_record(decode_ip(4, seg4(opts, SYN | ACK | CWR)) or {})
    lines = text.splitlines()
    assert lines[0].startswith("#4 192.0.2.1:40000 > 198.51.100.7:443 [")
    assert "CWR" in lines[0] and "SYN" in lines[0] and "ace=2" in lines[0]
    assert "MP_CAPABLE" in lines[1] and f"sender_key={0x1122334455667788}" in lines[1]
    assert "REMOVE_ADDR" in lines[2] and "address_ids=1,2" in lines[2]
    assert lines[3].strip() == "NOP"
    assert "AccECN0" in lines[4] and "ee0b=1" in lines[4] and "eceb=2" in lines[4]
    v6 = format_record(decode_ip(0, seg6((AddAddr(1, A6, 80, bytes(8)),))) or {})
    assert "[2001:db8::1]:5201 > [2001:db8::abcd]:33000" in v6
    assert "address=2001:db8::1" in v6


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli_main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = pcap_of(tmp_path, [UDP4, seg4((Mss(1460),), SYN), seg6(payload=b"p")])
    status, out, _ = _run_cli(["decode", str(path), "--json"], capsys)
    assert status == 0
    parsed: list[dict[str, Any]] = json.loads(out)
    assert parsed == decode_pcap(path)
    assert [r["index"] for r in parsed] == [1, 2]
    status, out, _ = _run_cli(["decode", str(path)], capsys)
    assert status == 0
    assert [ln.split()[0] for ln in out.splitlines() if ln.startswith("#")] == ["#1", "#2"]
    assert "MSS mss=1460" in out


def test_cli_malformed_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = pcap_of(tmp_path, [seg4(), seg6()])
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(path.read_bytes()[:-5])
    status, out, err = _run_cli(["decode", str(cut), "--json"], capsys)
    assert status == 1
    assert [r["index"] for r in json.loads(out)] == [0]
    assert "malformed capture file at byte" in err
    status, out, err = _run_cli(["decode", str(tmp_path / "nope.pcap")], capsys)
    assert status == 2
    assert "nope.pcap" in err
