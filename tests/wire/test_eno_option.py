"""TCP-ENO option codec (tcpinc/eno_option.py) against RFC 8547 §4 and §5.1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tcpinc  # noqa: F401  (registers the codec)
from mptcp.wire.errors import WireError
from mptcp.wire.options import NOP, Mss, parse_options, serialize_options
from tcpinc.eno_option import (
    ENO_ACK,
    ENO_EXID,
    ENO_KIND,
    TEP_P256,
    TEP_P521,
    TEP_X25519,
    EnoOpaque,
    EnoOption,
    GlobalSuboption,
    Tep,
    TepFraming,
    find_syn_eno,
    negotiate,
    negotiated_tep,
    order_by_role,
    parse_eno,
    parse_eno_contents,
    parse_eno_option,
    transcript,
)
from tests.strategies.ext import eno_opaque_options, eno_options, prefixed_option_bytes

B1 = GlobalSuboption.make(b=True)
X, Y, Z = 0x21, 0x22, 0x23


def eno(*subs: GlobalSuboption | Tep, kind: int = ENO_KIND) -> EnoOption:
    return EnoOption(tuple(subs), kind)


def bare(tep: int) -> Tep:
    return Tep(tep)


# --- properties ------------------------------------------------------------------------------


@pytest.mark.codec_fuzz
@given(eno_options(max_len=255))
def test_roundtrip_valid_values(value: EnoOption) -> None:
    wire = value.to_bytes()
    assert parse_eno(wire) == value
    assert parse_options(wire) == (value,)


@pytest.mark.codec_fuzz
@given(prefixed_option_bytes(ENO_KIND))
def test_strict_parser_arbitrary_body(wire: bytes) -> None:
    try:
        value = parse_eno(wire, 7)
    except WireError as err:
        assert 7 + 2 <= err.offset < 7 + len(wire)
        return
    assert value.to_bytes() == wire


@pytest.mark.codec_fuzz
@given(st.sampled_from((253, 254)).flatmap(lambda k: prefixed_option_bytes(k, ENO_EXID)))
def test_registered_parser_total_experimental(wire: bytes) -> None:
    (value,) = parse_options(wire)
    assert isinstance(value, EnoOption | EnoOpaque)
    assert value.kind == wire[0]
    assert value.to_bytes() == wire


@pytest.mark.codec_fuzz
@given(prefixed_option_bytes(ENO_KIND))
def test_registered_parser_total_and_agrees_with_strict(wire: bytes) -> None:
    (value,) = parse_options(wire)
    assert value.to_bytes() == wire
    try:
        strict = parse_eno(wire)
    except WireError:
        assert type(value) is EnoOpaque
    else:
        assert value == strict


@pytest.mark.codec_fuzz
@given(eno_opaque_options(max_len=255))
def test_opaque_values_roundtrip_and_are_not_syn_form(value: EnoOpaque) -> None:
    wire = value.to_bytes()
    assert parse_options(wire) == (value,)
    with pytest.raises(WireError):
        parse_eno(wire)
    assert value.syn_form_error.reason


# --- §4.1 the option and Table 1 -------------------------------------------------------------


@pytest.mark.rfc("8547", "4.1")
def test_initial_suboption_byte_table1() -> None:
    for c in range(256):
        if c < 0x20:  # v = 0, glt < 0x20: global suboption
            assert parse_eno_contents(bytes((c,))) == (GlobalSuboption(c),)
        elif c < 0x80:  # v = 0, glt >= 0x20: TEP without data
            assert parse_eno_contents(bytes((c,))) == (Tep(c, b"", TepFraming.BARE),)
        elif c < 0xA0:  # v = 1, glt < 0x20: length byte for the next suboption
            body = bytes((c, 0xA1)) + bytes(range((c & 0x1F) + 1))
            (sub,) = parse_eno_contents(body)
            assert sub == Tep(0x21, bytes(range((c & 0x1F) + 1)), TepFraming.LENGTH)
        else:  # v = 1, glt >= 0x20: TEP followed by data
            (sub,) = parse_eno_contents(bytes((c, 0x55)))
            assert sub == Tep(c - 0x80, b"\x55", TepFraming.TO_END)


@pytest.mark.rfc("8547", "4.1")
def test_option_kind_and_length_byte() -> None:
    value = eno(B1, bare(X))
    assert value.to_bytes() == bytes((69, 4, 0x01, 0x21))


@pytest.mark.rfc("8547", "4.1")
def test_non_syn_form_sent_with_zero_contents() -> None:
    # "the contents of a non-SYN-form ENO option MUST be zero bytes (i.e., N = 0)"
    assert ENO_ACK.to_bytes() == b"\x45\x02"
    assert parse_options(b"\x45\x02") == (ENO_ACK,)


@pytest.mark.rfc("8547", "4.1")
def test_non_syn_form_contents_ignored_on_receipt() -> None:
    # "... MUST be ignored in received segments": arbitrary contents never break the segment.
    for contents in (b"\x80", b"\x9f\x20", b"\x81\xa1\x00", bytes(range(0x80, 0xA0))):
        wire = bytes((69, 2 + len(contents))) + contents
        opts = parse_options(Mss(1460).to_bytes() + wire + b"\x01\x01")
        assert opts[0] == Mss(1460)
        assert opts[1] == EnoOpaque(contents)
        assert opts[1].to_bytes() == wire


@pytest.mark.rfc("8547", "4.1")
def test_syn_with_two_eno_options_has_none() -> None:
    one = eno(bare(X))
    assert find_syn_eno([Mss(1460), one, NOP]) == one
    assert find_syn_eno([one, one]) is None
    assert find_syn_eno([one, EnoOpaque(b"\x80")]) is None
    assert find_syn_eno([Mss(1460)]) is None


@pytest.mark.rfc("8547", "11")
def test_kind_69_and_253_in_one_syn_count_as_two() -> None:
    # "hosts MUST NOT include both option 69 and option 253 with ExID 0x454E in the same TCP
    # segment" -- a receiver sees two ENO options and treats the SYN as having none (§4.1).
    wire = eno(bare(X)).to_bytes() + eno(bare(X), kind=253).to_bytes()
    assert find_syn_eno(parse_options(wire)) is None


@pytest.mark.rfc("8547", "11")
def test_experimental_framing_exid_0x454e() -> None:
    wire = bytes.fromhex("fd06454e0121")
    (value,) = parse_options(wire)
    assert value == EnoOption((GlobalSuboption(1), Tep(0x21)), 253)
    assert value.to_bytes() == wire
    assert value.to_json() == {
        "kind": 253,
        "exid": 0x454E,
        "suboptions": [
            {"type": "global", "value": 1, "b": True, "a": False, "z": 0},
            {"type": "tep", "id": 0x21, "data": "", "framing": "bare"},
        ],
    }
    # Same suboptions, different framing: different values, different bytes.
    assert value != EnoOption(value.suboptions)
    assert parse_eno(bytes.fromhex("fe06454e0121")).kind == 254


# --- §4.2 global suboption -------------------------------------------------------------------


@pytest.mark.rfc("8547", "4.2")
def test_global_suboption_bits() -> None:
    g = GlobalSuboption(0x1F)
    assert (g.b, g.a, g.z) == (True, True, 0x1C)
    assert GlobalSuboption(0x02).a and not GlobalSuboption(0x02).b


@pytest.mark.rfc("8547", "4.2")
def test_z_bits_zero_when_sent() -> None:
    for b in (False, True):
        for a in (False, True):
            assert GlobalSuboption.make(b=b, a=a).z == 0


@pytest.mark.rfc("8547", "4.2")
def test_z_bits_ignored_when_received() -> None:
    (value,) = parse_options(bytes((69, 3, 0x1C | 0x01)))
    assert isinstance(value, EnoOption)
    assert value.b and not value.a
    assert value.to_bytes() == bytes((69, 3, 0x1D))  # kept byte-exact for the transcript


@pytest.mark.rfc("8547", "4.2")
def test_receiver_ignores_all_but_first_global_suboption() -> None:
    value = parse_eno(bytes((69, 5, 0x00, 0x21, 0x03)))
    assert not value.b and not value.a
    assert value.global_suboption == GlobalSuboption(0)


@pytest.mark.rfc("8547", "4.2")
def test_implicit_global_suboption_is_zero() -> None:
    value = eno(bare(X), bare(Y))
    assert value.global_suboption == GlobalSuboption(0)
    assert not value.b and not value.a


# --- §4.3 roles ------------------------------------------------------------------------------


@pytest.mark.rfc("8547", "4.3")
def test_roles_from_b_bit() -> None:
    a_opt, b_opt = eno(bare(X)), eno(B1, bare(X))
    assert order_by_role(a_opt, b_opt) == (a_opt, b_opt)
    assert order_by_role(b_opt, a_opt) == (a_opt, b_opt)
    assert order_by_role(a_opt, a_opt) is None
    assert order_by_role(b_opt, b_opt) is None


@pytest.mark.rfc("8547", "4.3")
def test_same_b_on_both_sides_fails() -> None:
    assert negotiate(eno(bare(X)), eno(bare(X))) is None  # both b = 0
    assert negotiate(eno(B1, bare(X)), eno(B1, bare(X))) is None  # both b = 1
    assert negotiate(eno(bare(X)), eno(B1, bare(X))) == X


@pytest.mark.rfc("8547", "4.2")
def test_passive_opener_without_explicit_global_is_role_a() -> None:
    # Passive openers MUST include an explicit global suboption: without it b = 0.
    assert negotiate(eno(bare(X)), eno(bare(X))) is None


@pytest.mark.rfc("8547", "8.1")
def test_echoed_syn_option_fails_role_negotiation() -> None:
    a_syn = eno(bare(X), bare(Y))
    assert negotiate(a_syn, a_syn) is None


# --- §4.4 suboption data length --------------------------------------------------------------


@pytest.mark.rfc("8547", "4.4")
def test_length_byte_encodes_1_to_32_bytes() -> None:
    for n in (1, 2, 31, 32):
        tep = Tep(X, bytes(n), TepFraming.LENGTH)
        wire = tep.to_bytes()
        assert wire[0] == 0x80 | (n - 1)
        assert wire[1] == X | 0x80
        assert len(wire) == n + 2
    for n in (0, 33):
        with pytest.raises(ValueError):
            Tep(X, bytes(n), TepFraming.LENGTH).to_bytes()


@pytest.mark.rfc("8547", "4.4")
def test_length_prefixed_suboption_then_more_suboptions() -> None:
    wire = bytes((69, 8, 0x01, 0x81, 0xA1, 0xAA, 0xBB, 0x22))
    value = parse_eno(wire)
    assert value.suboptions == (
        GlobalSuboption(1), Tep(X, b"\xaa\xbb", TepFraming.LENGTH), Tep(Y),
    )
    assert value.to_bytes() == wire


@pytest.mark.rfc("8547", "4.4")
def test_v1_tep_without_length_byte_extends_to_end() -> None:
    value = parse_eno(bytes((69, 6, 0x21, 0xA2, 0x22, 0x01)))
    # The bytes after 0xa2 are its data, not further suboptions.
    assert value.suboptions == (Tep(X), Tep(Y, b"\x22\x01", TepFraming.TO_END))


@pytest.mark.rfc("8547", "4.4")
def test_last_suboption_may_exceed_32_bytes() -> None:
    data = bytes(range(40))
    value = eno(B1, Tep(X, data, TepFraming.TO_END))
    assert parse_eno(value.to_bytes()) == value
    assert parse_eno(value.to_bytes()).suboptions[1] == Tep(X, data, TepFraming.TO_END)


@pytest.mark.rfc("8547", "4.4")
def test_to_end_suboption_must_be_last() -> None:
    with pytest.raises(ValueError):
        eno(Tep(X, b"\x01", TepFraming.TO_END), bare(Y)).to_bytes()


@pytest.mark.rfc("8547", "4.4")
def test_length_byte_running_past_the_end_is_rejected() -> None:
    # Rule 1: "A length byte indicates that suboption data would extend beyond the end".
    for wire in (
        bytes((69, 5, 0x21, 0x81, 0xA2)),  # 2 data bytes announced, 0 present
        bytes((69, 6, 0x21, 0x81, 0xA2, 0x00)),  # 2 announced, 1 present
        bytes((69, 4, 0x21, 0x80)),  # length byte is the last byte
    ):
        with pytest.raises(WireError) as exc:
            parse_eno(wire, 100)
        assert exc.value.offset == 103
        assert type(parse_eno_option(wire, 100)) is EnoOpaque


@pytest.mark.rfc("8547", "4.4")
def test_length_byte_followed_by_0x00_0x9f_is_rejected() -> None:
    # Rule 2: the byte after a length byte MUST be a TEP identifier with v = 1.
    for follower in range(0xA0):
        wire = bytes((69, 6, 0x80, follower, 0x00, 0x00))
        with pytest.raises(WireError) as exc:
            parse_eno(wire, 10)
        assert exc.value.offset == 13
    for follower in range(0xA0, 0x100):
        parse_eno(bytes((69, 5, 0x80, follower, 0x00)))


@pytest.mark.rfc("8547", "4.4")
def test_ill_formed_syn_option_ignored_not_segment_error() -> None:
    # "A host MUST ignore an ENO option in a SYN segment and MUST disable encryption" -- the
    # rest of the options still parse and the ENO option is not usable for negotiation.
    wire = Mss(1460).to_bytes() + bytes((69, 4, 0x21, 0x9F)) + b"\x01\x01"
    opts = parse_options(wire, 20)
    assert opts[0] == Mss(1460)
    assert find_syn_eno(opts) is None
    opaque = opts[1]
    assert isinstance(opaque, EnoOpaque)
    assert negotiate(opaque, eno(B1, bare(X))) is None
    assert serialize_options(opts) == wire
    assert opaque.syn_form_error.offset == 3


# --- §4.5 the negotiated TEP -----------------------------------------------------------------


@pytest.mark.rfc("8547", "4.5")
def test_negotiated_is_last_valid_tep_in_b() -> None:
    a_syn = eno(bare(X), bare(Y), bare(Z))
    assert negotiate(a_syn, eno(B1, bare(X), bare(Z), bare(Y))) == Y
    assert negotiate(a_syn, eno(B1, bare(Y), bare(X))) == X
    # A's order does not influence priority.
    assert negotiate(eno(bare(Z), bare(Y), bare(X)), eno(B1, bare(X), bare(Z), bare(Y))) == Y


@pytest.mark.rfc("8547", "4.5")
def test_tep_must_be_offered_by_both() -> None:
    assert negotiate(eno(bare(X)), eno(B1, bare(X), bare(Y))) == X
    assert negotiate(eno(bare(Z)), eno(B1, bare(X), bare(Y))) is None


@pytest.mark.rfc("8547", "4.5")
def test_validity_callback_rules_2_and_3() -> None:
    a_syn = eno(bare(X), Tep(Y, b"\x01", TepFraming.LENGTH), bare(Y))
    b_syn = eno(B1, bare(X), Tep(Y, b"\x02", TepFraming.TO_END))
    seen: list[tuple[int, tuple[Tep, ...], tuple[Tep, ...]]] = []

    def reject_y(glt: int, a_subs: tuple[Tep, ...], b_subs: tuple[Tep, ...]) -> bool:
        seen.append((glt, a_subs, b_subs))
        return glt != Y

    assert negotiate(a_syn, b_syn) == Y
    assert negotiate(a_syn, b_syn, valid=reject_y) == X
    assert seen[0] == (Y, (Tep(Y, b"\x01", TepFraming.LENGTH), Tep(Y)), (b_syn.suboptions[2],))


@pytest.mark.rfc("8547", "6")
def test_examples_figures_9_and_12() -> None:
    # Figure 9: A: ENO<X,Y>, B: ENO<b=1,Y> -> Y.  Figure 12: A: ENO<Y,X>, B: ENO<b=1,X,Y,Z> -> Y.
    assert negotiate(eno(bare(X), bare(Y)), eno(B1, bare(Y))) == Y
    assert negotiate(eno(bare(Y), bare(X)), eno(B1, bare(X), bare(Y), bare(Z))) == Y


# --- §4.6 handshake --------------------------------------------------------------------------


@pytest.mark.rfc("8547", "4.6")
def test_vacuous_option_falls_back() -> None:
    assert EnoOption((B1,)).vacuous and ENO_ACK.vacuous
    assert not eno(bare(X)).vacuous
    assert negotiate(eno(bare(X)), EnoOption((B1,))) is None
    assert negotiate(ENO_ACK, eno(B1, bare(X))) is None


@pytest.mark.rfc("8547", "4.6")
def test_missing_or_ill_formed_option_falls_back() -> None:
    assert negotiate(None, eno(B1, bare(X))) is None
    assert negotiate(eno(bare(X)), None) is None
    assert negotiate(eno(bare(X)), EnoOpaque(b"\x01\x80")) is None


# --- §4.7 SYN TEP, §4.8 transcript, §5.1 session ID byte -------------------------------------


@pytest.mark.rfc("8547", "4.7")
def test_syn_tep_is_last_tep() -> None:
    assert eno(bare(X), B1, Tep(Y, b"\x01", TepFraming.LENGTH), GlobalSuboption(0)).syn_tep == (
        Tep(Y, b"\x01", TepFraming.LENGTH)
    )
    assert eno(B1).syn_tep is None


@pytest.mark.rfc("8547", "4.8")
def test_transcript_is_both_options_as_on_the_wire() -> None:
    a_wire = bytes((69, 4, 0x21, 0x22))
    b_wire = bytes.fromhex("fd09454e0181a2ffee")  # experimental framing, kept in the transcript
    a_syn, b_syn = parse_eno(a_wire), parse_eno(b_wire)
    assert transcript(a_syn, b_syn) == a_wire + b_wire


@pytest.mark.rfc("8547", "5.1")
def test_session_id_byte_keeps_v_bit_of_b_suboption() -> None:
    a_syn = eno(bare(TEP_P256), bare(TEP_X25519))
    tep = negotiated_tep(a_syn, eno(B1, Tep(TEP_X25519, b"\x07", TepFraming.TO_END)))
    assert tep is not None and tep.suboption_byte == 0x80 | TEP_X25519
    tep = negotiated_tep(a_syn, eno(B1, bare(TEP_X25519)))
    assert tep is not None and tep.suboption_byte == TEP_X25519


# --- values ----------------------------------------------------------------------------------


def test_to_json_shape() -> None:
    value = eno(B1, bare(TEP_P521), Tep(TEP_P256, b"\xab", TepFraming.LENGTH))
    assert value.to_json() == {
        "kind": 69,
        "suboptions": [
            {"type": "global", "value": 1, "b": True, "a": False, "z": 0},
            {"type": "tep", "id": 0x22, "data": "", "framing": "bare"},
            {"type": "tep", "id": 0x21, "data": "ab", "framing": "length"},
        ],
    }
    assert EnoOpaque(b"\x80").to_json()["contents"] == "80"


def test_values_of_different_types_differ() -> None:
    values: list[object] = [GlobalSuboption(0x21), Tep(0x21), EnoOption(), EnoOpaque(b"")]
    assert tuple(GlobalSuboption(0x21)) == tuple(Tep(0x21))[:1]
    for i, left in enumerate(values):
        for j, right in enumerate(values):
            assert (left == right) == (i == j)


def test_unencodable_values_raise_value_error() -> None:
    for bad in (Tep(0x1F), Tep(0x80), Tep(X, b"\x00"), GlobalSuboption(0x20)):
        with pytest.raises(ValueError):
            bad.to_bytes()
    with pytest.raises(ValueError):
        EnoOption((bare(X),), 30).to_bytes()
    with pytest.raises(ValueError):
        EnoOption((Tep(X, bytes(253), TepFraming.TO_END),)).to_bytes()
