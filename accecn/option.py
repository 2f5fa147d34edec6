"""AccECN TCP Option codec (RFC 9768; text: draft-ietf-tcpm-accurate-ecn-34).

Implements: the two AccECN Options, AccECN0 (kind 172, field order EE0B, ECEB, EE1B) and
AccECN1 (kind 174, order EE1B, ECEB, EE0B), with 24-bit big-endian fields (§3.2.3 Figure 4),
the lengths 2/5/8/11 and which fields each carries (§3.2.3 Table 5), the forward-compatibility
rule for any other length (§3.2.3: use the whole 3-octet fields that fit, the rest is padding),
the 24-bit field encoding and the Data Sender's wrap-aware decoding (§3.2.3.1, Appendix A.1),
and the early experimental form in kind 254 (or 253) with ExID 0xACC0 (order 0) or 0xACC1
(order 1) that §7 records (RFC 6994 framing; Wireshark dissects it).  The still earlier single
ExID 0xACCE is not supported: the final text does not define its layout.

Every byte string after a valid kind/length prefix decodes (there is no malformed AccECN
Option), and ``to_bytes()`` gives the same bytes back, padding included.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.options import TcpOption, register_experimental, register_option
from mptcp.wire.value import wire_value

__all__ = [
    "ACCECN0_KIND", "ACCECN1_KIND", "ACCECN0_EXID", "ACCECN1_EXID", "OPTION_LENGTHS",
    "FIELD_BITS", "FIELD_MODULUS", "FIELD_MASK",
    "AccEcnOption", "parse_accecn_option", "encode_field", "field_delta",
]

ACCECN0_KIND = 172
"""AccECN0, Order 0 (§3.2.3, §7 Table 7)."""
ACCECN1_KIND = 174
"""AccECN1, Order 1 (§3.2.3, §7 Table 7)."""
ACCECN0_EXID = 0xACC0
"""Early experimental Order 0 option in kind 254 (§7, RFC 6994)."""
ACCECN1_EXID = 0xACC1
"""Early experimental Order 1 option in kind 254 (§7, RFC 6994)."""
OPTION_LENGTHS = (2, 5, 8, 11)
"""The lengths §3.2.3 Table 5 defines: 0, 1, 2 or 3 fields."""
FIELD_BITS = 24
FIELD_MODULUS = 1 << FIELD_BITS
"""DIVOPT of Appendix A.1."""
FIELD_MASK = FIELD_MODULUS - 1

_KINDS = (ACCECN0_KIND, ACCECN1_KIND)
_EXIDS = (ACCECN0_EXID, ACCECN1_EXID)
_M = FIELD_MASK
_new = tuple.__new__
_from_bytes = int.from_bytes  # bound once: the attribute lookup costs as much as the call
# Per order: the kind and length bytes of the 11-byte option shifted above its three fields,
# and the whole 2-byte option (§3.2.3 Table 5); indexed like _KINDS.
_HEAD11 = ((ACCECN0_KIND << 8 | 11) << 72, (ACCECN1_KIND << 8 | 11) << 72)
_EMPTY = (bytes((ACCECN0_KIND, 2)), bytes((ACCECN1_KIND, 2)))


@wire_value
class AccEcnOption(NamedTuple):
    """An AccECN Option: its order and up to three 24-bit fields, stored in wire order.

    ``first`` is EE0B for order 0 and EE1B for order 1, ``eceb`` is always the middle field,
    ``last`` is EE1B for order 0 and EE0B for order 1 (§3.2.3 Figure 4).  A field is None when
    the option is too short to carry it (§3.2.3 Table 5); a field is present only if every field
    before it is.  ``padding`` holds the bytes after the last whole field of an option whose
    length is not 2/5/8/11 (§3.2.3 forward compatibility).  ``exp_kind`` is 0 for the assigned
    kinds 172/174, else the experimental kind (254, or 253) that carried ExID 0xACC0/0xACC1.
    Use :meth:`of` to build one from counter names.
    """

    order: int
    first: int | None = None
    eceb: int | None = None
    last: int | None = None
    padding: bytes = b""
    exp_kind: int = 0

    @property
    def ee0b(self) -> int | None:
        """EE0B: the 24 LSBs of r.e0b, bytes received ECT(0) (§3.2.3)."""
        return self.first if self.order == 0 else self.last

    @property
    def ee1b(self) -> int | None:
        """EE1B: the 24 LSBs of r.e1b, bytes received ECT(1) (§3.2.3)."""
        return self.last if self.order == 0 else self.first

    @property
    def kind(self) -> int:
        """The option kind byte on the wire (172/174, or the experimental kind)."""
        return self.exp_kind or _KINDS[self.order]

    @property
    def nfields(self) -> int:
        """How many fields the option carries (0..3)."""
        if self.first is None:
            return 0
        if self.eceb is None:
            return 1
        return 2 if self.last is None else 3

    @property
    def canonical(self) -> bool:
        """True for the lengths §3.2.3 Table 5 defines (no padding)."""
        return not self.padding

    @classmethod
    def of(
        cls,
        order: int,
        *,
        ee0b: int | None = None,
        eceb: int | None = None,
        ee1b: int | None = None,
        padding: bytes = b"",
        exp_kind: int = 0,
    ) -> AccEcnOption:
        """Build an option from named fields; the present ones must be a prefix of the order.

        Raises ValueError when a field is given but one before it (in the order's field
        order) is not, or a value does not fit 24 bits.
        """
        if order not in (0, 1):
            raise ValueError(f"AccECN order {order}: expected 0 or 1")
        fields = (ee0b, eceb, ee1b) if order == 0 else (ee1b, eceb, ee0b)
        opt = _new(cls, (order, *fields, padding, exp_kind))
        opt.check()
        return opt

    @classmethod
    def encode(
        cls, order: int, nfields: int, *, e0b: int, ceb: int, e1b: int, exp_kind: int = 0
    ) -> AccEcnOption:
        """The option a Data Receiver sends: the first ``nfields`` fields of ``order``, each the
        24 least significant bits of its counter r.e0b / r.ceb / r.e1b (§3.2.3.1)."""
        if order not in (0, 1) or not 0 <= nfields <= 3:
            raise ValueError(f"AccECN order {order} with {nfields} fields")
        wire = (e0b & _M, ceb & _M, e1b & _M) if order == 0 else (e1b & _M, ceb & _M, e0b & _M)
        fields = wire[:nfields] + (None,) * (3 - nfields)
        return _new(cls, (order, *fields, b"", exp_kind))

    def check(self) -> None:
        """Raise ValueError unless ``to_bytes`` encodes this value faithfully."""
        if self.order not in (0, 1):
            raise ValueError(f"AccECN order {self.order}: expected 0 or 1")
        if self.exp_kind not in (0, 253, 254):
            raise ValueError(f"AccECN experimental kind {self.exp_kind}: expected 0, 253, 254")
        seen_absent = False
        for name, value in (("first", self.first), ("eceb", self.eceb), ("last", self.last)):
            if value is None:
                seen_absent = True
            elif seen_absent:
                raise ValueError(f"AccECN field {name} present after an absent one (Table 5)")
            elif not 0 <= value <= _M:
                raise ValueError(f"AccECN field {name}={value} does not fit 24 bits")
        if self.padding and (self.nfields < 3 and len(self.padding) >= 3):
            raise ValueError("AccECN padding of 3+ bytes would parse as another field")
        head = 4 if self.exp_kind else 2
        if head + 3 * self.nfields + len(self.padding) > 255:
            raise ValueError("AccECN option longer than 255 bytes")

    def to_bytes(self) -> bytes:
        order, first, eceb, last, padding, exp_kind = self
        if not exp_kind and not padding:
            if last is not None and eceb is not None and first is not None:
                # Hot path: the full 11-byte option as one integer.
                return (_HEAD11[order] | (first << 48) | (eceb << 24) | last).to_bytes(11)
            if last is None:
                if first is None:
                    if eceb is None:
                        return _EMPTY[order]  # the empty option (§3.2.3 Table 5)
                elif eceb is None:
                    return bytes((_KINDS[order], 5)) + first.to_bytes(3, "big")
                else:
                    return (
                        bytes((_KINDS[order], 8)) + first.to_bytes(3, "big")
                        + eceb.to_bytes(3, "big")
                    )
        if exp_kind:
            out = bytearray((exp_kind, 0)) + _EXIDS[order].to_bytes(2, "big")
        else:
            out = bytearray((_KINDS[order], 0))
        gap = False
        for field in (first, eceb, last):
            if field is None:
                gap = True
            elif gap:
                raise ValueError("AccECN field present after an absent one (§3.2.3 Table 5)")
            else:
                out += field.to_bytes(3, "big")
        out += padding
        out[1] = len(out)
        return bytes(out)

    def to_json(self) -> dict[str, Any]:
        """``{"order", "ee0b", "eceb", "ee1b"}`` with only the fields present; ``padding`` (hex)
        and ``exid`` are added only for non-canonical lengths / the experimental form."""
        out: dict[str, Any] = {"order": self.order}
        if self.ee0b is not None:
            out["ee0b"] = self.ee0b
        if self.eceb is not None:
            out["eceb"] = self.eceb
        if self.ee1b is not None:
            out["ee1b"] = self.ee1b
        if self.padding:
            out["padding"] = self.padding.hex()
        if self.exp_kind:
            out["kind"] = self.exp_kind
            out["exid"] = _EXIDS[self.order]
        return out


def _decode(opt: bytes, head: int, order: int, exp_kind: int) -> AccEcnOption:
    n = len(opt)
    if n == head + 9:
        v = _from_bytes(opt[head:])
        return _new(AccEcnOption, (order, v >> 48, (v >> 24) & _M, v & _M, b"", exp_kind))
    if n == head + 6:
        v = _from_bytes(opt[head:])
        return _new(AccEcnOption, (order, v >> 24, v & _M, None, b"", exp_kind))
    if n == head + 3:
        return _new(AccEcnOption, (order, _from_bytes(opt[head:]), None, None, b"", exp_kind))
    if n == head:
        return _new(AccEcnOption, (order, None, None, None, b"", exp_kind))
    # §3.2.3: any other length -- use the whole 3-octet fields that fit, the rest is padding.
    nfields = min(3, (n - head) // 3)
    end = head + 3 * nfields
    fields: list[int | None] = [_from_bytes(opt[i : i + 3]) for i in range(head, end, 3)]
    fields += [None] * (3 - nfields)
    return _new(AccEcnOption, (order, *fields, bytes(opt[end:]), exp_kind))


def parse_accecn_option(opt: bytes, off: int) -> TcpOption:
    """Decode a whole AccECN Option (kind 172/174, or 253/254 with ExID 0xACC0/0xACC1).

    Registered with the option list.  Raises :class:`WireError` only if ``opt`` is not an
    AccECN Option at all (wrong kind, ExID or length byte) -- the list parser never passes one.
    """
    n = len(opt)
    # Fast paths: three fields (what an AccECN ACK carries) or none (a SYN-ACK), kind 174 or
    # 172; the 11-byte option is read as one integer, kind and length bytes on top.
    if n == 11:
        v = _from_bytes(opt)
        head = v >> 72
        if head == 0xAE0B:  # ACCECN1_KIND, length 11
            return _new(AccEcnOption, (1, v >> 48 & _M, v >> 24 & _M, v & _M, b"", 0))
        if head == 0xAC0B:  # ACCECN0_KIND, length 11
            return _new(AccEcnOption, (0, v >> 48 & _M, v >> 24 & _M, v & _M, b"", 0))
    elif n == 2:
        if opt == b"\xae\x02":  # ACCECN1_KIND, length 2
            return _new(AccEcnOption, (1, None, None, None, b"", 0))
        if opt == b"\xac\x02":  # ACCECN0_KIND, length 2
            return _new(AccEcnOption, (0, None, None, None, b"", 0))
    if n < 2 or opt[1] != n:
        raise WireError(off + 1, f"AccECN option length byte does not match its {n} bytes")
    kind = opt[0]
    if kind == ACCECN0_KIND:
        return _decode(opt, 2, 0, 0)
    if kind == ACCECN1_KIND:
        return _decode(opt, 2, 1, 0)
    if kind in (253, 254) and n >= 4:
        exid = (opt[2] << 8) | opt[3]
        if exid in _EXIDS:
            return _decode(opt, 4, _EXIDS.index(exid), kind)
    raise WireError(off, f"option kind {kind} is not an AccECN Option")


register_option(ACCECN0_KIND, parse_accecn_option)
register_option(ACCECN1_KIND, parse_accecn_option)
register_experimental(ACCECN0_EXID, parse_accecn_option)
register_experimental(ACCECN1_EXID, parse_accecn_option)


def encode_field(counter: int) -> int:
    """The field value a Data Receiver sends for a byte counter: its 24 LSBs (§3.2.3.1)."""
    return counter & _M


def field_delta(field: int, local: int) -> int:
    """The minimum non-negative increment from a Data Sender's counter (``local``: s.ceb,
    s.e0b or s.e1b) to a received 24-bit field, assuming at most one wrap (§3.2.3.1; d.ceb of
    Appendix A.1)."""
    return (field - local) & _M
