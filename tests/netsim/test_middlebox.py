"""Middleboxes: option stripping (both modes, SYN-only), payload rewriting, splitting and
coalescing (byte stream preserved), NAT in both directions, sequence-number shifting."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import mptcp.wire.mptcp_options  # noqa: F401  (registers kind 30: strip it as a parsed option)
from interop.netsim import (
    CoalesceOptions,
    Coalescer,
    LinkParams,
    Middlebox,
    Nat,
    OptionStrip,
    PayloadRewrite,
    SeqShift,
    Simulator,
    SplitOptions,
    Splitter,
    StripMode,
    StripScope,
)
from interop.netsim.middlebox import option_kind
from mptcp.wire.ip import ECN_CE, ECN_ECT0
from mptcp.wire.options import (
    NOP,
    SACK_PERMITTED,
    Mss,
    Sack,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
    parse_options,
)
from mptcp.wire.segment import checksum_ok, parse_segment
from mptcp.wire.tcp import ACK, CWR, FIN, PSH, SYN
from tests.netsim.endpoints import A4, A6, B4, B6, Echoer, Pinger, make_packet, pair

MP_CAPABLE = parse_options(bytes.fromhex("1e040181"))[0]  # RFC 8684 §3.1 MP_CAPABLE SYN, v1
SYN_OPTS: tuple[TcpOption, ...] = (
    Mss(1460), SACK_PERMITTED, Timestamps(1, 0), NOP, WindowScale(7), MP_CAPABLE,
    UnknownOption(99, b"\xaa\xbb"), NOP, NOP,
)


def _through(mbs: Sequence[Middlebox], pkts: list[tuple[float, bytes]], v6: bool = False,
             params: LinkParams | None = None) -> tuple[Simulator, Pinger]:
    sim = Simulator(seed=3)
    a, b = Pinger(), Pinger()
    _, _, link = pair(sim, a, b, params, v6=v6)
    for mb in mbs:
        link.ab.add_middlebox(mb)
    for t, p in pkts:
        a.add(t, p)
    sim.run()
    return sim, b


def _opt_bytes(pkt: bytes) -> bytes:
    ihl = (pkt[0] & 15) * 4 if pkt[0] >> 4 == 4 else 40
    doff = (pkt[ihl + 12] >> 4) * 4
    return pkt[ihl + 20 : ihl + doff]


@pytest.mark.rfc("8684", "3.7")
@pytest.mark.parametrize("v6", [False, True])
def test_strip_nop_mode_keeps_header_length(v6: bool) -> None:
    src, dst = (A6, B6) if v6 else (A4, B4)
    syn = make_packet(src, dst, flags=SYN, options=SYN_OPTS)
    mb = OptionStrip.of_kinds({30}, mode=StripMode.NOP, scope=StripScope.SYN)
    _, b = _through([mb], [(0.0, syn)], v6=v6)
    out = b.received[0][1]
    assert len(out) == len(syn) and checksum_ok(out)
    before, after = _opt_bytes(syn), _opt_bytes(out)
    i = before.index(bytes.fromhex("1e040181"))
    assert after == before[:i] + b"\x01" * 4 + before[i + 4 :]
    assert 30 not in {option_kind(o) for o in parse_segment(out).tcp.options}
    assert mb.counters["options_stripped"] == 1 and mb.counters["stripped_kind_30"] == 1


@pytest.mark.rfc("8684", "3.7")
@pytest.mark.parametrize("v6", [False, True])
def test_strip_remove_mode_shrinks_header(v6: bool) -> None:
    src, dst = (A6, B6) if v6 else (A4, B4)
    syn = make_packet(src, dst, b"tfo-data", flags=SYN, options=SYN_OPTS)
    mb = OptionStrip.unknown_options(mode=StripMode.REMOVE)
    _, b = _through([mb], [(0.0, syn)], v6=v6)
    out = b.received[0][1]
    assert checksum_ok(out)
    seg, orig = parse_segment(out), parse_segment(syn)
    kinds = [option_kind(o) for o in seg.tcp.options if o is not NOP and option_kind(o)]
    assert kinds == [2, 4, 8, 3]
    # MP_CAPABLE (4) and kind 99 (4) removed: 8 bytes less, still a multiple of 4
    assert len(_opt_bytes(out)) == len(_opt_bytes(syn)) - 8
    assert len(out) == len(syn) - 8
    assert seg.payload == orig.payload == b"tfo-data"
    assert seg.tcp._replace(options=(), checksum=0) == orig.tcp._replace(options=(), checksum=0)
    assert mb.counters["bytes_removed"] == 8


def test_strip_syn_scope_leaves_other_segments() -> None:
    opts: tuple[TcpOption, ...] = (NOP, NOP, Timestamps(5, 6), MP_CAPABLE)
    data = make_packet(A4, B4, b"data", flags=ACK, options=opts)
    syn = make_packet(A4, B4, flags=SYN, options=opts)
    mb = OptionStrip.all_options(scope=StripScope.SYN)
    _, b = _through([mb], [(0.0, syn), (0.0, data)])
    out_syn, out_data = b.received[0][1], b.received[1][1]
    assert out_data == data
    assert _opt_bytes(out_syn) == b"" and checksum_ok(out_syn)
    assert mb.counters["passed"] == 1 and mb.counters["segments_stripped"] == 1


def test_strip_all_nop_mode() -> None:
    syn = make_packet(A4, B4, flags=SYN, options=SYN_OPTS)
    _, b = _through([OptionStrip.all_options(mode=StripMode.NOP)], [(0.0, syn)])
    out = b.received[0][1]
    assert _opt_bytes(out) == b"\x01" * len(_opt_bytes(syn)) and checksum_ok(out)


def test_non_tcp_passes_untouched() -> None:
    udp = bytearray(make_packet(A4, B4, b"hello", flags=SYN, options=SYN_OPTS))
    udp[9] = 17  # protocol UDP (IPv4 header checksum now wrong: nobody should touch it)
    mbs: list[Middlebox] = [
        OptionStrip.all_options(), Splitter(3), PayloadRewrite(find=b"h", replace=b"j")]
    _, b = _through(mbs, [(0.0, bytes(udp))])
    assert b.received[0][1] == bytes(udp)
    assert all(mb.counters["passed_not_tcp"] == 1 for mb in mbs)


def test_payload_rewrite_substitution_and_function() -> None:
    p1 = make_packet(A4, B4, b"GET /secret HTTP/1.1")
    p2 = make_packet(A4, B4, b"no match here", seq=20)
    sub = PayloadRewrite(find=b"secret", replace=b"public")
    up = PayloadRewrite(lambda p: p.upper() + b"!")
    _, b = _through([sub, up], [(0.0, p1), (0.0, p2)])
    outs = [parse_segment(p) for _, p in b.received]
    assert outs[0].payload == b"GET /PUBLIC HTTP/1.1!"
    assert outs[1].payload == b"NO MATCH HERE!"
    assert all(checksum_ok(p) for _, p in b.received)
    assert sub.counters["rewritten"] == 1 and sub.counters["passed"] == 1
    assert up.counters["length_changed"] == 2


def _stream(n: int, size: int, *, v6: bool = False, gap: float = 0.001) -> tuple[
        bytes, list[tuple[float, bytes]]]:
    src, dst = (A6, B6) if v6 else (A4, B4)
    data = bytes((i * 7 + i // 251) & 0xFF for i in range(n * size))
    pkts = []
    for i in range(n):
        flags = ACK | PSH | (FIN if i == n - 1 else 0) | (CWR if i == 0 else 0)
        pkts.append((i * gap, make_packet(
            src, dst, data[i * size : (i + 1) * size], seq=1000 + i * size, ack=77,
            flags=flags, options=(NOP, NOP, Timestamps(i, 9)))))
    return data, pkts


def _reassemble(pkts: list[bytes], isn: int = 1000) -> bytes:
    buf: dict[int, bytes] = {}
    for p in pkts:
        seg = parse_segment(p)
        buf[seg.tcp.seq - isn] = seg.payload
    out = b""
    for off in sorted(buf):
        assert off == len(out), "hole or overlap in the stream"
        out += buf[off]
    return out


@pytest.mark.rfc("9293", "3.4")
@pytest.mark.parametrize("v6", [False, True])
def test_split_preserves_stream_and_flags(v6: bool) -> None:
    data, pkts = _stream(20, 1000, v6=v6)
    sp = Splitter(3)
    _, b = _through([sp], pkts, v6=v6)
    outs = [p for _, p in b.received]
    assert len(outs) == 60 and all(checksum_ok(p) for p in outs)
    assert _reassemble(outs) == data
    segs = [parse_segment(p) for p in outs]
    assert [len(s.payload) for s in segs[:3]] == [334, 333, 333]
    fins = [i for i, s in enumerate(segs) if s.tcp.flags & FIN]
    pshs = [i for i, s in enumerate(segs) if s.tcp.flags & PSH]
    cwrs = [i for i, s in enumerate(segs) if s.tcp.flags & CWR]
    assert fins == [59] and pshs == list(range(2, 60, 3)) and cwrs == [0]
    assert all(s.tcp.options == (NOP, NOP, Timestamps(i // 3, 9)) for i, s in enumerate(segs))
    assert all(s.tcp.ack == 77 for s in segs)
    assert sp.counters["segments_split"] == 20 and sp.counters["pieces_out"] == 60


def test_split_by_size_and_options_first() -> None:
    data, pkts = _stream(4, 1000)
    sp = Splitter(size=300, options=SplitOptions.FIRST)
    _, b = _through([sp], pkts)
    segs = [parse_segment(p) for _, p in b.received]
    assert [len(s.payload) for s in segs[:4]] == [300, 300, 300, 100]
    assert [bool(s.tcp.options) for s in segs[:4]] == [True, False, False, False]
    assert _reassemble([p for _, p in b.received]) == data
    syn = make_packet(A4, B4, b"x" * 10, flags=SYN)
    _, b2 = _through([Splitter(2)], [(0.0, syn)])
    assert [p for _, p in b2.received] == [syn]  # SYNs are not split


@pytest.mark.rfc("9293", "3.4")
def test_coalesce_preserves_stream() -> None:
    data, pkts = _stream(20, 500, gap=0.001)
    co = Coalescer(0.0045)
    sim, b = _through([co], pkts)
    outs = [p for _, p in b.received]
    assert all(checksum_ok(p) for p in outs)
    assert _reassemble(outs) == data
    assert len(outs) < 10
    segs = [parse_segment(p) for p in outs]
    # first aggregate: held at t=0, released when the window ends
    assert b.received[0][0] == pytest.approx(0.0045)
    assert len(segs[0].payload) == 5 * 500
    assert segs[0].tcp.flags & CWR and not any(s.tcp.flags & CWR for s in segs[1:])
    assert segs[-1].tcp.flags & FIN and not any(s.tcp.flags & FIN for s in segs[:-1])
    assert segs[0].tcp.options == (NOP, NOP, Timestamps(4, 9))  # the newest's (LRO)
    assert co.counters["merged"] + co.counters["held"] == 20 and co.held() == 0
    st = next(iter(sim.links.values())).ab.stats
    assert st.middlebox_in == 20 and st.middlebox_out == len(outs)


def test_coalesce_flushes_on_gap_and_keeps_other_flows() -> None:
    seg_a = make_packet(A4, B4, b"a" * 100, seq=0)
    seg_gap = make_packet(A4, B4, b"c" * 100, seq=200)  # not contiguous
    other = make_packet(A4, B4, b"o" * 10, sport=5555, seq=0)
    ack = make_packet(A4, B4, b"", seq=300)
    co = Coalescer(1.0, options=CoalesceOptions.EQUAL)
    _, b = _through([co], [(0.0, seg_a), (0.1, other), (0.2, seg_gap), (0.3, ack)])
    outs = [(t, parse_segment(p)) for t, p in b.received]
    # seg_a released by the gap at 0.2, seg_gap released by the pure ACK at 0.3, other flow
    # released at the end of its own window
    order = [(round(t, 6), s.tcp.sport, s.tcp.seq, len(s.payload)) for t, s in outs]
    assert order == [(0.2, 1000, 0, 100), (0.3, 1000, 200, 100), (0.3, 1000, 300, 0),
                     (1.1, 5555, 0, 10)]


def test_coalesce_marks_ce_if_any_part_was_ce() -> None:
    p1 = make_packet(A4, B4, b"x" * 10, seq=0, ecn=ECN_ECT0)
    p2 = make_packet(A4, B4, b"y" * 10, seq=10, ecn=ECN_CE)
    _, b = _through([Coalescer(0.01)], [(0.0, p1), (0.001, p2)])
    (_, out), = b.received
    seg = parse_segment(out)
    assert seg.payload == b"x" * 10 + b"y" * 10 and seg.ip.ecn == ECN_CE and checksum_ok(out)


def _nat_sim() -> tuple[Simulator, Pinger, Echoer, Nat]:
    sim = Simulator(seed=1)
    inside, outside = Pinger(), Echoer()
    ha = sim.add_host("inside", inside)
    hb = sim.add_host("outside", outside)
    link = sim.add_link(ha.add_interface("eth0", "10.0.0.1"),
                        hb.add_interface("eth0", "198.51.100.2"), LinkParams(delay=0.001))
    nat = Nat("203.0.113.1", ports=range(40000, 40010))
    link.ab.add_middlebox(nat.outbound)
    link.ba.add_middlebox(nat.inbound)
    return sim, inside, outside, nat


def test_nat_both_directions() -> None:
    sim, inside, outside, nat = _nat_sim()
    inside.add(0.0, make_packet("10.0.0.1", "198.51.100.2", b"ping", sport=1234, dport=80))
    inside.add(0.01, make_packet("10.0.0.1", "198.51.100.2", b"pong", sport=1234, dport=80))
    inside.add(0.02, make_packet("10.0.0.1", "198.51.100.2", b"x", sport=999, dport=80))
    sim.run()
    seen = [parse_segment(p) for _, p in outside.received]
    assert [(s.ip.src, s.tcp.sport) for s in seen] == [
        (bytes([203, 0, 113, 1]), 40000), (bytes([203, 0, 113, 1]), 40000),
        (bytes([203, 0, 113, 1]), 40001)]
    back = [parse_segment(p) for _, p in inside.received]
    assert [(s.ip.dst, s.tcp.dport, s.payload) for s in back] == [
        (bytes([10, 0, 0, 1]), 1234, b"ping"), (bytes([10, 0, 0, 1]), 1234, b"pong"),
        (bytes([10, 0, 0, 1]), 999, b"x")]
    assert all(checksum_ok(p) for _, p in inside.received + outside.received)
    assert nat.counters["outbound_translated"] == 3 and nat.counters["inbound_translated"] == 3
    assert nat.counters["mappings_created"] == 2


def test_nat_drops_unsolicited_inbound() -> None:
    sim, _inside, _outside, nat = _nat_sim()
    sender = Pinger()
    sim.hosts["outside"].stack = sender
    sender.add(0.0, make_packet("198.51.100.2", "203.0.113.1", b"hi", sport=80, dport=40000))
    sim.run()
    assert nat.counters["inbound_unmatched_dropped"] == 1
    st = sim.links["inside.eth0-outside.eth0"].ba.stats
    assert st.delivered == 0 and st.middlebox_in - st.middlebox_out == 1


def test_nat_static_mapping_and_exhaustion() -> None:
    nat = Nat("203.0.113.1", ports=range(40000, 40001),
              static={("10.0.0.9", 22): ("203.0.113.1", 2222)})
    seg = make_packet("10.0.0.9", B4, b"s", sport=22)
    (out,) = nat.outbound.process(seg, 0.0)
    assert parse_segment(out).tcp.sport == 2222
    assert nat.outbound.process(make_packet(A4, B4, sport=1), 0.0)
    assert nat.outbound.process(make_packet(A4, B4, sport=2), 0.0) == []
    assert nat.counters["ports_exhausted"] == 1


@pytest.mark.parametrize("sack", [True, False])
def test_seq_shift(sack: bool) -> None:
    sim = Simulator()
    ping, echo = Pinger(), Echoer()
    _, _, link = pair(sim, ping, echo)
    shift = SeqShift(0xFFFFFF00, sack=sack)  # wraps the sequence space
    link.ab.add_middlebox(shift.forward)
    link.ba.add_middlebox(shift.reverse)
    ping.add(0.0, make_packet(A4, B4, b"z" * 1000, seq=5000))
    sim.run()
    assert parse_segment(echo.received[0][1]).tcp.seq == (5000 + 0xFFFFFF00) & 0xFFFFFFFF
    back = parse_segment(ping.received[0][1])
    assert back.tcp.ack == 6000 and checksum_ok(ping.received[0][1])
    (sack_opt,) = [o for o in back.tcp.options if isinstance(o, Sack)]
    d = 0xFFFFFF00
    expect = (5000, 6000) if sack else ((5000 + d) & 0xFFFFFFFF, (6000 + d) & 0xFFFFFFFF)
    assert sack_opt.blocks == (expect,)
    assert shift.counters["seq_shifted"] == 1 and shift.counters["ack_shifted"] == 1


def test_middlebox_added_and_removed_mid_run() -> None:
    sim = Simulator()
    a, b = Pinger(), Pinger()
    _, _, link = pair(sim, a, b)
    rw = PayloadRewrite(find=b"a", replace=b"b")
    co = Coalescer(10.0)
    sim.add_middlebox(link, "ab", rw, at=1.0)
    for i, t in enumerate([0.5, 1.5]):
        a.add(t, make_packet(A4, B4, b"aa", seq=2 * i))
    a.add(2.0, make_packet(A4, B4, b"aa", seq=4))
    sim.add_middlebox(link, "ab", co, at=1.8)
    sim.schedule(3.0, lambda: link.ab.remove_middlebox(co))
    sim.run()
    got = [(t, parse_segment(p).payload) for t, p in b.received]
    assert got == [(0.5, b"aa"), (1.5, b"bb"), (3.0, b"bb")]
