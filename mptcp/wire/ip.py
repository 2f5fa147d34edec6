"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers, with the ECN field (RFC 3168 §5).

Values keep every header field as on the wire (IPv4 options and IPv6 extension headers as raw
bytes) so that a parsed header re-serializes byte-exact; ``build()`` recomputes the length
fields (and the IPv4 header checksum) from the payload length.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.value import wire_value

__all__ = [
    "ECN_NOT_ECT", "ECN_ECT1", "ECN_ECT0", "ECN_CE", "PROTO_TCP",
    "IPv4Header", "IPv6Header", "IPHeader", "parse_ipv4", "parse_ipv6", "ipv4", "ipv6",
]

# RFC 3168 §5: the two low bits of TOS / Traffic Class.
ECN_NOT_ECT = 0b00
ECN_ECT1 = 0b01
ECN_ECT0 = 0b10
ECN_CE = 0b11
PROTO_TCP = 6

_V4 = Struct("!BBHHHBBH4s4s")
_V6 = Struct("!IHBB16s16s")
_new = tuple.__new__
_from_bytes = int.from_bytes

# IPv6 extension headers whose length is (hdr[1] + 1) * 8 (RFC 8200 §4): hop-by-hop,
# routing, destination options; fragment (44) is 8 bytes; AH (51) is (hdr[1] + 2) * 4.
_EXT_8 = frozenset((0, 43, 60))


@wire_value
class IPv4Header(NamedTuple):
    """IPv4 header, RFC 791 §3.1 (version 4 implied; IHL derived from ``options``)."""

    tos: int
    total_length: int
    ident: int
    flags_frag: int
    ttl: int
    proto: int
    checksum: int
    src: bytes
    dst: bytes
    options: bytes = b""

    @property
    def ecn(self) -> int:
        """RFC 3168 §5 ECN codepoint (low two bits of TOS)."""
        return self.tos & 3

    @property
    def dscp(self) -> int:
        return self.tos >> 2

    @property
    def header_length(self) -> int:
        return 20 + len(self.options)

    def build(self, payload_length: int) -> bytes:
        """Header bytes with total length and header checksum recomputed."""
        tos, _, ident, ff, ttl, proto, _, src, dst, opts = self
        hlen = 20 + len(opts)
        vihl = 0x40 | (hlen >> 2)
        total = hlen + payload_length
        # RFC 791 header checksum from the fields: a field at an even offset contributes its
        # value modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so no bytes need to be built first.
        x = (((vihl << 8) | tos) + total + ident + ff + ((ttl << 8) | proto)
             + _from_bytes(src, "big") + _from_bytes(dst, "big")) % 0xFFFF
        if opts:
            x = (x + _from_bytes(opts, "big")) % 0xFFFF
            return _V4.pack(vihl, tos, total, ident, ff, ttl, proto, 0xFFFF - x if x else 0,
                            src, dst) + opts
        return _V4.pack(vihl, tos, total, ident, ff, ttl, proto, 0xFFFF - x if x else 0, src, dst)

    def to_bytes(self) -> bytes:
        """Header bytes exactly as the fields say (no recomputation)."""
        opts = self.options
        return _V4.pack(
            0x40 | ((20 + len(opts)) >> 2), self.tos, self.total_length, self.ident,
            self.flags_frag, self.ttl, self.proto, self.checksum, self.src, self.dst,
        ) + opts


@wire_value
class IPv6Header(NamedTuple):
    """IPv6 fixed header, RFC 8200 §3, plus raw extension headers (``ext``) and the final
    upper-layer protocol ``proto`` they lead to."""

    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes
    ext: bytes = b""
    proto: int = PROTO_TCP

    @property
    def ecn(self) -> int:
        """RFC 3168 §5 ECN codepoint (low two bits of the Traffic Class)."""
        return self.traffic_class & 3

    @property
    def header_length(self) -> int:
        return 40 + len(self.ext)

    def build(self, payload_length: int) -> bytes:
        """Header bytes (extension headers included) with the payload length recomputed."""
        return _V6.pack(
            0x60000000 | (self.traffic_class << 20) | self.flow_label,
            len(self.ext) + payload_length, self.next_header, self.hop_limit, self.src, self.dst,
        ) + self.ext

    def to_bytes(self) -> bytes:
        return _V6.pack(
            0x60000000 | (self.traffic_class << 20) | self.flow_label, self.payload_length,
            self.next_header, self.hop_limit, self.src, self.dst,
        ) + self.ext


IPHeader = IPv4Header | IPv6Header


def parse_ipv4(buf: bytes) -> tuple[IPv4Header, int, int]:
    """Parse an IPv4 header: (header, header length, end of the datagram in ``buf``)."""
    n = len(buf)
    if n < 20:
        raise WireError(0, f"IPv4 header truncated ({n} bytes)")
    vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _V4.unpack_from(buf)
    if vihl >> 4 != 4:
        raise WireError(0, f"IP version {vihl >> 4}, expected 4")
    hlen = (vihl & 15) << 2
    if hlen < 20:
        raise WireError(0, f"IPv4 IHL {hlen >> 2} < 5")
    if total < hlen or total > n:
        raise WireError(2, f"IPv4 total length {total} (header {hlen}, buffer {n})")
    opts = bytes(buf[20:hlen]) if hlen > 20 else b""
    return _new(IPv4Header, (tos, total, ident, ff, ttl, proto, csum, src, dst, opts)), hlen, total


def parse_ipv6(buf: bytes) -> tuple[IPv6Header, int, int]:
    """Parse an IPv6 header and walk its extension headers (RFC 8200 §4).

    Returns (header, offset of the upper-layer header, end of the packet in ``buf``).
    """
    n = len(buf)
    if n < 40:
        raise WireError(0, f"IPv6 header truncated ({n} bytes)")
    vtf, plen, nh, hlim, src, dst = _V6.unpack_from(buf)
    if vtf >> 28 != 6:
        raise WireError(0, f"IP version {vtf >> 28}, expected 6")
    end = 40 + plen
    if end > n:
        raise WireError(4, f"IPv6 payload length {plen} overruns the buffer ({n} bytes)")
    off = 40
    proto = nh
    while proto in _EXT_8 or proto == 44 or proto == 51:
        if off + 8 > end:
            raise WireError(off, f"IPv6 extension header {proto} truncated")
        if proto == 44:
            if (buf[off + 2] << 8 | buf[off + 3]) & 0xFFF9:
                raise WireError(off + 2, "IPv6 fragment: not reassembled")
            size = 8
        elif proto == 51:
            size = (buf[off + 1] + 2) << 2
        else:
            size = (buf[off + 1] + 1) << 3
        proto = buf[off]
        off += size
        if off > end:
            raise WireError(off - size + 1, "IPv6 extension header overruns the packet")
    ext = bytes(buf[40:off]) if off > 40 else b""
    fields = ((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst, ext, proto)
    hdr = _new(IPv6Header, fields)
    return hdr, off, end


def ipv4(
    src: bytes, dst: bytes, *, tos: int = 0, ttl: int = 64, ident: int = 0,
    flags_frag: int = 0x4000, proto: int = PROTO_TCP, options: bytes = b"",
) -> IPv4Header:
    """A fresh IPv4 header (DF set); lengths and checksum are filled in by ``build()``."""
    return IPv4Header(tos, 0, ident, flags_frag, ttl, proto, 0, src, dst, options)


def ipv6(
    src: bytes, dst: bytes, *, traffic_class: int = 0, flow_label: int = 0,
    hop_limit: int = 64, proto: int = PROTO_TCP,
) -> IPv6Header:
    """A fresh IPv6 header without extension headers."""
    return IPv6Header(traffic_class, flow_label, 0, proto, hop_limit, src, dst, b"", proto)
