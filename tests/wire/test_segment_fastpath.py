"""The per-segment fast paths of ``parse_segment`` / ``Segment.to_bytes`` against the general
code: the option layouts Linux sends (RFC 7323 Appendix A NOP NOP Timestamps; a SYN's MSS,
SACK-permitted, Timestamps, NOP, window scale), then extension options and NOP padding, must
give exactly what the general parser and serializer give, errors included."""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mptcp.wire.options as wire_options
from mptcp.wire.errors import WireError
from mptcp.wire.ip import IPv4Header, ipv4, ipv6
from mptcp.wire.mptcp_options import Dss
from mptcp.wire.options import (
    NOP,
    SACK_PERMITTED,
    Mss,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
)
from mptcp.wire.segment import Segment, _parse_general, checksum_ok, parse_segment
from mptcp.wire.tcp import SYN, TcpHeader
from tests.strategies import base as sb
from tests.strategies import ext as se
from tests.strategies import mptcp as sm

_extension = st.one_of(sm.any_mptcp_option(), se.accecn_options(), se.eno_options(),
                       sb.base_option)


@st.composite
def linux_option_lists(draw: Any) -> tuple[TcpOption, ...]:
    """NOP NOP Timestamps (or a Linux SYN's five options), then extension options, NOPs."""
    if draw(st.booleans()):
        opts: list[TcpOption] = [NOP, NOP, draw(sb.timestamps)]
    else:
        opts = [draw(sb.mss), draw(st.sampled_from((SACK_PERMITTED, SackPermitted()))),
                draw(sb.timestamps), NOP, draw(sb.window_scale)]
    used = sum(len(o.to_bytes()) for o in opts)
    for _ in range(draw(st.integers(0, 3))):
        opt = draw(_extension)
        size = len(opt.to_bytes())
        if used + size <= 40:
            opts.append(opt)
            used += size
    opts.extend([NOP] * (-used % 4))
    return tuple(opts)


@st.composite
def linux_segments(draw: Any) -> Segment:
    ip = draw(st.one_of(sb.ipv4_headers, sb.ipv6_headers))
    tcp = draw(sb.tcp_headers())._replace(options=draw(linux_option_lists()))
    return Segment(ip, tcp, draw(st.binary(max_size=1600)))


@st.composite
def dss_sack_segments(draw: Any) -> Segment:
    """NOP NOP Timestamps, a DSS, then NOP NOP SACK (one block, or more when they fit):
    Linux's data ACK while a hole is open (RFC 8684 §3.3, RFC 2018 §3)."""
    ip = draw(st.one_of(sb.ipv4_headers, sb.ipv6_headers))
    dss = draw(sm.dss())
    room = 40 - 12 - len(dss.to_bytes()) - 4
    blocks = draw(st.lists(st.tuples(sm.u32, sm.u32), min_size=1, max_size=max(1, room // 8)))
    opts: list[TcpOption] = [NOP, NOP, draw(sb.timestamps), dss, NOP, NOP,
                             Sack(tuple(blocks))]
    used = sum(len(o.to_bytes()) for o in opts)
    opts.extend([NOP] * (-used % 4))
    tcp = draw(sb.tcp_headers())._replace(options=tuple(opts))
    return Segment(ip, tcp, draw(st.binary(max_size=64)))


def _generic(seg: Segment) -> Segment:
    """The same segment with its base options as UnknownOption: same bytes, general path."""
    plain = (Timestamps, Mss, WindowScale, SackPermitted, Sack, Dss)
    opts = tuple(UnknownOption(o.to_bytes()[0], o.to_bytes()[2:]) if type(o) in plain else o
                 for o in seg.tcp.options)
    return seg._replace(tcp=seg.tcp._replace(options=opts))


def _outcome(fn: Any, raw: bytes) -> tuple[Any, ...]:
    try:
        seg = fn(raw)
    except WireError as e:
        return ("error", e.offset, e.reason)
    return ("ok", seg, [type(o) for o in seg.tcp.options])


@pytest.mark.codec_fuzz
@pytest.mark.rfc("7323", "3.2")
@given(linux_segments())
def test_fast_paths_equal_the_general_code(seg: Segment) -> None:
    raw = seg.to_bytes()
    assert raw == _generic(seg).to_bytes()
    assert seg.to_bytes(partial=True) == _generic(seg).to_bytes(partial=True)
    assert checksum_ok(raw)
    general = _outcome(_parse_general, raw)  # also records a DSS layout for the fast path
    assert _outcome(parse_segment, raw) == general
    assert parse_segment(raw).to_bytes() == raw


@pytest.mark.codec_fuzz
@pytest.mark.rfc("2018", "3")
@given(dss_sack_segments(), st.randoms(use_true_random=False))
def test_dss_sack_fast_path_equals_the_general_code(seg: Segment, rng: random.Random) -> None:
    """The DSS + NOP NOP SACK layout (both directions), then the same bytes with a few bytes
    of the options flipped: the same value or the same WireError from both parsers."""
    try:
        raw = seg.to_bytes()
    except WireError:  # more than 40 option bytes: the general serializer says so too
        with pytest.raises(WireError):
            _generic(seg).to_bytes()
        return
    assert raw == _generic(seg).to_bytes()
    assert checksum_ok(raw)
    _outcome(_parse_general, raw)  # records the DSS layout: parse_segment's fast path
    assert _outcome(parse_segment, raw) == _outcome(_parse_general, raw)
    assert parse_segment(raw).tcp.options == seg.tcp.options
    assert parse_segment(raw).to_bytes() == raw
    flipped = bytearray(raw)
    hlen = 20 if isinstance(seg.ip, IPv4Header) else 40
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(hlen + 32, min(len(flipped), hlen + 60))
        flipped[pos] = rng.choice((0, 1, 2, 5, 8, 10, 18, 30, rng.randrange(256)))
    assert _outcome(parse_segment, bytes(flipped)) == _outcome(_parse_general, bytes(flipped))


@pytest.mark.codec_fuzz
@given(linux_segments(), st.randoms(use_true_random=False))
def test_fast_paths_fail_like_the_general_code(seg: Segment, rng: random.Random) -> None:
    """Bytes flipped in the headers and options, or the packet cut: the same value or the
    same WireError (offset and reason) from both parsers."""
    raw = bytearray(seg.to_bytes())
    _outcome(_parse_general, bytes(raw))  # records a DSS layout for the fast path
    hlen = 20 if isinstance(seg.ip, IPv4Header) else 40
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(min(len(raw), hlen + 60))
        raw[pos] = rng.choice((0, 1, 2, 3, 4, 8, 10, 30, 174, 255, rng.randrange(256)))
    if rng.random() < 0.3:
        raw = raw[: rng.randrange(len(raw) + 1)]
    assert _outcome(parse_segment, bytes(raw)) == _outcome(_parse_general, bytes(raw))


@pytest.mark.rfc("9293", "3.7.1")
def test_registered_base_codec_replaces_the_syn_fast_path(monkeypatch: Any) -> None:
    """A codec plugged in for a base kind (here MSS) is used for a SYN's options too."""
    seg = Segment(ipv4(bytes(4), bytes(4)), TcpHeader(
        1, 2, 3, 0, SYN, 5, 0, 0, (Mss(1460), SACK_PERMITTED, Timestamps(7, 0), NOP,
                                   WindowScale(7))))
    raw = seg.to_bytes()
    assert parse_segment(raw).tcp.options[0] == Mss(1460)
    custom = UnknownOption(2, b"\x05\xb4")
    monkeypatch.setitem(wire_options._PARSERS, 2, lambda opt, off: custom)
    wire_options._BASE_OVERRIDES.add(2)  # what register_option(2, ...) records
    try:
        assert parse_segment(raw).tcp.options[0] is custom
        assert _outcome(parse_segment, raw) == _outcome(_parse_general, raw)
    finally:
        wire_options._BASE_OVERRIDES.discard(2)
    assert parse_segment(raw).tcp.options[0] == Mss(1460)


def test_registering_a_base_kind_is_recorded(monkeypatch: Any) -> None:
    overrides: set[int] = set()
    monkeypatch.setattr(wire_options, "_PARSERS", dict(wire_options._PARSERS))
    monkeypatch.setattr(wire_options, "_BASE_OVERRIDES", overrides)
    wire_options.register_option(99, lambda opt, off: UnknownOption(99))
    assert overrides == set()
    wire_options.register_option(5, lambda opt, off: UnknownOption(5))
    assert overrides == {5}


@pytest.mark.parametrize("syn", [False, True])
@pytest.mark.parametrize("v6", [False, True])
def test_crafted_option_tails(syn: bool, v6: bool) -> None:
    """Every 4-byte tail after the leading options from a small alphabet of kinds, lengths
    and bytes (lengths 0 and 1, overruns, NOPs that look like padding, EOL): both parsers
    agree."""
    head: tuple[TcpOption, ...] = (
        (Mss(1460), SACK_PERMITTED, Timestamps(1, 2), NOP, WindowScale(7)) if syn
        else (NOP, NOP, Timestamps(1, 2)))
    ip = ipv6(bytes(16), bytes(16)) if v6 else ipv4(bytes(4), bytes(4))
    base = Segment(ip, TcpHeader(1, 2, 3, 4, SYN, 5, 0, 0, (*head, UnknownOption(99, b"xy"))),
                   b"payload").to_bytes()
    at = len(base) - len(b"payload") - 4
    for kind in (0, 1, 5, 8, 30, 174):
        for length in (0, 1, 2, 3, 4, 5, 8):
            for b2 in (0, 1, 0x20):
                for b3 in (0, 1):
                    raw = base[:at] + bytes((kind, length, b2, b3)) + base[at + 4:]
                    assert _outcome(parse_segment, raw) == _outcome(_parse_general, raw), raw[at:]


def _dss_segment(v6: bool, dss: Dss, tail: tuple[TcpOption, ...], *, sport: int = 4242,
                 payload: bytes = b"p" * 700) -> Segment:
    ip: Any = (ipv6(b"\xfd" + b"\x01" * 15, b"\xfd" + b"\x02" * 15) if v6
               else ipv4(b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"))
    opts: tuple[TcpOption, ...] = (NOP, NOP, Timestamps(7, 9), dss, *tail)
    return Segment(ip, TcpHeader(sport, 80, 1, 2, 0x18, 500, 0, 0, opts), payload)


@pytest.mark.rfc("8684", "3.3")
@pytest.mark.parametrize("v6", [False, True])
def test_single_pack_dss_layouts_equal_the_general_code(v6: bool) -> None:
    """Every DSS layout the one-pack path of ``Segment.to_bytes`` takes (data ACK; mapping
    + NOP NOP; mapping with checksum; data ACK + NOP NOP SACK), 4- and 8-byte fields, DATA_FIN
    and reserved bits: the same bytes as the general serializer, and a valid checksum."""
    sack = (NOP, NOP, Sack(((0xFFFFFF00, 0x10),)))
    for a64 in (False, True):
        for m64 in (False, True):
            for fin in (False, True):
                ack = (1 << (64 if a64 else 32)) - 3
                dsn = (1 << (64 if m64 else 32)) - 5
                shapes = [
                    (Dss(ack, ack64=a64, dsn64=m64, data_fin=fin, reserved=0x0E00), ()),
                    (Dss(ack, ack64=a64, dsn64=m64, data_fin=fin), sack),
                    (Dss(ack, dsn, 0xFFFFFFFF, 1448, ack64=a64, dsn64=m64, data_fin=fin),
                     (NOP, NOP)),
                    (Dss(ack, dsn, 7, 0, 0xBEEF, ack64=a64, dsn64=m64, data_fin=fin), ()),
                ]
                for dss, tail in shapes:
                    for payload in (b"", b"\xff" * 1447, bytes(range(256)) * 2):
                        seg = _dss_segment(v6, dss, tail, payload=payload)
                        raw = seg.to_bytes()
                        assert raw == _generic(seg).to_bytes()
                        assert checksum_ok(raw)
                        back = parse_segment(raw)
                        assert back.tcp.options == seg.tcp.options
                        assert back.payload == payload
                        assert back.to_bytes() == raw


@pytest.mark.rfc("8684", "3.3")
@pytest.mark.parametrize("v6", [False, True])
def test_single_pack_dss_path_raises_like_the_general_code(v6: bool) -> None:
    """Values the one-pack path cannot pack fall back to the general code and its errors."""
    good = Dss(5, 1, 2, 3)
    with pytest.raises(ValueError, match="cannot encode Dss"):  # 2**40 needs ack64
        _dss_segment(v6, Dss(1 << 40, 1, 2, 3), (NOP, NOP)).to_bytes()
    with pytest.raises(ValueError, match="mapping fields"):  # SSN without a DSN
        _dss_segment(v6, Dss(5, None, 2, None), ()).to_bytes()
    with pytest.raises(struct.error):  # a port above 65535: the header pack says so
        _dss_segment(v6, good, (NOP, NOP), sport=70000).to_bytes()
    with pytest.raises((ValueError, struct.error)):  # a SACK edge above 2**32
        _dss_segment(v6, Dss(5), (NOP, NOP, Sack(((1, 1 << 33),)))).to_bytes()
    # a layout the one-pack path does not take (mapping without NOP NOP): the general code
    # pads with EOL bytes instead, and the result still parses back
    raw = _dss_segment(v6, good, ()).to_bytes()
    assert checksum_ok(raw)
    assert parse_segment(raw).tcp.options[:4] == (NOP, NOP, Timestamps(7, 9), good)
