"""Generic TCP option list and the base options (RFC 9293 §3.2, RFC 7323, RFC 2018,
RFC 7413 §4.1.1, RFC 6994)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mptcp.wire.errors import WireError
from mptcp.wire.options import (
    NOP,
    Eol,
    Experimental,
    FastOpen,
    Mss,
    Sack,
    SackPermitted,
    TcpOption,
    Timestamps,
    UnknownOption,
    WindowScale,
    parse_option,
    parse_options,
    register_experimental,
    serialize_options,
)
from tests.strategies import base as sb

CODECS: dict[str, tuple[st.SearchStrategy[TcpOption], int]] = {
    "mss": (sb.mss, 2), "window_scale": (sb.window_scale, 3),
    "sack_permitted": (sb.sack_permitted, 4), "sack": (sb.sack, 5),
    "timestamps": (sb.timestamps, 8), "fast_open": (sb.fast_open, 34),
    "experimental": (sb.experimental, 253), "unknown": (sb.unknown, 99),
}


@pytest.mark.codec_fuzz
@pytest.mark.parametrize("name", sorted(CODECS))
@given(data=st.data())
def test_roundtrip_each_codec(name: str, data: st.DataObject) -> None:
    value: TcpOption = data.draw(CODECS[name][0])
    raw = value.to_bytes()
    assert raw[1] == len(raw)
    assert parse_option(raw) == value
    assert parse_options(raw) == (value,)


@pytest.mark.codec_fuzz
@pytest.mark.rfc("9293", "3.2")
@pytest.mark.parametrize("name", sorted(CODECS))
@given(body=st.binary(max_size=40), length=st.integers(0, 255), data=st.data())
def test_arbitrary_body_parses_or_wireerror(
    name: str, body: bytes, length: int, data: st.DataObject
) -> None:
    """RFC 9293 §3.2: a receiver must be prepared for any length, including illegal ones."""
    kind = CODECS[name][1]
    raw = bytes((kind, length)) + body
    try:
        opts = parse_options(raw)
    except WireError as e:
        assert 0 <= e.offset <= len(raw)
        return
    assert serialize_options(opts) == raw


@pytest.mark.codec_fuzz
@pytest.mark.rfc("9293", "3.2")
@given(st.binary(max_size=60))
def test_arbitrary_option_lists(raw: bytes) -> None:
    try:
        opts = parse_options(raw)
    except WireError:
        return
    assert serialize_options(opts) == raw


@pytest.mark.codec_fuzz
@given(sb.option_lists())
def test_option_list_roundtrip(opts: tuple[TcpOption, ...]) -> None:
    raw = serialize_options(opts)
    assert len(raw) <= 40 and len(raw) % 4 == 0
    assert parse_options(raw) == opts


def test_values_of_different_types_differ() -> None:
    assert Mss(7) != WindowScale(7)  # type: ignore[comparison-overlap]
    assert Mss(7) == Mss(7) and hash(Mss(7)) == hash(Mss(7))
    assert Mss(7) != (7,)


@pytest.mark.rfc("9293", "3.2")
def test_eol_keeps_padding_and_nop_is_one_byte() -> None:
    raw = bytes.fromhex("0101080a0000000100000002000000")
    opts = parse_options(raw)
    assert opts == (NOP, NOP, Timestamps(1, 2), Eol(b"\x00\x00"))
    assert serialize_options(opts) == raw


@pytest.mark.rfc("9293", "3.2")
@pytest.mark.parametrize(
    ("raw", "offset"),
    [
        (b"\x02", 0),  # no length byte
        (b"\x02\x00", 1),  # length 0 (would loop forever)
        (b"\x02\x01", 1),  # length 1
        (b"\x08\x0a\x00", 1),  # overruns the list
        (b"\x02\x05\x00\x00\x00", 1),  # MSS with length 5
        (b"\x01\x01\x03\x04\x00\x00", 3),  # window scale with length 4, offset after NOPs
    ],
)
def test_illegal_lengths_raise_with_offset(raw: bytes, offset: int) -> None:
    with pytest.raises(WireError) as e:
        parse_options(raw, base=0)
    assert e.value.offset == offset


@pytest.mark.rfc("7323", "3.2")
def test_timestamps_layout() -> None:
    assert Timestamps(0x01020304, 0x0A0B0C0D).to_bytes() == bytes.fromhex("080a010203040a0b0c0d")


@pytest.mark.rfc("7323", "2.2")
def test_window_scale_layout() -> None:
    assert WindowScale(14).to_bytes() == b"\x03\x03\x0e"
    assert parse_option(b"\x03\x03\x0f") == WindowScale(15)  # > 14 is kept raw for the engine


@pytest.mark.rfc("2018", "3")
def test_sack_blocks() -> None:
    raw = bytes.fromhex("0512") + bytes(range(16))
    assert parse_option(raw) == Sack(((0x00010203, 0x04050607), (0x08090A0B, 0x0C0D0E0F)))
    with pytest.raises(WireError):
        parse_option(b"\x05\x02")  # no block
    with pytest.raises(WireError):
        parse_option(b"\x05\x06\x00\x00\x00\x00")


@pytest.mark.rfc("7413", "4.1.1")
def test_tfo_cookie_lengths() -> None:
    assert parse_option(b"\x22\x02") == FastOpen(b"")
    assert parse_option(b"\x22\x0a" + bytes(8)) == FastOpen(bytes(8))
    for bad in (1, 2, 3, 17):
        with pytest.raises(WireError):
            parse_option(bytes((34, 2 + bad)) + bytes(bad))


@pytest.mark.rfc("6994", "3")
def test_experimental_registry_by_exid() -> None:
    raw = bytes.fromhex("fe06abcd0102")
    assert parse_option(raw) == Experimental(254, 0xABCD, b"\x01\x02")

    def parser(opt: bytes, off: int) -> TcpOption:
        return UnknownOption(opt[0], opt[2:])

    register_experimental(0xABCE, parser)
    assert parse_option(bytes.fromhex("fd06abce0102")) == UnknownOption(253, b"\xab\xce\x01\x02")
    with pytest.raises(WireError):
        parse_option(b"\xfd\x03\xab")


def test_sack_permitted_and_unknown() -> None:
    assert parse_option(b"\x04\x02") == SackPermitted()
    assert parse_option(b"\x63\x04\xaa\xbb") == UnknownOption(99, b"\xaa\xbb")
    assert Mss(1460).to_bytes() == b"\x02\x04\x05\xb4"
