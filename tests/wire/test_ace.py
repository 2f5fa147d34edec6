"""ACE field and handshake-encoding helpers (accecn/ace.py) against
draft-ietf-tcpm-accurate-ecn-34 (RFC 9768) §3.1, §3.2.1, §3.2.2 and Appendix A.2.1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accecn.ace import (
    AE,
    CEB_INIT,
    CEP_INIT,
    CWR,
    E0B_INIT,
    E1B_INIT,
    ECE,
    SYN_ACE_ACCECN,
    FeedbackMode,
    IpEcn,
    ace_delta,
    ace_delta_safer,
    ace_encode,
    ace_from_flags,
    client_mode_for_synack,
    client_rcep_after_synack,
    flags_with_ace,
    handshake_ace,
    handshake_codepoint,
    server_mode_for_syn,
    server_scep_from_ack,
    synack_ace,
    synack_codepoint,
)

RFC = "9768"
FIN, SYN, ACK = 0x001, 0x002, 0x010


def ace_bits(ae: int, cwr: int, ece: int) -> int:
    return ae << 2 | cwr << 1 | ece


def flags_of(ae: int, cwr: int, ece: int) -> int:
    return (AE if ae else 0) | (CWR if cwr else 0) | (ECE if ece else 0)


@pytest.mark.rfc(RFC, "3.1.1")
def test_ae_is_former_ns_bit() -> None:
    # Figure 2: AE at bit offset 7 of the 16-bit word, i.e. 0x100 of the 12-bit flags field.
    assert (AE, CWR, ECE) == (0x100, 0x080, 0x040)


@pytest.mark.rfc(RFC, "3.2.2")
def test_ace_is_ae_cwr_ece_with_ae_msb() -> None:
    for flags in range(1 << 12):
        expect = ace_bits(bool(flags & 0x100), bool(flags & 0x080), bool(flags & 0x040))
        assert ace_from_flags(flags) == expect


@pytest.mark.rfc(RFC, "3.2.2")
def test_ace_lsb_is_ece() -> None:
    # "The least significant bit is at bit offset 9 in Figure 3" -- the ECE flag.
    assert ace_from_flags(ECE) == 1
    assert flags_with_ace(0, 1) == ECE
    assert flags_with_ace(0, 4) == AE


@pytest.mark.codec_fuzz
@given(st.integers(0, 0xFFF), st.integers(0, 7))
def test_flags_with_ace_roundtrip(flags: int, ace: int) -> None:
    out = flags_with_ace(flags, ace)
    assert ace_from_flags(out) == ace
    assert out & ~(AE | CWR | ECE) == flags & ~(AE | CWR | ECE)


def test_flags_with_ace_rejects_out_of_range() -> None:
    for bad in (-1, 8):
        with pytest.raises(ValueError):
            flags_with_ace(0, bad)


@pytest.mark.rfc(RFC, "3.1.1")
def test_client_syn_sets_ae_cwr_ece() -> None:
    assert flags_with_ace(SYN, SYN_ACE_ACCECN) == SYN | AE | CWR | ECE


@pytest.mark.rfc(RFC, "3.1.1")
def test_synack_table2_top_block() -> None:
    # (AE, CWR, ECE) on the SYN/ACK feeding back the IP-ECN field of the SYN.
    rows = {
        IpEcn.NOT_ECT: (0, 1, 0),
        IpEcn.ECT1: (0, 1, 1),
        IpEcn.ECT0: (1, 0, 0),
        IpEcn.CE: (1, 1, 0),
    }
    for cp, bits in rows.items():
        assert handshake_ace(cp) == ace_bits(*bits)
        assert synack_ace(FeedbackMode.ACCECN, cp) == ace_bits(*bits)
        assert ace_from_flags(flags_with_ace(SYN | ACK, handshake_ace(cp))) == ace_bits(*bits)
        assert handshake_codepoint(ace_bits(*bits)) == cp
        assert client_mode_for_synack(ace_bits(*bits)) == FeedbackMode.ACCECN
        assert synack_codepoint(ace_bits(*bits), IpEcn.ECT0) == cp
    for ace in (0b000, 0b001, 0b101, 0b111):
        assert handshake_codepoint(ace) is None


@pytest.mark.rfc(RFC, "3.1.2")
def test_client_modes_other_blocks() -> None:
    assert client_mode_for_synack(ace_bits(0, 0, 1)) == FeedbackMode.CLASSIC_ECN
    assert client_mode_for_synack(ace_bits(0, 0, 0)) == FeedbackMode.NOT_ECN
    assert client_mode_for_synack(ace_bits(1, 1, 1)) == FeedbackMode.NOT_ECN  # broken server


@pytest.mark.rfc(RFC, "3.1.3")
def test_client_treats_reserved_101_as_accecn_unchanged() -> None:
    assert client_mode_for_synack(ace_bits(1, 0, 1)) == FeedbackMode.ACCECN
    for sent in IpEcn:
        assert synack_codepoint(ace_bits(1, 0, 1), sent) == sent


@pytest.mark.rfc(RFC, "3.1.2")
def test_server_modes_for_syn() -> None:
    assert server_mode_for_syn(ace_bits(1, 1, 1)) == FeedbackMode.ACCECN
    assert server_mode_for_syn(ace_bits(0, 1, 1)) == FeedbackMode.CLASSIC_ECN
    assert server_mode_for_syn(ace_bits(0, 1, 1), classic=False) == FeedbackMode.NOT_ECN
    assert server_mode_for_syn(ace_bits(0, 0, 0)) == FeedbackMode.NOT_ECN
    assert synack_ace(FeedbackMode.CLASSIC_ECN, IpEcn.CE) == ace_bits(0, 0, 1)
    assert synack_ace(FeedbackMode.NOT_ECN, IpEcn.CE) == ace_bits(0, 0, 0)


@pytest.mark.rfc(RFC, "3.1.3")
def test_server_forward_compat_other_syn_combinations() -> None:
    # Any combination other than 000, 011, 111: negotiate AccECN as if 111.
    for bits in ((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 0)):
        assert server_mode_for_syn(ace_bits(*bits)) == FeedbackMode.ACCECN


@pytest.mark.rfc(RFC, "3.1.3")
def test_server_never_sends_reserved_101() -> None:
    for mode in FeedbackMode:
        for cp in IpEcn:
            assert synack_ace(mode, cp) != ace_bits(1, 0, 1)


@pytest.mark.rfc(RFC, "3.2.1")
def test_initial_counter_values() -> None:
    assert (CEP_INIT, E0B_INIT, E1B_INIT, CEB_INIT) == (5, 1, 1, 0)


@pytest.mark.rfc(RFC, "3.2.2.1")
def test_table3_ack_of_synack() -> None:
    rows = {
        IpEcn.NOT_ECT: (0b010, 5),
        IpEcn.ECT1: (0b011, 5),
        IpEcn.ECT0: (0b100, 5),
        IpEcn.CE: (0b110, 6),
    }
    for cp, (ace, rcep) in rows.items():
        assert handshake_ace(cp) == ace
        assert client_rcep_after_synack(cp) == rcep


@pytest.mark.rfc(RFC, "3.2.2.1")
def test_table4_server_reading_of_ack() -> None:
    expect_scep = {0b000: None, 0b001: 5, 0b010: 5, 0b011: 5, 0b100: 5, 0b101: 5, 0b110: 6,
                   0b111: 5}
    expect_cp = {0b010: IpEcn.NOT_ECT, 0b011: IpEcn.ECT1, 0b100: IpEcn.ECT0, 0b110: IpEcn.CE}
    for ace in range(8):
        assert server_scep_from_ack(ace) == expect_scep[ace]
        assert handshake_codepoint(ace) == expect_cp.get(ace)


@pytest.mark.rfc(RFC, "3.2.2")
def test_receiver_encodes_three_lsbs_of_rcep() -> None:
    assert ace_encode(CEP_INIT) == 0b101
    assert ace_encode(8) == 0
    assert ace_encode(1_000_003) == 1_000_003 % 8


@pytest.mark.rfc(RFC, "3.2.2.2")
def test_sender_minimum_positive_increment() -> None:
    assert ace_delta(ace_encode(5), 5) == 0
    assert ace_delta(ace_encode(7), 5) == 2
    assert ace_delta(ace_encode(9), 5) == 4  # wrapped once
    assert ace_delta(ace_encode(5 + 8), 5) == 0  # a full cycle is invisible
    for s_cep in range(40):
        for inc in range(8):
            assert ace_delta(ace_encode(s_cep + inc), s_cep) == inc


@pytest.mark.rfc(RFC, "A.2.1")
def test_safer_delta_examples() -> None:
    # "9 - ((9-2) % 8) = 2" and "10 - ((10-2) % 8) = 10"
    assert ace_delta_safer(2, 9) == 2
    assert ace_delta_safer(2, 10) == 10
    assert ace_delta_safer(0, 8) == 8


@pytest.mark.rfc(RFC, "3.2.2.5.2")
def test_safer_delta_trusts_ace_when_it_exceeds_acked_packets() -> None:
    assert ace_delta_safer(5, 3) == 5


@pytest.mark.codec_fuzz
@given(st.integers(0, 7), st.integers(0, 10_000))
def test_safer_delta_is_consistent_with_ace(d_cep: int, pkts: int) -> None:
    safer = ace_delta_safer(d_cep, pkts)
    assert safer % 8 == d_cep
    assert safer >= d_cep
    assert safer <= max(pkts, d_cep)
