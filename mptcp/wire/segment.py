"""One IP packet carrying a TCP segment: IPv4/IPv6 header + TCP header + payload.

``parse_segment`` is the per-packet entry point of the stack (RFC 9293 §3.1 header, RFC 791 /
RFC 8200 below it); ``Segment.to_bytes`` rebuilds the packet with every length and checksum
recomputed, so a parsed valid packet serializes back to the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from typing import Literal, NamedTuple

from mptcp.wire.checksum import payload_sum, verify
from mptcp.wire.errors import WireError
from mptcp.wire.ip import PROTO_TCP, IPHeader, IPv4Header, IPv6Header, parse_ipv4, parse_ipv6
from mptcp.wire.options import NOP, TcpOption, parse_options
from mptcp.wire.tcp import TcpHeader
from mptcp.wire.value import wire_value

__all__ = ["Segment", "parse_segment", "checksum_ok"]

_V4 = Struct("!BBHHHBBH4s4s")
_V4_TCP_STRUCT = Struct("!BBHHHBBH4s4sHHIIHHHH")  # IPv4 without options, then TCP
_V6_TCP_STRUCT = Struct("!IHBB16s16sHHIIHHHH")  # IPv6 fixed header, then TCP
_V4_TCP = _V4_TCP_STRUCT.unpack_from
_V6_TCP = _V6_TCP_STRUCT.unpack_from
_V4_TCP_PACK = _V4_TCP_STRUCT.pack
_V6_TCP_PACK = _V6_TCP_STRUCT.pack
_TCP = Struct("!HHIIHHHH")
_from_bytes = int.from_bytes
_new = tuple.__new__
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


@wire_value
class Segment(NamedTuple):
    """An IP packet holding one TCP segment."""

    ip: IPHeader
    tcp: TcpHeader
    payload: bytes = b""

    def to_bytes(
        self,
        partial: bool = False,
        _nop: TcpOption = NOP,
        _pack: Callable[..., bytes] = _TCP.pack,
        _int: Callable[[bytes, Literal["big"]], int] = int.from_bytes,
        _psum: Callable[[bytes], int] = payload_sum,
        _v4tcp: Callable[..., bytes] = _V4_TCP_PACK,
        _v6tcp: Callable[..., bytes] = _V6_TCP_PACK,
    ) -> bytes:
        """Wire bytes with IP length(s), IPv4 header checksum and TCP checksum recomputed.

        The TCP checksum (RFC 9293 §3.1) is computed from the header *fields*: a field at an
        even offset adds its value modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so no header bytes are
        built twice.  One function on purpose: this runs for every segment sent.  (The
        keyword defaults bind globals to fast locals; callers never pass them.)

        ``partial=True`` is for checksum offload (virtio-net ``NEEDS_CSUM``, Linux
        ``CHECKSUM_PARTIAL``): the TCP checksum field holds the folded, uncomplemented sum of
        the pseudo-header only, and the device completes it over the segment -- so no payload
        is summed here.
        """
        ip, tcp, payload = self
        sport, dport, seq, ack, flags, window, _, urgent, options = tcp
        opts = b"".join([b"\x01" if o is _nop else o.to_bytes() for o in options])
        if len(opts) & 3:
            opts += _PAD[len(opts) & 3]
        hlen = 20 + len(opts)
        if hlen > 60:
            raise WireError(12, f"TCP options of {len(opts)} bytes exceed 40")
        off_flags = (hlen << 10) | flags
        tcp_len = hlen + len(payload)
        src = ip.src
        dst = ip.dst
        addrs = _int(src, "big") + _int(dst, "big")
        if partial:
            x = (addrs + 6 + tcp_len) % 0xFFFF
            tsum = x if x else 0xFFFF
        else:
            x = (addrs + 6 + tcp_len + sport + dport + seq + ack + off_flags + window + urgent
                 + _int(opts, "big"))
            if payload:
                x += _psum(payload)
            x %= 0xFFFF
            tsum = 0xFFFF - x if x else 0
        if type(ip) is IPv4Header:
            # RFC 791 header checksum from the fields too; IP and TCP headers in one pack
            tos, _, ident, ff, ttl, proto, _, _, _, ipopts = ip
            if not ipopts:
                total = 20 + tcp_len
                x = (0x4500 | tos) + total + ident + ff + ((ttl << 8) | proto) + addrs
                x %= 0xFFFF
                return b"".join((
                    _v4tcp(0x45, tos, total, ident, ff, ttl, proto, 0xFFFF - x if x else 0,
                           src, dst, sport, dport, seq, ack, off_flags, window, tsum, urgent),
                    opts,
                    payload,
                ))
        elif type(ip) is IPv6Header and not ip.ext:
            tc, flow, _, nh, hop, _, _, _, _ = ip
            return b"".join((
                _v6tcp(0x60000000 | (tc << 20) | flow, tcp_len, nh, hop, src, dst,
                       sport, dport, seq, ack, off_flags, window, tsum, urgent),
                opts,
                payload,
            ))
        return b"".join((
            ip.build(tcp_len),
            _pack(sport, dport, seq, ack, off_flags, window, tsum, urgent),
            opts,
            payload,
        ))


def parse_segment(buf: bytes) -> Segment:
    """Decode an IPv4 or IPv6 packet carrying TCP into a :class:`Segment`.

    Checksums are not verified here (see :func:`checksum_ok`); trailing bytes past the IP
    length (link-layer padding) are ignored.  Anything malformed raises ``WireError``.
    """
    if type(buf) is not bytes:
        buf = bytes(buf)
    n = len(buf)
    if not n:
        raise WireError(0, "empty packet")
    version = buf[0] >> 4
    ip: IPHeader
    if version == 4:
        if n >= 40 and buf[0] == 0x45:  # no IP options: IP and TCP headers in one unpack
            (_, tos, total, ident, ff, ttl, proto, csum, src, dst,
             sport, dport, seq, ack, off_flags, window, tcsum, urg) = _V4_TCP(buf)
            off = 20
            opts = b""
        else:
            if n < 20:
                raise WireError(0, f"IPv4 header truncated ({n} bytes)")
            vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _V4.unpack_from(buf)
            off = (vihl & 15) << 2
            if off < 20:
                raise WireError(0, f"IPv4 IHL {off >> 2} < 5")
            opts = buf[20:off]
            sport = -1
        if total < off or total > n:
            raise WireError(2, f"IPv4 total length {total} (header {off}, buffer {n})")
        if ff & 0x3FFF:
            raise WireError(6, "IPv4 fragment: not reassembled")
        ip = _new(IPv4Header, (tos, total, ident, ff, ttl, proto, csum, src, dst, opts))
        end = total
    elif version == 6:
        if n >= 60 and buf[6] == 6:  # TCP right after the fixed header: one unpack
            (vtf, plen, nh, hlim, src, dst,
             sport, dport, seq, ack, off_flags, window, tcsum, urg) = _V6_TCP(buf)
            end = 40 + plen
            if end > n:
                raise WireError(4, f"IPv6 payload length {plen} overruns the buffer")
            fields = ((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hlim, src, dst, b"", nh)
            ip = _new(IPv6Header, fields)
            off = 40
            proto = nh
        else:
            ip, off, end = parse_ipv6(buf)
            proto = ip.proto
            sport = -1
    else:
        raise WireError(0, f"IP version {version}")
    if proto != PROTO_TCP:
        raise WireError(off, f"IP protocol {proto} is not TCP")
    # TCP header, RFC 9293 §3.1
    if end - off < 20:
        raise WireError(off, f"TCP header truncated ({end - off} bytes)")
    if sport < 0:
        sport, dport, seq, ack, off_flags, window, tcsum, urg = _TCP.unpack_from(buf, off)
    hlen = (off_flags >> 12) << 2
    if hlen < 20:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} < 5")
    data = off + hlen
    if data > end:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} overruns the segment")
    topts = parse_options(buf[off + 20 : data], off + 20) if hlen > 20 else ()
    tcp = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window, tcsum, urg, topts))
    return _new(Segment, (ip, tcp, buf[data:end]))


def checksum_ok(buf: bytes) -> bool:
    """True when ``buf`` (an IP packet carrying TCP) has a valid TCP checksum and, for IPv4, a
    valid header checksum (RFC 9293 §3.1, RFC 791 §3.1)."""
    if not buf:
        return False
    if buf[0] >> 4 == 4:
        v4, off, end = parse_ipv4(buf)
        if not verify(buf[:off]):
            return False
        ip: IPHeader = v4
    else:
        ip, off, end = parse_ipv6(buf)
    seg = buf[off:end]
    pseudo = _from_bytes(ip.src, "big") + _from_bytes(ip.dst, "big") + PROTO_TCP + len(seg)
    return verify(seg, pseudo)
