"""AccECN header-flag helpers: the ACE field and the handshake encodings (RFC 9768).

Section numbers are those of draft-ietf-tcpm-accurate-ecn-34, the text that became RFC 9768.
Implements, as pure functions over the 12-bit TCP flags integer and small integers:

* the AE flag (former NS, §3.1.1 Figure 2, §7) and the 3-bit ACE field (AE, CWR, ECE), AE the
  most significant bit (§3.2.2 Figure 3);
* the SYN flag combinations and the feedback mode each side enters (§3.1.1, §3.1.2 Table 2,
  §3.1.3 forward compatibility);
* the handshake encoding of an IP-ECN codepoint in the SYN/ACK (Table 2 top block) and in the
  ACK of the SYN/ACK (§3.2.2.1 Table 3), its inverse, and the Server's reading of that ACK
  (Table 4);
* the initial counter values (§3.2.1) and the ACE counter's encode / wrap-aware decode
  (§3.2.2.2, Appendix A.2.1).

No state: the engine keeps the counters and calls these.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AE", "CWR", "ECE", "ACE_MASK", "ACE_SHIFT", "ACE_MODULUS",
    "IpEcn", "FeedbackMode",
    "SYN_ACE_ACCECN", "SYN_ACE_CLASSIC", "SYN_ACE_NOT_ECN",
    "SYNACK_ACE_CLASSIC", "SYNACK_ACE_NOT_ECN", "SYNACK_ACE_RESERVED", "SYNACK_ACE_BROKEN",
    "CEP_INIT", "CEB_INIT", "E0B_INIT", "E1B_INIT",
    "ace_from_flags", "flags_with_ace", "handshake_ace", "handshake_codepoint",
    "server_mode_for_syn", "synack_ace", "client_mode_for_synack", "synack_codepoint",
    "client_rcep_after_synack", "server_scep_from_ack", "ace_encode", "ace_delta",
    "ace_delta_safer",
]

# TCP header flag bits in the 12-bit flags integer (RFC 9293 §3.1; AE: this document §7).
AE = 0x100
"""Accurate ECN flag, bit offset 7 of the flags field (formerly NS), §3.1.1 / §7."""
CWR = 0x080
ECE = 0x040
ACE_SHIFT = 6
ACE_MASK = AE | CWR | ECE
"""The three flags that form the ACE field on SYN=0 segments in AccECN mode (§3.2.2)."""
ACE_MODULUS = 8
"""DIVACE of Appendix A.2.1: the ACE counter is r.cep mod 8."""


class IpEcn(IntEnum):
    """The IP-ECN field codepoints (RFC 3168 §5)."""

    NOT_ECT = 0b00
    ECT1 = 0b01
    ECT0 = 0b10
    CE = 0b11


class FeedbackMode(IntEnum):
    """The feedback mode a host's half connections enter (§3.1.2 Table 2, last column)."""

    NOT_ECN = 0
    CLASSIC_ECN = 1
    ACCECN = 2


# (AE, CWR, ECE) on a SYN, §3.1.1 and §3.1.2 Table 2.
SYN_ACE_ACCECN = 0b111
"""An AccECN Client's SYN (§3.1.1: MUST set (1,1,1))."""
SYN_ACE_CLASSIC = 0b011
"""A Classic ECN (RFC 3168) Client's SYN."""
SYN_ACE_NOT_ECN = 0b000
# (AE, CWR, ECE) on a SYN/ACK outside the AccECN block of Table 2.
SYNACK_ACE_CLASSIC = 0b001
"""Classic ECN Server (§3.1.2 Table 2)."""
SYNACK_ACE_NOT_ECN = 0b000
SYNACK_ACE_RESERVED = 0b101
"""'Nonce' row: reserved; an AccECN Server MUST NOT send it (§3.1.3)."""
SYNACK_ACE_BROKEN = 0b111
"""A broken Server that reflects the SYN's flags (§3.1.2 block 4)."""

# §3.2.1: counter values on entering AccECN mode (r.* as Data Receiver, s.* as Data Sender).
CEP_INIT = 5
CEB_INIT = 0
E0B_INIT = 1
E1B_INIT = 1

# Table 2 top block == Table 3: IP-ECN codepoint -> ACE.
_HANDSHAKE_ACE = (0b010, 0b011, 0b100, 0b110)  # Not-ECT, ECT(1), ECT(0), CE
_HANDSHAKE_CP: dict[int, IpEcn] = {ace: IpEcn(cp) for cp, ace in enumerate(_HANDSHAKE_ACE)}


def ace_from_flags(flags: int) -> int:
    """The 3-bit ACE value of a 12-bit flags integer: AE is the MSB, ECE the LSB (§3.2.2)."""
    return (flags >> ACE_SHIFT) & 7


def flags_with_ace(flags: int, ace: int) -> int:
    """``flags`` with AE, CWR and ECE replaced by the 3-bit ``ace`` (§3.2.2 Figure 3)."""
    if not 0 <= ace <= 7:
        raise ValueError(f"ACE value {ace} is not 3 bits")
    return (flags & ~ACE_MASK) | (ace << ACE_SHIFT)


def handshake_ace(codepoint: int) -> int:
    """The handshake encoding of an IP-ECN codepoint: Not-ECT 010, ECT(1) 011, ECT(0) 100,
    CE 110.  Used by the Server on the SYN/ACK for the SYN's codepoint (§3.1.1, Table 2 top
    block) and by the Client on the ACK of the SYN/ACK for its codepoint (§3.2.2.1 Table 3)."""
    if not 0 <= codepoint <= 3:
        raise ValueError(f"IP-ECN codepoint {codepoint} is not 2 bits")
    return _HANDSHAKE_ACE[codepoint]


def handshake_codepoint(ace: int) -> IpEcn | None:
    """Inverse of :func:`handshake_ace`: the IP-ECN codepoint a handshake ACE value reports, or
    None for 000, 001, 101, 111 (Table 2 top block; §3.2.2.1 Table 4)."""
    return _HANDSHAKE_CP.get(ace)


def server_mode_for_syn(syn_ace: int, *, classic: bool = True) -> FeedbackMode:
    """The mode an AccECN-enabled Server enters on a SYN with (AE, CWR, ECE) = ``syn_ace``.

    111 -> AccECN (§3.1.1); 011 -> Classic ECN, or Not ECN when ``classic`` is False (§3.1.2
    block 3: either is allowed); 000 -> Not ECN (§3.1.2 block 3); any other combination ->
    AccECN, as if 111 (§3.1.3 forward compatibility).
    """
    if syn_ace == SYN_ACE_NOT_ECN:
        return FeedbackMode.NOT_ECN
    if syn_ace == SYN_ACE_CLASSIC:
        return FeedbackMode.CLASSIC_ECN if classic else FeedbackMode.NOT_ECN
    return FeedbackMode.ACCECN


def synack_ace(mode: FeedbackMode, syn_codepoint: int) -> int:
    """The (AE, CWR, ECE) an AccECN-enabled Server puts on its SYN/ACK (§3.1.1, §3.1.2).

    AccECN mode: the handshake encoding of the IP-ECN codepoint that arrived on the SYN
    (Table 2 top block); Classic ECN: 001; Not ECN: 000.
    """
    if mode == FeedbackMode.ACCECN:
        return handshake_ace(syn_codepoint)
    if mode == FeedbackMode.CLASSIC_ECN:
        return SYNACK_ACE_CLASSIC
    return SYNACK_ACE_NOT_ECN


def client_mode_for_synack(synack_ace_value: int) -> FeedbackMode:
    """The mode an AccECN Client (SYN sent with 111) enters on a SYN/ACK (§3.1.2 Table 2).

    010 / 011 / 100 / 110 -> AccECN (top block); 101 -> AccECN (§3.1.3: reserved, treated as
    confirming AccECN); 001 -> Classic ECN; 000 -> Not ECN; 111 -> Not ECN (broken Server,
    §3.1.2 block 4).
    """
    if synack_ace_value in _HANDSHAKE_CP or synack_ace_value == SYNACK_ACE_RESERVED:
        return FeedbackMode.ACCECN
    if synack_ace_value == SYNACK_ACE_CLASSIC:
        return FeedbackMode.CLASSIC_ECN
    return FeedbackMode.NOT_ECN


def synack_codepoint(synack_ace_value: int, sent_codepoint: int) -> IpEcn | None:
    """The IP-ECN codepoint on the Client's SYN as it arrived at the Server, from the SYN/ACK.

    Table 2 top block; for the reserved 101 the Client acts as if the field arrived unchanged,
    i.e. ``sent_codepoint`` (§3.1.3).  None when the SYN/ACK does not confirm AccECN.
    """
    if synack_ace_value == SYNACK_ACE_RESERVED:
        return IpEcn(sent_codepoint)
    return _HANDSHAKE_CP.get(synack_ace_value)


def client_rcep_after_synack(codepoint: int) -> int:
    """The Client's r.cep after a SYN/ACK arrived with IP-ECN ``codepoint``: 5, or 6 for CE
    (§3.2.2.1 Table 3; §3.2.2.2: incremented once, however many CE-marked SYN/ACKs arrive)."""
    return CEP_INIT + 1 if codepoint == IpEcn.CE else CEP_INIT


def server_scep_from_ack(ace: int) -> int | None:
    """The value an AccECN Server in SYN-RCVD sets s.cep to on a pure ACK (SYN=0, no SACK
    blocks) with this ACE (§3.2.2.1 Table 4): None for 000 ("Disable s.cep": Note 1), 6 for CE
    (110), 5 for every other value."""
    if not 0 <= ace <= 7:
        raise ValueError(f"ACE value {ace} is not 3 bits")
    if ace == 0:
        return None
    return CEP_INIT + 1 if ace == 0b110 else CEP_INIT


def ace_encode(r_cep: int) -> int:
    """The ACE a Data Receiver sends on SYN=0 segments: the 3 LSBs of r.cep (§3.2.2.2)."""
    return r_cep & 7


def ace_delta(ace: int, s_cep: int) -> int:
    """d.cep: the minimum non-negative increment from the Data Sender's s.cep to the received
    ACE, assuming the field wrapped at most once (§3.2.2.2; Appendix A.2.1)."""
    return (ace - s_cep) & 7


def ace_delta_safer(d_cep: int, newly_acked_pkts: int) -> int:
    """dSafer.cep of Appendix A.2.1 (informative, for §3.2.2.5.2): the increment to assume when
    an ACK covers ``newly_acked_pkts`` full-sized segments and every one may have been CE:
    ``newly_acked_pkts - ((newly_acked_pkts - d_cep) % 8)``.  Returns ``d_cep`` when it exceeds
    ``newly_acked_pkts`` (the check the appendix asks for: the estimate was wrong).
    """
    if d_cep >= newly_acked_pkts:
        return d_cep
    return newly_acked_pkts - ((newly_acked_pkts - d_cep) % ACE_MODULUS)
