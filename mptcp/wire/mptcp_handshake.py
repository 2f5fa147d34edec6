"""MPTCP handshake options (TCP option kind 30): MP_CAPABLE and the three MP_JOIN forms.

Implements RFC 8684 §3.1 (MP_CAPABLE, Figure 4: lengths 4 / 12 / 20 / 22 / 24, version
nibble, flags byte A B C D..H) and §3.2 (MP_JOIN for the SYN, Figure 5, length 12; for the
SYN/ACK, Figure 6, length 16; for the third ACK, Figure 7, length 24).  The layout is chosen
from the option length alone, as RFC 8684 §3.1 says ("determined by the SYN and ACK flags of
the packet, along with the option's Length field"); the caller checks the TCP flags.

Every bit on the wire is kept: the MP_CAPABLE flags byte raw, the MP_JOIN reserved bits in
``reserved`` (in their wire position), so captures re-serialize byte-exact.  The kind-30
dispatcher lives in :mod:`mptcp.wire.mptcp_options`.
"""

from __future__ import annotations

from struct import Struct
from struct import error as StructError
from typing import NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.value import wire_value

__all__ = [
    "MPTCP_KIND", "SUBTYPE_MP_CAPABLE", "SUBTYPE_MP_JOIN", "MPTCP_VERSION",
    "MPC_FLAG_CHECKSUM", "MPC_FLAG_EXTENSIBILITY", "MPC_FLAG_NO_JOIN", "MPC_FLAG_HMAC_SHA256",
    "MPC_FLAGS_CRYPTO",
    "MpCapable", "MpJoinSyn", "MpJoinSynAck", "MpJoinAck",
    "parse_mp_capable", "parse_mp_join",
]

MPTCP_KIND = 30
SUBTYPE_MP_CAPABLE = 0x0
SUBTYPE_MP_JOIN = 0x1
MPTCP_VERSION = 1

# RFC 8684 §3.1: the MP_CAPABLE flags byte.
MPC_FLAG_CHECKSUM = 0x80  # A: checksum required
MPC_FLAG_EXTENSIBILITY = 0x40  # B: MUST be 0 in v1
MPC_FLAG_NO_JOIN = 0x20  # C: do not open subflows to my source address/port
MPC_FLAG_HMAC_SHA256 = 0x01  # H
MPC_FLAGS_CRYPTO = 0x1F  # D..H: crypto algorithm negotiation

_new = tuple.__new__
_ENCODE_ERRORS = (StructError, ValueError, OverflowError, TypeError)

_MPC4 = Struct("!BBBB")
_MPC12 = Struct("!BBBBQ")
_MPC20 = Struct("!BBBBQQ")
_MPC22 = Struct("!BBBBQQH")
_MPC24 = Struct("!BBBBQQHH")
_JOIN_SYN = Struct("!BBBBII")
_JOIN_SYNACK = Struct("!BBBB8sI")
_JOIN_ACK = Struct("!BBH20s")


def _bad_len(name: str, length: int, expected: str, off: int) -> WireError:
    return WireError(off + 1, f"MPTCP {name} option length {length}, expected {expected}")


@wire_value
class MpCapable(NamedTuple):
    """MP_CAPABLE (subtype 0x0), RFC 8684 §3.1, Figure 4.

    The wire length follows from which fields are set: none -> 4 (SYN), ``sender_key`` ->
    12 (SYN/ACK; v0 SYN), both keys -> 20 (third ACK), plus ``data_level_length`` -> 22
    (first data), plus ``checksum`` -> 24.  ``flags`` is the raw flags byte (A=0x80 B=0x40
    C=0x20 H=0x01; see the ``MPC_FLAG_*`` constants).
    """

    version: int = MPTCP_VERSION
    flags: int = MPC_FLAG_HMAC_SHA256
    sender_key: int | None = None
    receiver_key: int | None = None
    data_level_length: int | None = None
    checksum: int | None = None

    @property
    def checksum_required(self) -> bool:
        """Flag A (RFC 8684 §3.1): the sender requires DSS checksums."""
        return bool(self.flags & MPC_FLAG_CHECKSUM)

    @property
    def extensibility(self) -> bool:
        """Flag B (RFC 8684 §3.1): MUST be 0 for this version."""
        return bool(self.flags & MPC_FLAG_EXTENSIBILITY)

    @property
    def no_join(self) -> bool:
        """Flag C (RFC 8684 §3.1): no additional subflows to the sender's address/port."""
        return bool(self.flags & MPC_FLAG_NO_JOIN)

    @property
    def hmac_sha256(self) -> bool:
        """Flag H (RFC 8684 §3.1): HMAC-SHA256 is proposed / selected."""
        return bool(self.flags & MPC_FLAG_HMAC_SHA256)

    def to_bytes(self) -> bytes:
        b2 = self.version & 0x0F  # subtype 0x0 in the high nibble
        flags = self.flags
        skey = self.sender_key
        try:
            if skey is None:
                if self.receiver_key is not None or self.data_level_length is not None:
                    raise ValueError("MP_CAPABLE: receiver key or data without sender key")
                return _MPC4.pack(MPTCP_KIND, 4, b2, flags)
            rkey = self.receiver_key
            if rkey is None:
                if self.data_level_length is not None:
                    raise ValueError("MP_CAPABLE: data-level length without receiver key")
                return _MPC12.pack(MPTCP_KIND, 12, b2, flags, skey)
            dll = self.data_level_length
            if dll is None:
                if self.checksum is not None:
                    raise ValueError("MP_CAPABLE: checksum without data-level length")
                return _MPC20.pack(MPTCP_KIND, 20, b2, flags, skey, rkey)
            csum = self.checksum
            if csum is None:
                return _MPC22.pack(MPTCP_KIND, 22, b2, flags, skey, rkey, dll)
            return _MPC24.pack(MPTCP_KIND, 24, b2, flags, skey, rkey, dll, csum)
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "subtype": "MP_CAPABLE", "version": self.version, "flags": self.flags,
        }
        if self.sender_key is not None:
            out["sender_key"] = self.sender_key
        if self.receiver_key is not None:
            out["receiver_key"] = self.receiver_key
        if self.data_level_length is not None:
            out["data_level_length"] = self.data_level_length
        if self.checksum is not None:
            out["checksum"] = self.checksum
        return out


def parse_mp_capable(opt: bytes, off: int) -> MpCapable:
    """MP_CAPABLE from the whole option (kind, length, body); layout by length (§3.1)."""
    n = len(opt)
    if n == 20:
        _, _, b2, flags, skey, rkey = _MPC20.unpack(opt)
        return _new(MpCapable, (b2 & 0x0F, flags, skey, rkey, None, None))
    if n == 4:
        return _new(MpCapable, (opt[2] & 0x0F, opt[3], None, None, None, None))
    if n == 12:
        _, _, b2, flags, skey = _MPC12.unpack(opt)
        return _new(MpCapable, (b2 & 0x0F, flags, skey, None, None, None))
    if n == 22:
        _, _, b2, flags, skey, rkey, dll = _MPC22.unpack(opt)
        return _new(MpCapable, (b2 & 0x0F, flags, skey, rkey, dll, None))
    if n == 24:
        return _new(MpCapable, (opt[2] & 0x0F, *_MPC24.unpack(opt)[3:]))
    raise _bad_len("MP_CAPABLE", n, "4, 12, 20, 22 or 24", off)


@wire_value
class MpJoinSyn(NamedTuple):
    """MP_JOIN on the SYN (subtype 0x1, length 12), RFC 8684 §3.2, Figure 5.

    ``reserved`` holds the three reserved bits in their wire position (mask 0x0E of the
    flags nibble; MUST be 0 when sending).
    """

    address_id: int
    receiver_token: int
    sender_random: int
    backup: bool = False
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw 4-bit flags field (reserved bits and B)."""
        return (self.reserved & 0x0E) | (1 if self.backup else 0)

    def to_bytes(self) -> bytes:
        try:
            return _JOIN_SYN.pack(
                MPTCP_KIND, 12, 0x10 | (self.reserved & 0x0E) | (1 if self.backup else 0),
                self.address_id, self.receiver_token, self.sender_random,
            )
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "subtype": "MP_JOIN", "flags": self.flags, "backup": bool(self.backup),
            "address_id": self.address_id, "receiver_token": self.receiver_token,
            "sender_random": self.sender_random,
        }


@wire_value
class MpJoinSynAck(NamedTuple):
    """MP_JOIN on the SYN/ACK (subtype 0x1, length 16), RFC 8684 §3.2, Figure 6.

    ``sender_hmac`` is the 8-byte truncated HMAC (leftmost 64 bits, see
    :func:`mptcp.wire.mptcp_crypto.join_synack_hmac`).
    """

    address_id: int
    sender_hmac: bytes
    sender_random: int
    backup: bool = False
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw 4-bit flags field (reserved bits and B)."""
        return (self.reserved & 0x0E) | (1 if self.backup else 0)

    def to_bytes(self) -> bytes:
        if len(self.sender_hmac) != 8:
            raise ValueError(f"MP_JOIN SYN/ACK HMAC must be 8 bytes, not {self.sender_hmac!r}")
        try:
            return _JOIN_SYNACK.pack(
                MPTCP_KIND, 16, 0x10 | (self.reserved & 0x0E) | (1 if self.backup else 0),
                self.address_id, self.sender_hmac, self.sender_random,
            )
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "subtype": "MP_JOIN", "flags": self.flags, "backup": bool(self.backup),
            "address_id": self.address_id, "sender_hmac": self.sender_hmac.hex(),
            "sender_random": self.sender_random,
        }


@wire_value
class MpJoinAck(NamedTuple):
    """MP_JOIN on the third ACK (subtype 0x1, length 24), RFC 8684 §3.2, Figure 7.

    ``sender_hmac`` is the 20-byte truncated HMAC (leftmost 160 bits, see
    :func:`mptcp.wire.mptcp_crypto.join_ack_hmac`); ``reserved`` the 12 bits after the
    subtype (MUST be 0 when sending).
    """

    sender_hmac: bytes
    reserved: int = 0

    def to_bytes(self) -> bytes:
        if len(self.sender_hmac) != 20:
            raise ValueError(f"MP_JOIN ACK HMAC must be 20 bytes, not {self.sender_hmac!r}")
        try:
            return _JOIN_ACK.pack(
                MPTCP_KIND, 24, 0x1000 | (self.reserved & 0x0FFF), self.sender_hmac
            )
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {"subtype": "MP_JOIN", "sender_hmac": self.sender_hmac.hex()}


def parse_mp_join(opt: bytes, off: int) -> MpJoinSyn | MpJoinSynAck | MpJoinAck:
    """MP_JOIN from the whole option; the form is chosen by the length (12 / 16 / 24)."""
    n = len(opt)
    if n == 12:
        _, _, b2, aid, tok, rnd = _JOIN_SYN.unpack(opt)
        return _new(MpJoinSyn, (aid, tok, rnd, bool(b2 & 1), b2 & 0x0E))
    if n == 16:
        _, _, b2, aid, mac, rnd = _JOIN_SYNACK.unpack(opt)
        return _new(MpJoinSynAck, (aid, mac, rnd, bool(b2 & 1), b2 & 0x0E))
    if n == 24:
        return _new(MpJoinAck, (opt[4:], ((opt[2] & 0x0F) << 8) | opt[3]))
    raise _bad_len("MP_JOIN", n, "12, 16 or 24", off)
