"""AccECN Option codec (accecn/option.py) against draft-ietf-tcpm-accurate-ecn-34 (RFC 9768)
§3.2.3, §3.2.3.1, §7 and Appendix A.1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import accecn  # noqa: F401  (registers the codecs)
from accecn.ace import CEB_INIT, E0B_INIT, E1B_INIT
from accecn.option import (
    ACCECN0_EXID,
    ACCECN1_EXID,
    AccEcnOption,
    encode_field,
    field_delta,
    parse_accecn_option,
)
from mptcp.wire.errors import WireError
from mptcp.wire.options import Experimental, Mss, parse_options
from tests.strategies.ext import accecn_kinds, accecn_options, prefixed_option_bytes

RFC = "9768"


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def acc(wire: bytes) -> AccEcnOption:
    """Parse a one-option list through the registry; it must yield an AccEcnOption."""
    (value,) = parse_options(wire)
    assert isinstance(value, AccEcnOption)
    return value


# --- properties ------------------------------------------------------------------------------


@pytest.mark.codec_fuzz
@given(accecn_options(order=None, nfields=None, experimental=None, canonical=None, max_len=255))
def test_roundtrip_valid_values(value: AccEcnOption) -> None:
    wire = value.to_bytes()
    assert parse_options(wire) == (value,)
    assert wire[1] == len(wire)


@pytest.mark.codec_fuzz
@given(accecn_kinds().flatmap(prefixed_option_bytes))
def test_arbitrary_body_always_decodes_byte_exact(wire: bytes) -> None:
    value = acc(wire)
    assert isinstance(value, AccEcnOption)
    assert value.to_bytes() == wire
    assert value.nfields == min(3, (len(wire) - 2) // 3)


@pytest.mark.codec_fuzz
@given(
    st.tuples(st.sampled_from((253, 254)), st.sampled_from((ACCECN0_EXID, ACCECN1_EXID)))
    .flatmap(lambda ke: prefixed_option_bytes(ke[0], ke[1]))
)
def test_arbitrary_body_experimental_decodes_byte_exact(wire: bytes) -> None:
    value = acc(wire)
    assert isinstance(value, AccEcnOption)
    assert value.to_bytes() == wire
    assert value.exp_kind == wire[0]
    assert value.nfields == min(3, (len(wire) - 4) // 3)


# --- §3.2.3 Figure 4 and Table 5 -------------------------------------------------------------


@pytest.mark.rfc(RFC, "3.2.3")
def test_order0_field_layout() -> None:
    wire = bytes((172, 11)) + u24(0x010203) + u24(0x040506) + u24(0x070809)
    value = acc(wire)
    assert (value.order, value.ee0b, value.eceb, value.ee1b) == (0, 0x010203, 0x040506, 0x070809)


@pytest.mark.rfc(RFC, "3.2.3")
def test_order1_field_layout() -> None:
    wire = bytes((174, 11)) + u24(0x010203) + u24(0x040506) + u24(0x070809)
    value = acc(wire)
    assert (value.order, value.ee1b, value.eceb, value.ee0b) == (1, 0x010203, 0x040506, 0x070809)


@pytest.mark.rfc(RFC, "3.2.3")
def test_kind_172_for_order0_and_174_for_order1() -> None:
    # "it MUST set the Kind field to 172 if using Order 0, or to 174 if using Order 1"
    for n in range(4):
        assert AccEcnOption.encode(0, n, e0b=1, ceb=2, e1b=3).to_bytes()[0] == 172
        assert AccEcnOption.encode(1, n, e0b=1, ceb=2, e1b=3).to_bytes()[0] == 174


@pytest.mark.rfc(RFC, "3.2.3")
def test_table5_length_indicates_fields() -> None:
    e0, ce, e1 = 0xAAAAAA, 0xCCCCCC, 0x111111
    expect0 = {11: (e0, ce, e1), 8: (e0, ce, None), 5: (e0, None, None), 2: (None, None, None)}
    expect1 = {11: (e0, ce, e1), 8: (None, ce, e1), 5: (None, None, e1), 2: (None, None, None)}
    for length, fields in expect0.items():
        wire = (bytes((172, 11)) + u24(e0) + u24(ce) + u24(e1))[:length]
        value = acc(bytes((172, length)) + wire[2:])
        assert (value.ee0b, value.eceb, value.ee1b) == fields
        assert value.canonical
    for length, fields in expect1.items():
        wire = (bytes((174, 11)) + u24(e1) + u24(ce) + u24(e0))[:length]
        value = acc(bytes((174, length)) + wire[2:])
        assert (value.ee0b, value.eceb, value.ee1b) == fields


@pytest.mark.rfc(RFC, "3.2.3")
def test_every_length_can_be_read() -> None:
    # "MUST be able to read AccECN Options of any of the above lengths" -- and of any other.
    for kind in (172, 174):
        for length in range(2, 41):
            wire = bytes((kind, length)) + bytes(range(1, length - 1))
            value = acc(wire)
            assert value.to_bytes() == wire


@pytest.mark.rfc(RFC, "3.2.3")
def test_other_lengths_use_whole_fields_rest_is_padding() -> None:
    # "implementations MUST use those whole 3-octet fields that fit within the length and
    # ignore the remainder of the option, treating it as padding"
    v6 = acc(bytes((172, 6)) + u24(7) + b"\xee")
    assert (v6.ee0b, v6.eceb, v6.ee1b, v6.padding) == (7, None, None, b"\xee")
    v4 = acc(bytes((174, 4, 0x01, 0x02)))
    assert (v4.nfields, v4.padding) == (0, b"\x01\x02")
    v13 = acc(bytes((174, 13)) + u24(1) + u24(2) + u24(3) + b"\x00\x00")
    assert (v13.ee1b, v13.eceb, v13.ee0b, v13.padding) == (1, 2, 3, b"\x00\x00")
    v15 = acc(bytes((172, 15)) + u24(1) + u24(2) + u24(3) + u24(4) + b"\x05")
    assert (v15.ee0b, v15.eceb, v15.ee1b) == (1, 2, 3)
    assert not v15.canonical and v15.padding == u24(4) + b"\x05"


@pytest.mark.rfc(RFC, "3.2.3")
def test_fields_present_only_as_prefix() -> None:
    AccEcnOption.of(0, ee0b=1, eceb=2)
    AccEcnOption.of(1, ee1b=1)
    with pytest.raises(ValueError):
        AccEcnOption.of(0, eceb=2)  # EE0B missing before ECEB
    with pytest.raises(ValueError):
        AccEcnOption.of(1, ee1b=1, ee0b=3)  # ECEB missing before EE0B
    with pytest.raises(ValueError):
        AccEcnOption.of(0, ee0b=1 << 24)


@pytest.mark.rfc(RFC, "3.2.3")
def test_fields_big_endian() -> None:
    assert AccEcnOption.of(0, ee0b=0x123456).to_bytes() == b"\xac\x05\x12\x34\x56"


@pytest.mark.rfc(RFC, "3.2.1")
def test_linux_synack_option_carries_initial_counters() -> None:
    # The option this machine's kernel put on its SYN/ACK (SPEC_NOTES): AccECN1 with all three
    # fields holding the §3.2.1 initial values r.e1b = 1, r.ceb = 0, r.e0b = 1.
    value = acc(bytes.fromhex("ae0b000001000000000001"))
    assert value == AccEcnOption.encode(1, 3, e0b=E0B_INIT, ceb=CEB_INIT, e1b=E1B_INIT)


# --- §3.2.3.1 encoding and decoding, Appendix A.1 --------------------------------------------


@pytest.mark.rfc(RFC, "3.2.3.1")
def test_fields_carry_24_least_significant_bits() -> None:
    value = AccEcnOption.encode(0, 3, e0b=(5 << 24) + 17, ceb=1 << 24, e1b=0xFFFFFF)
    assert (value.ee0b, value.eceb, value.ee1b) == (17, 0, 0xFFFFFF)
    assert encode_field((3 << 24) | 0xABCDEF) == 0xABCDEF


@pytest.mark.rfc(RFC, "A.1")
def test_decode_example_from_appendix_a1() -> None:
    # s.ceb = 33,554,433 and ECEB = 1461 -> d.ceb = 1460, s.ceb = 33,555,893
    s_ceb = 33_554_433
    d = field_delta(1461, s_ceb)
    assert d == 1460
    assert s_ceb + d == 33_555_893


@pytest.mark.rfc(RFC, "3.2.3.1")
def test_decode_minimum_positive_increment_across_wrap() -> None:
    assert field_delta(0x000010, 0xFFFFF0) == 0x20
    assert field_delta(5, 5) == 0
    assert field_delta(4, 5) == (1 << 24) - 1


# --- §7 experimental ExIDs -------------------------------------------------------------------


@pytest.mark.rfc(RFC, "7")
def test_experimental_exids_acc0_acc1() -> None:
    v0 = acc(bytes.fromhex("fe0aacc0000001000002"))
    assert (v0.order, v0.ee0b, v0.eceb, v0.ee1b, v0.exp_kind) == (0, 1, 2, None, 254)
    assert v0.to_bytes() == bytes.fromhex("fe0aacc0000001000002")
    v1 = acc(bytes.fromhex("fd07acc1000009"))
    assert (v1.order, v1.ee1b, v1.exp_kind) == (1, 9, 253)
    # The same counters in the assigned kind are a different value with different bytes.
    assert v0 != AccEcnOption.of(0, ee0b=1, eceb=2)
    # The even earlier single ExID 0xACCE has no layout in the final text: left unparsed.
    (other,) = parse_options(bytes.fromhex("fe07acce000001"))
    assert other == Experimental(254, 0xACCE, b"\x00\x00\x01")


# --- values ----------------------------------------------------------------------------------


def test_to_json_exact() -> None:
    assert AccEcnOption.of(1, ee1b=3, eceb=4, ee0b=5).to_json() == {
        "order": 1, "ee0b": 5, "eceb": 4, "ee1b": 3,
    }
    assert AccEcnOption.of(0, ee0b=7).to_json() == {"order": 0, "ee0b": 7}
    assert AccEcnOption(1).to_json() == {"order": 1}
    padded = acc(bytes((172, 3, 0x99)))
    assert padded.to_json() == {"order": 0, "padding": "99"}


def test_parser_rejects_non_accecn_input() -> None:
    for wire in (bytes((172, 5, 0, 0)), bytes((30, 2)), bytes.fromhex("fe05acce00")):
        with pytest.raises(WireError):
            parse_accecn_option(wire, 0)


def test_in_an_option_list_with_others() -> None:
    wire = Mss(1400).to_bytes() + bytes((1, 174, 5)) + u24(0x10)
    opts = parse_options(wire)
    assert opts[0] == Mss(1400) and opts[2] == AccEcnOption.of(1, ee1b=0x10)


def test_check_rejects_unencodable() -> None:
    with pytest.raises(ValueError):
        AccEcnOption(0, None, None, None, b"\x00\x00\x00").check()  # would parse as a field
    with pytest.raises(ValueError):
        AccEcnOption(2).check()
    AccEcnOption(0, 1, 2, 3, b"\x00\x00\x00\x00").check()


def test_to_bytes_refuses_field_after_absent_one() -> None:
    with pytest.raises(ValueError):
        AccEcnOption(0, None, 5).to_bytes()
    with pytest.raises(ValueError):
        AccEcnOption(1, 1, None, 3).to_bytes()
