"""Hypothesis strategies for every MPTCP option value (RFC 8684 §3, kind 30).

One strategy per value class, each producing *valid* values (reserved bits zero, lengths
the RFC allows, every variant of the class covered), and :func:`any_mptcp_option` over all
of them.  Used by the codec tests, the tshark oracle test and the codec benchmark.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mptcp.wire.mptcp_handshake import (
    MPC_FLAG_CHECKSUM,
    MPC_FLAG_HMAC_SHA256,
    MPC_FLAG_NO_JOIN,
    MpCapable,
    MpJoinAck,
    MpJoinSyn,
    MpJoinSynAck,
)
from mptcp.wire.mptcp_options import (
    AddAddr,
    Dss,
    MpExperimental,
    MpFail,
    MpFastClose,
    MpPrio,
    MptcpOption,
    MpTcpRst,
    MptcpRstReason,
    MptcpUnknown,
    RemoveAddr,
)

__all__ = [
    "mp_capable", "mp_join_syn", "mp_join_synack", "mp_join_ack", "dss", "add_addr",
    "remove_addr", "mp_prio", "mp_fail", "mp_fastclose", "mp_tcprst", "mp_experimental",
    "mptcp_unknown", "any_mptcp_option", "STRATEGIES",
]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)

# RFC 8684 §3.1: H set, B clear, D..G clear; A and C free.
_mpc_flags = st.sampled_from([
    a | c | MPC_FLAG_HMAC_SHA256 for a in (0, MPC_FLAG_CHECKSUM) for c in (0, MPC_FLAG_NO_JOIN)
])


@st.composite
def mp_capable(draw: Any) -> MpCapable:
    """SYN (4), SYN/ACK (12), ACK (20), first data (22) and first data + checksum (24)."""
    form = draw(st.integers(0, 4))
    flags = draw(_mpc_flags)
    skey = draw(u64) if form >= 1 else None
    rkey = draw(u64) if form >= 2 else None
    dll = draw(u16) if form >= 3 else None
    csum = draw(u16) if form >= 4 else None
    return MpCapable(1, flags, skey, rkey, dll, csum)


# (st.builds would fill the defaulted ``reserved`` fields with arbitrary ints: every field
# is given explicitly, reserved bits zero.)
_zero = st.just(0)
mp_join_syn = st.builds(
    MpJoinSyn, address_id=u8, receiver_token=u32, sender_random=u32, backup=st.booleans(),
    reserved=_zero,
)
mp_join_synack = st.builds(
    MpJoinSynAck, address_id=u8, sender_hmac=st.binary(min_size=8, max_size=8),
    sender_random=u32, backup=st.booleans(), reserved=_zero,
)
mp_join_ack = st.builds(
    MpJoinAck, sender_hmac=st.binary(min_size=20, max_size=20), reserved=_zero
)


@st.composite
def dss(draw: Any) -> Dss:
    """Every combination of data ACK (none / 4 / 8 bytes), mapping (none / 4- / 8-byte DSN,
    with or without checksum) and DATA_FIN; a/m are clear when A/M are."""
    ack_len = draw(st.sampled_from((0, 4, 8)))
    map_len = draw(st.sampled_from((0, 4, 8)))
    ack = draw(u32 if ack_len == 4 else u64) if ack_len else None
    if map_len:
        dsn: int | None = draw(u32 if map_len == 4 else u64)
        ssn: int | None = draw(u32)
        dll: int | None = draw(u16)
        csum = draw(st.none() | u16)
    else:
        dsn = ssn = dll = csum = None
    return Dss(
        ack, dsn, ssn, dll, csum, draw(st.booleans()), ack_len == 8, map_len == 8, 0
    )


@st.composite
def add_addr(draw: Any) -> AddAddr:
    """IPv4 / IPv6, with or without port; an announcement carries the HMAC, an echo
    (E=1) does not."""
    address = draw(st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16))
    echo = draw(st.booleans())
    port = draw(st.none() | u16)
    mac = None if echo else draw(st.binary(min_size=8, max_size=8))
    return AddAddr(draw(u8), address, port, mac, echo)


remove_addr = st.builds(
    RemoveAddr, address_ids=st.lists(u8, min_size=1, max_size=37).map(tuple), reserved=_zero
)
# the 3-byte form of RFC 8684 and the 4-byte form with an address ID (RFC 6824)
mp_prio = st.builds(MpPrio, backup=st.booleans(), address_id=st.none() | u8, reserved=_zero)
mp_fail = st.builds(MpFail, dsn=u64, reserved=_zero)
mp_fastclose = st.builds(MpFastClose, receiver_key=u64, reserved=_zero)
mp_tcprst = st.builds(
    MpTcpRst,
    reason=st.sampled_from(list(MptcpRstReason)) | st.integers(7, 0xFF),
    transient=st.booleans(),
    reserved=_zero,
)
mp_experimental = st.builds(
    MpExperimental, nibble=st.integers(0, 15), data=st.binary(max_size=37)
)
mptcp_unknown = st.builds(
    MptcpUnknown, subtype=st.integers(0x9, 0xE), nibble=st.integers(0, 15),
    data=st.binary(max_size=37),
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "mp_capable": mp_capable(),
    "mp_join_syn": mp_join_syn,
    "mp_join_synack": mp_join_synack,
    "mp_join_ack": mp_join_ack,
    "dss": dss(),
    "add_addr": add_addr(),
    "remove_addr": remove_addr,
    "mp_prio": mp_prio,
    "mp_fail": mp_fail,
    "mp_fastclose": mp_fastclose,
    "mp_tcprst": mp_tcprst,
    "mp_experimental": mp_experimental,
    "mptcp_unknown": mptcp_unknown,
}
"""Strategy per MPTCP value class, by name (for per-codec parametrized properties)."""


def any_mptcp_option() -> st.SearchStrategy[MptcpOption]:
    """Any valid MPTCP option value, of every class."""
    return st.one_of(*STRATEGIES.values())
