"""MPTCP option codecs (TCP option kind 30) after the handshake, and the kind-30 dispatcher.

Implements RFC 8684 §3.3 (DSS, Figure 9: flags A a M m F; the checksum's presence is
inferred from the option length), §3.3.8 (MP_PRIO, Figure 11; also the 4-byte form of
RFC 6824 §3.3.8 with a trailing Address ID), §3.4.1 (ADD_ADDR, Figure 12: address family,
port and HMAC inferred from the length; E = echo), §3.4.2 (REMOVE_ADDR, Figure 13), §3.5
(MP_FASTCLOSE, Figure 14), §3.6 (MP_TCPRST, Figure 15, reason codes), §3.7 (MP_FAIL,
Figure 16) and §7 (subtype registry: 0xf MP_EXPERIMENTAL, 0x9..0xe unassigned -- kept
byte-exact as :class:`MptcpUnknown`).  MP_CAPABLE and MP_JOIN are in
:mod:`mptcp.wire.mptcp_handshake`.

Importing this module registers :func:`parse_mptcp_option` for kind 30 in the generic option
registry (:mod:`mptcp.wire.options`).  Reserved bits are kept in each value's ``reserved``
field, in their wire position, so that captured options re-serialize byte-exact.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from ipaddress import IPv4Address, IPv6Address, ip_address
from struct import Struct
from struct import error as StructError
from typing import NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.mptcp_handshake import (
    MPTCP_KIND,
    MpCapable,
    MpJoinAck,
    MpJoinSyn,
    MpJoinSynAck,
    parse_mp_capable,
    parse_mp_join,
)
from mptcp.wire.options import register_option
from mptcp.wire.value import wire_value

__all__ = [
    "SUBTYPE_DSS", "SUBTYPE_ADD_ADDR", "SUBTYPE_REMOVE_ADDR", "SUBTYPE_MP_PRIO",
    "SUBTYPE_MP_FAIL", "SUBTYPE_MP_FASTCLOSE", "SUBTYPE_MP_TCPRST", "SUBTYPE_MP_EXPERIMENTAL",
    "DSS_FLAG_DATA_ACK", "DSS_FLAG_DATA_ACK_8", "DSS_FLAG_MAPPING", "DSS_FLAG_DSN_8",
    "DSS_FLAG_DATA_FIN",
    "MptcpRstReason", "Dss", "AddAddr", "RemoveAddr", "MpPrio", "MpFail", "MpFastClose",
    "MpTcpRst", "MpExperimental", "MptcpUnknown", "MptcpOption", "MPTCP_OPTION_CLASSES",
    "parse_mptcp_option",
]

SUBTYPE_DSS = 0x2
SUBTYPE_ADD_ADDR = 0x3
SUBTYPE_REMOVE_ADDR = 0x4
SUBTYPE_MP_PRIO = 0x5
SUBTYPE_MP_FAIL = 0x6
SUBTYPE_MP_FASTCLOSE = 0x7
SUBTYPE_MP_TCPRST = 0x8
SUBTYPE_MP_EXPERIMENTAL = 0xF

# RFC 8684 §3.3, Figure 9: low bits of the DSS flags byte.
DSS_FLAG_DATA_ACK = 0x01  # A
DSS_FLAG_DATA_ACK_8 = 0x02  # a
DSS_FLAG_MAPPING = 0x04  # M
DSS_FLAG_DSN_8 = 0x08  # m
DSS_FLAG_DATA_FIN = 0x10  # F

_new = tuple.__new__
_from_bytes = int.from_bytes
_BBH = Struct("!BBH")
_BBHQ = Struct("!BBHQ")
_ENCODE_ERRORS = (StructError, ValueError, OverflowError, TypeError)


def _bad_len(name: str, length: int, expected: str, off: int) -> WireError:
    return WireError(off + 1, f"MPTCP {name} option length {length}, expected {expected}")


class MptcpRstReason(IntEnum):
    """MP_TCPRST reason codes, RFC 8684 §3.6 (unknown codes stay plain ints)."""

    UNSPECIFIED = 0x00
    MPTCP_SPECIFIC = 0x01
    LACK_OF_RESOURCES = 0x02
    ADMINISTRATIVELY_PROHIBITED = 0x03
    TOO_MUCH_OUTSTANDING_DATA = 0x04
    UNACCEPTABLE_PERFORMANCE = 0x05
    MIDDLEBOX_INTERFERENCE = 0x06


_REASONS: dict[int, int] = {int(r): r for r in MptcpRstReason}


# --- DSS (RFC 8684 §3.3) ------------------------------------------------------------------
# Layout tables keyed by the four layout flags (A a M m).  Parse key: (length << 4) | flags;
# a mapping may be followed by a 2-byte checksum, so each M combination has two lengths.
# Pack key: flags | 0x20 when a checksum is present.
_SHAPE_NONE, _SHAPE_ACK, _SHAPE_MAP, _SHAPE_MAP_CS, _SHAPE_ACK_MAP, _SHAPE_ACK_MAP_CS = range(6)
_DSS_PARSE: dict[int, tuple[Struct, int]] = {}
_DSS_PACK: dict[int, tuple[Callable[..., bytes], int]] = {}
# The same packs after NOP NOP Timestamps (RFC 7323 Appendix A: three more 32-bit words), for
# the per-segment fast path of ``Segment.to_bytes``.
_TS_DSS_PACK: dict[int, tuple[Callable[..., bytes], int]] = {}
# The same keys -> the fields' struct format (no byte order) and the word: for the packs of
# ``Segment.to_bytes`` that put a DSS in one call with the IP and TCP headers.
_DSS_FMT: dict[int, tuple[str, int]] = {}


def _build_dss_tables() -> None:
    for lo in range(16):
        ack_fmt = ("Q" if lo & DSS_FLAG_DATA_ACK_8 else "I") if lo & DSS_FLAG_DATA_ACK else ""
        map_fmt = ("Q" if lo & DSS_FLAG_DSN_8 else "I") + "IH" if lo & DSS_FLAG_MAPPING else ""
        for cs in (False, True) if map_fmt else (False,):
            fmt = ack_fmt + map_fmt + ("H" if cs else "")
            body = Struct("!" + fmt)
            length = 4 + body.size
            if map_fmt:
                shape = (_SHAPE_ACK_MAP_CS if cs else _SHAPE_ACK_MAP) if ack_fmt else (
                    _SHAPE_MAP_CS if cs else _SHAPE_MAP
                )
            else:
                shape = _SHAPE_ACK if ack_fmt else _SHAPE_NONE
            _DSS_PARSE[(length << 4) | lo] = (body, shape)
            # kind, length, subtype and the A/M flags as one 32-bit word to OR the rest into
            word = (MPTCP_KIND << 24) | (length << 16) | (SUBTYPE_DSS << 12) | (lo & 0x05)
            _DSS_PACK[lo | (0x20 if cs else 0)] = (Struct("!I" + fmt).pack, word)
            _TS_DSS_PACK[lo | (0x20 if cs else 0)] = (Struct("!IIII" + fmt).pack, word)
            _DSS_FMT[lo | (0x20 if cs else 0)] = (fmt, word)


_build_dss_tables()
# flags byte -> (F, a, m) as booleans
_DSS_BITS: list[tuple[bool, bool, bool]] = [
    (f & DSS_FLAG_DATA_FIN != 0, f & DSS_FLAG_DATA_ACK_8 != 0, f & DSS_FLAG_DSN_8 != 0)
    for f in range(256)
]


@wire_value
class Dss(NamedTuple):
    """Data Sequence Signal (subtype 0x2), RFC 8684 §3.3, Figure 9.

    ``data_ack`` present <=> flag A; ``dsn`` present <=> flag M (then ``ssn`` and
    ``data_level_length`` are set too, and ``checksum`` when the option carries one).
    ``ack64`` / ``dsn64`` are the a / m flags (8-byte fields), kept even when A / M is
    clear; ``data_ack`` and ``dsn`` are the values as on the wire (32 or 64 bits).
    ``reserved`` holds the reserved bits in their 16-bit wire position (mask 0x0FE0 of the
    word after the length byte).  ``data_level_length == 0`` is the infinite mapping (§3.3.1).
    """

    data_ack: int | None = None
    dsn: int | None = None
    ssn: int | None = None
    data_level_length: int | None = None
    checksum: int | None = None
    data_fin: bool = False
    ack64: bool = False
    dsn64: bool = False
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw flags byte (reserved bits, F, m, M, a, A) as on the wire."""
        f = self.reserved & 0xE0
        if self.data_ack is not None:
            f |= DSS_FLAG_DATA_ACK
        if self.ack64:
            f |= DSS_FLAG_DATA_ACK_8
        if self.dsn is not None:
            f |= DSS_FLAG_MAPPING
        if self.dsn64:
            f |= DSS_FLAG_DSN_8
        if self.data_fin:
            f |= DSS_FLAG_DATA_FIN
        return f

    @property
    def has_mapping(self) -> bool:
        return self.dsn is not None

    @property
    def is_infinite_mapping(self) -> bool:
        """RFC 8684 §3.3.1: a mapping with data-level length 0 maps the rest of the subflow."""
        return self.dsn is not None and self.data_level_length == 0

    def to_bytes(self) -> bytes:
        # Hot path: literals for the flags (A=1 a=2 M=4 m=8 F=0x10; 0x20 in the pack key
        # marks a checksum); the fields come out of the tuple in one unpack.  The first four
        # bytes are one 32-bit word: the table's kind, length, subtype and A/M, then the
        # reserved bits (mask 0x0FE0 of its low half) and a, m, F.
        ack, dsn, ssn, dll, csum, fin, a64, m64, rsv = self
        lo = (2 if a64 else 0) | (8 if m64 else 0) | (0x10 if fin else 0)
        w = (rsv & 0x0FE0) | lo
        try:
            if dsn is not None:
                if ack is not None:
                    if csum is None:
                        pack, word = _DSS_PACK[lo & 0x0A | 5]
                        return pack(word | w, ack, dsn, ssn, dll)
                    pack, word = _DSS_PACK[lo & 0x0A | 0x25]
                    return pack(word | w, ack, dsn, ssn, dll, csum)
                if csum is None:
                    pack, word = _DSS_PACK[lo & 0x0A | 4]
                    return pack(word | w, dsn, ssn, dll)
                pack, word = _DSS_PACK[lo & 0x0A | 0x24]
                return pack(word | w, dsn, ssn, dll, csum)
            if csum is not None or ssn is not None or dll is not None:
                raise ValueError(f"DSS without DSN carries mapping fields: {self!r}")
            if ack is not None:
                pack, word = _DSS_PACK[lo & 0x0A | 1]
                return pack(word | w, ack)
            pack, word = _DSS_PACK[lo & 0x0A]
            return pack(word | w)
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"subtype": "DSS", "flags": self.flags}
        if self.data_ack is not None:
            out["data_ack"] = self.data_ack
        if self.dsn is not None:
            out["dsn"] = self.dsn
            out["ssn"] = self.ssn
            out["data_level_length"] = self.data_level_length
            if self.checksum is not None:
                out["checksum"] = self.checksum
        out["data_fin"] = bool(self.data_fin)
        return out


_DssSpec = tuple[Callable[[bytes, int], tuple[int, ...]], tuple[None, ...], tuple[object, ...]]
# The option's first four bytes (kind 30, length, subtype/reserved, flags) -> how to build the
# value: the unpacked fields go between a prefix (a None for an absent data ACK) and a suffix
# (the absent fields, then data_fin, ack64, dsn64, reserved).  Valid for an option as long as
# its length byte; filled on first sight of each layout: a handful in real traffic, at most 16
# lengths x 4096 words under fuzzing.  (A bytes key: cheaper to make than an int from three
# bytes.)
_DSS_FAST: dict[bytes, _DssSpec] = {}
# The same layouts keyed by those four bytes as one big-endian 32-bit word: what
# ``parse_segment`` unpacks together with the headers, so its DSS fast path needs no slice.
_DSS_WORD: dict[int, _DssSpec] = {}


def _dss_spec(opt: bytes, off: int) -> _DssSpec:
    n = len(opt)
    if n < 4:
        raise _bad_len("DSS", n, ">= 4", off)
    f = opt[3]
    spec = _DSS_PARSE.get((n << 4) | (f & 0x0F))
    if spec is None:
        raise WireError(off + 1, f"MPTCP DSS option length {n} does not match flags 0x{f:02x}")
    st, shape = spec
    fin, a64, m64 = _DSS_BITS[f]
    rsv = ((opt[2] & 0x0F) << 8) | (f & 0xE0)
    has_ack = shape in (_SHAPE_ACK, _SHAPE_ACK_MAP, _SHAPE_ACK_MAP_CS)
    prefix: tuple[None, ...] = () if has_ack else (None,)
    absent = (None,) * (5 - len(prefix) - (len(st.format) - 1))  # format is "!" + one per field
    fast: _DssSpec = (st.unpack_from, prefix, (*absent, fin, a64, m64, rsv))
    if opt[0] == MPTCP_KIND and opt[1] == n:
        key = bytes(opt[:4])
        _DSS_FAST[key] = fast
        _DSS_WORD[_from_bytes(key, "big")] = fast
    return fast


def _dss_fast(opt: bytes) -> _DssSpec | None:
    """The cached layout of ``opt`` if there is one and its length byte is its length."""
    try:
        spec = _DSS_FAST.get(opt[:4])
    except TypeError:  # an unhashable buffer (bytearray)
        spec = _DSS_FAST.get(bytes(opt[:4]))
    return spec if spec is not None and len(opt) == opt[1] else None


def _parse_dss(opt: bytes, off: int) -> Dss:
    """DSS from the whole option; the layout follows the A a M m flags, and a mapping may be
    followed by a 2-byte checksum (told apart by the length), RFC 8684 §3.3."""
    spec = _dss_fast(opt)
    if spec is None:
        spec = _dss_spec(opt, off)
    unpack, prefix, suffix = spec
    return _new(Dss, prefix + unpack(opt, 4) + suffix)


# --- ADD_ADDR / REMOVE_ADDR (RFC 8684 §3.4) -----------------------------------------------
# Length -> (address length, port present, HMAC present); the eight lengths are distinct.
_ADD_ADDR_LAYOUT: dict[int, tuple[int, bool, bool]] = {
    8: (4, False, False), 10: (4, True, False), 16: (4, False, True), 18: (4, True, True),
    20: (16, False, False), 22: (16, True, False), 28: (16, False, True), 30: (16, True, True),
}


@wire_value
class AddAddr(NamedTuple):
    """ADD_ADDR (subtype 0x3), RFC 8684 §3.4.1, Figure 12.

    ``address`` is the 4-byte (IPv4) or 16-byte (IPv6) address as on the wire; ``port`` is
    present only when the option carries one; ``hmac`` is the 8-byte truncated HMAC (absent
    on an echo, E=1).  ``reserved`` holds the three reserved bits (mask 0x0E of the flags
    nibble; MPTCP v0's IP-version nibble lands there too).
    """

    address_id: int
    address: bytes
    port: int | None = None
    hmac: bytes | None = None
    echo: bool = False
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw 4-bit flags field (reserved bits and E)."""
        return (self.reserved & 0x0E) | (1 if self.echo else 0)

    @property
    def ip(self) -> IPv4Address | IPv6Address:
        """The advertised address as an :mod:`ipaddress` object."""
        return ip_address(self.address)

    def to_bytes(self) -> bytes:
        addr = self.address
        mac = self.hmac
        if len(addr) not in (4, 16):
            raise ValueError(f"ADD_ADDR address must be 4 or 16 bytes: {self!r}")
        if mac is not None and len(mac) != 8:
            raise ValueError(f"ADD_ADDR HMAC must be 8 bytes: {self!r}")
        length = 4 + len(addr) + (0 if self.port is None else 2) + (0 if mac is None else 8)
        try:
            out = bytes((MPTCP_KIND, length, 0x30 | self.flags, self.address_id)) + addr
            if self.port is not None:
                out += self.port.to_bytes(2, "big")
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None
        return out if mac is None else out + mac

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "subtype": "ADD_ADDR", "flags": self.flags, "echo": bool(self.echo),
            "address_id": self.address_id, "address": str(ip_address(self.address)),
        }
        if self.port is not None:
            out["port"] = self.port
        if self.hmac is not None:
            out["hmac"] = self.hmac.hex()
        return out


def _parse_add_addr(opt: bytes, off: int) -> AddAddr:
    n = len(opt)
    layout = _ADD_ADDR_LAYOUT.get(n)
    if layout is None:
        raise _bad_len("ADD_ADDR", n, "8, 10, 16, 18, 20, 22, 28 or 30", off)
    alen, has_port, has_hmac = layout
    b2 = opt[2]
    end = 4 + alen
    port = None
    if has_port:
        port = _from_bytes(opt[end : end + 2], "big")
        end += 2
    mac = opt[end:] if has_hmac else None
    return _new(AddAddr, (opt[3], opt[4 : 4 + alen], port, mac, bool(b2 & 1), b2 & 0x0E))


@wire_value
class RemoveAddr(NamedTuple):
    """REMOVE_ADDR (subtype 0x4, length 3 + n, n >= 1), RFC 8684 §3.4.2, Figure 13.

    ``reserved`` is the 4-bit field after the subtype.
    """

    address_ids: tuple[int, ...]
    reserved: int = 0

    def to_bytes(self) -> bytes:
        ids = self.address_ids
        if not ids:
            raise ValueError("REMOVE_ADDR needs at least one address ID")
        try:
            return bytes((MPTCP_KIND, 3 + len(ids), 0x40 | (self.reserved & 0x0F), *ids))
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {"subtype": "REMOVE_ADDR", "address_ids": list(self.address_ids)}


def _parse_remove_addr(opt: bytes, off: int) -> RemoveAddr:
    if len(opt) < 4:
        raise _bad_len("REMOVE_ADDR", len(opt), "3 + n with n >= 1", off)
    return _new(RemoveAddr, (tuple(opt[3:]), opt[2] & 0x0F))


# --- MP_PRIO, MP_FAIL, MP_FASTCLOSE, MP_TCPRST (RFC 8684 §3.3.8, §3.7, §3.5, §3.6) ---------


@wire_value
class MpPrio(NamedTuple):
    """MP_PRIO (subtype 0x5), RFC 8684 §3.3.8, Figure 11: length 3, flag B = backup.

    A 4-byte form (RFC 6824 §3.3.8: a trailing Address ID) is accepted and kept in
    ``address_id`` (None for the 3-byte form).  Linux sends the 3-byte option followed by a
    NOP, which the option list parses as a separate NOP.  ``reserved`` is the 3 reserved bits
    (mask 0x0E of the flags nibble).
    """

    backup: bool = False
    address_id: int | None = None
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw 4-bit flags field (reserved bits and B)."""
        return (self.reserved & 0x0E) | (1 if self.backup else 0)

    def to_bytes(self) -> bytes:
        b2 = 0x50 | (self.reserved & 0x0E) | (1 if self.backup else 0)
        aid = self.address_id
        if aid is None:
            return bytes((MPTCP_KIND, 3, b2))
        try:
            return bytes((MPTCP_KIND, 4, b2, aid))
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "subtype": "MP_PRIO", "flags": self.flags, "backup": bool(self.backup),
        }
        if self.address_id is not None:
            out["address_id"] = self.address_id
        return out


def _parse_mp_prio(opt: bytes, off: int) -> MpPrio:
    n = len(opt)
    b2 = opt[2]
    if n == 3:
        return _new(MpPrio, (bool(b2 & 1), None, b2 & 0x0E))
    if n == 4:
        return _new(MpPrio, (bool(b2 & 1), opt[3], b2 & 0x0E))
    raise _bad_len("MP_PRIO", n, "3 (or 4 with an address ID)", off)


@wire_value
class MpFail(NamedTuple):
    """MP_FAIL (subtype 0x6, length 12), RFC 8684 §3.7, Figure 16: the full 64-bit DSN.

    ``reserved`` is the 12 bits after the subtype.
    """

    dsn: int
    reserved: int = 0

    def to_bytes(self) -> bytes:
        try:
            return _BBHQ.pack(MPTCP_KIND, 12, 0x6000 | (self.reserved & 0x0FFF), self.dsn)
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {"subtype": "MP_FAIL", "dsn": self.dsn}


def _parse_mp_fail(opt: bytes, off: int) -> MpFail:
    if len(opt) != 12:
        raise _bad_len("MP_FAIL", len(opt), "12", off)
    _, _, w, dsn = _BBHQ.unpack(opt)
    return _new(MpFail, (dsn, w & 0x0FFF))


@wire_value
class MpFastClose(NamedTuple):
    """MP_FASTCLOSE (subtype 0x7, length 12), RFC 8684 §3.5, Figure 14: the option
    receiver's 64-bit key.  ``reserved`` is the 12 bits after the subtype."""

    receiver_key: int
    reserved: int = 0

    def to_bytes(self) -> bytes:
        try:
            return _BBHQ.pack(MPTCP_KIND, 12, 0x7000 | (self.reserved & 0x0FFF), self.receiver_key)
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {"subtype": "MP_FASTCLOSE", "receiver_key": self.receiver_key}


def _parse_mp_fastclose(opt: bytes, off: int) -> MpFastClose:
    if len(opt) != 12:
        raise _bad_len("MP_FASTCLOSE", len(opt), "12", off)
    _, _, w, key = _BBHQ.unpack(opt)
    return _new(MpFastClose, (key, w & 0x0FFF))


@wire_value
class MpTcpRst(NamedTuple):
    """MP_TCPRST (subtype 0x8, length 4), RFC 8684 §3.6, Figure 15.

    ``reason`` is a :class:`MptcpRstReason` for the codes RFC 8684 defines, else the plain
    int; ``transient`` is flag T; ``reserved`` holds U V W (mask 0x0E of the flags nibble).
    """

    reason: int = MptcpRstReason.UNSPECIFIED
    transient: bool = False
    reserved: int = 0

    @property
    def flags(self) -> int:
        """The raw 4-bit flags field (U V W T)."""
        return (self.reserved & 0x0E) | (1 if self.transient else 0)

    def to_bytes(self) -> bytes:
        try:
            return bytes((MPTCP_KIND, 4, 0x80 | self.flags, self.reason))
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "subtype": "MP_TCPRST", "flags": self.flags, "transient": bool(self.transient),
            "reason": int(self.reason),
        }


def _parse_mp_tcprst(opt: bytes, off: int) -> MpTcpRst:
    if len(opt) != 4:
        raise _bad_len("MP_TCPRST", len(opt), "4", off)
    b2 = opt[2]
    r = opt[3]
    return _new(MpTcpRst, (_REASONS.get(r, r), bool(b2 & 1), b2 & 0x0E))


# --- MP_EXPERIMENTAL and unassigned subtypes (RFC 8684 §7) ---------------------------------


@wire_value
class MpExperimental(NamedTuple):
    """MP_EXPERIMENTAL (subtype 0xf, private use), RFC 8684 §7: kept raw.

    ``nibble`` is the low 4 bits of the subtype byte, ``data`` everything after it.
    """

    nibble: int = 0
    data: bytes = b""

    def to_bytes(self) -> bytes:
        try:
            return bytes((MPTCP_KIND, 3 + len(self.data), 0xF0 | self.nibble)) + self.data
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {"subtype": "MP_EXPERIMENTAL", "nibble": self.nibble, "data": self.data.hex()}


@wire_value
class MptcpUnknown(NamedTuple):
    """An MPTCP option with an unassigned subtype (0x9..0xe, RFC 8684 §7), kept byte-exact."""

    subtype: int
    nibble: int = 0
    data: bytes = b""

    def to_bytes(self) -> bytes:
        try:
            b2 = (self.subtype << 4) | self.nibble
            return bytes((MPTCP_KIND, 3 + len(self.data), b2)) + self.data
        except _ENCODE_ERRORS as exc:
            raise ValueError(f"cannot encode {self!r}: {exc}") from None

    def to_json(self) -> dict[str, object]:
        return {
            "subtype": "UNKNOWN", "subtype_value": self.subtype, "nibble": self.nibble,
            "data": self.data.hex(),
        }


def _parse_experimental(opt: bytes, off: int) -> MpExperimental:
    return _new(MpExperimental, (opt[2] & 0x0F, opt[3:]))


def _parse_unknown(opt: bytes, off: int) -> MptcpUnknown:
    b2 = opt[2]
    return _new(MptcpUnknown, (b2 >> 4, b2 & 0x0F, opt[3:]))


# --- the kind-30 dispatcher ---------------------------------------------------------------

MptcpOption = (
    MpCapable | MpJoinSyn | MpJoinSynAck | MpJoinAck | Dss | AddAddr | RemoveAddr | MpPrio
    | MpFail | MpFastClose | MpTcpRst | MpExperimental | MptcpUnknown
)

MPTCP_OPTION_CLASSES: tuple[type[MptcpOption], ...] = (
    MpCapable, MpJoinSyn, MpJoinSynAck, MpJoinAck, Dss, AddAddr, RemoveAddr, MpPrio, MpFail,
    MpFastClose, MpTcpRst, MpExperimental, MptcpUnknown,
)
"""Every MPTCP option value class (the ones :func:`parse_mptcp_option` returns)."""

_SUBTYPE_PARSERS: list[Callable[[bytes, int], MptcpOption]] = [
    parse_mp_capable, parse_mp_join, _parse_dss, _parse_add_addr, _parse_remove_addr,
    _parse_mp_prio, _parse_mp_fail, _parse_mp_fastclose, _parse_mp_tcprst,
    _parse_unknown, _parse_unknown, _parse_unknown, _parse_unknown, _parse_unknown,
    _parse_unknown, _parse_experimental,
]


def parse_mptcp_option(opt: bytes, off: int) -> MptcpOption:
    """Decode one MPTCP option (kind 30): ``opt`` is the whole option (kind, length, body),
    ``off`` its offset in the caller's buffer.  Dispatches on the subtype, the high nibble of
    the third byte (RFC 8684 §3, Figure 3); raises :class:`WireError` for a length that does
    not fit the subtype."""
    if len(opt) < 3:
        raise WireError(off + 1, f"MPTCP option length {len(opt)} has no subtype byte")
    # (a DSS of a layout seen before is decoded from the cache in _parse_dss; parse_segment
    # decodes the per-segment DSS itself)
    return _SUBTYPE_PARSERS[opt[2] >> 4](opt, off)


register_option(MPTCP_KIND, parse_mptcp_option)
