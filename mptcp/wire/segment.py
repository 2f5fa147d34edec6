"""One IP packet carrying a TCP segment: IPv4/IPv6 header + TCP header + payload.

``parse_segment`` is the per-packet entry point of the stack (RFC 9293 §3.1 header, RFC 791 /
RFC 8200 below it); ``Segment.to_bytes`` rebuilds the packet with every length and checksum
recomputed, so a parsed valid packet serializes back to the same bytes.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from mptcp.wire.checksum import verify
from mptcp.wire.errors import WireError
from mptcp.wire.ip import PROTO_TCP, IPHeader, IPv4Header, parse_ipv4, parse_ipv6
from mptcp.wire.options import parse_options
from mptcp.wire.tcp import TcpHeader
from mptcp.wire.value import wire_value

__all__ = ["Segment", "parse_segment", "checksum_ok"]

_V4 = Struct("!BBHHHBBH4s4s")
_TCP = Struct("!HHIIHHHH")
_from_bytes = int.from_bytes
_new = tuple.__new__


@wire_value
class Segment(NamedTuple):
    """An IP packet holding one TCP segment."""

    ip: IPHeader
    tcp: TcpHeader
    payload: bytes = b""

    def to_bytes(self) -> bytes:
        """Wire bytes with IP length(s), IPv4 header checksum and TCP checksum recomputed."""
        ip = self.ip
        tcp = self.tcp
        payload = self.payload
        src = ip.src
        dst = ip.dst
        tcp_bytes = tcp.build(
            _from_bytes(src, "big") + _from_bytes(dst, "big") + PROTO_TCP, payload
        )
        return b"".join((ip.build(len(tcp_bytes) + len(payload)), tcp_bytes, payload))


def parse_segment(buf: bytes) -> Segment:
    """Decode an IPv4 or IPv6 packet carrying TCP into a :class:`Segment`.

    Checksums are not verified here (see :func:`checksum_ok`); trailing bytes past the IP
    length (link-layer padding) are ignored.  Anything malformed raises ``WireError``.
    """
    if not buf:
        raise WireError(0, "empty packet")
    version = buf[0] >> 4
    ip: IPHeader
    if version == 4:
        n = len(buf)
        if n < 20:
            raise WireError(0, f"IPv4 header truncated ({n} bytes)")
        vihl, tos, total, ident, ff, ttl, proto, csum, src, dst = _V4.unpack_from(buf)
        off = (vihl & 15) << 2
        if off < 20:
            raise WireError(0, f"IPv4 IHL {off >> 2} < 5")
        if total < off or total > n:
            raise WireError(2, f"IPv4 total length {total} (header {off}, buffer {n})")
        if ff & 0x3FFF:
            raise WireError(6, "IPv4 fragment: not reassembled")
        opts = bytes(buf[20:off]) if off > 20 else b""
        ip = _new(IPv4Header, (tos, total, ident, ff, ttl, proto, csum, src, dst, opts))
        end = total
    elif version == 6:
        ip, off, end = parse_ipv6(buf)
        proto = ip.proto
    else:
        raise WireError(0, f"IP version {version}")
    if proto != PROTO_TCP:
        raise WireError(off, f"IP protocol {proto} is not TCP")
    # TCP header, RFC 9293 §3.1 (inlined parse_tcp: this is the hot path)
    if end - off < 20:
        raise WireError(off, f"TCP header truncated ({end - off} bytes)")
    sport, dport, seq, ack, off_flags, window, tcsum, urg = _TCP.unpack_from(buf, off)
    hlen = (off_flags >> 12) << 2
    if hlen < 20:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} < 5")
    data = off + hlen
    if data > end:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} overruns the segment")
    topts = parse_options(buf[off + 20 : data], off + 20) if hlen > 20 else ()
    tcp = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window, tcsum, urg, topts))
    return _new(Segment, (ip, tcp, bytes(buf[data:end])))


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
