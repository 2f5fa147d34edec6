"""The virtio-net packet header that TUN (``IFF_VNET_HDR``) and packet sockets
(``PACKET_VNET_HDR``) put in front of every packet.

Layout: virtio spec v1.2 §5.1.6 "Device Operation" (``struct virtio_net_hdr``, the 10-byte
legacy form without ``num_buffers``) and Linux ``include/uapi/linux/virtio_net.h``::

    u8  flags         NEEDS_CSUM = 1, DATA_VALID = 2, RSC_INFO = 4
    u8  gso_type      NONE = 0, TCPV4 = 1, UDP = 3, TCPV6 = 4, UDP_L4 = 5, | ECN = 0x80
    u16 hdr_len       bytes of headers (IP + TCP) the device copies into every segment
    u16 gso_size      payload bytes per segment (the MSS)
    u16 csum_start    offset where checksumming starts (the TCP header)
    u16 csum_offset   where, from csum_start, the checksum goes (16 for TCP)

The 16-bit fields are little-endian on every host this project runs on: TUN uses the host
order unless told otherwise (the TUN driver sets ``TUNSETVNETLE`` to make it little-endian
everywhere); packet sockets use the host order (``big_endian=True`` here for a big-endian
host).  See Documentation/networking/tuntap.rst and packet(7) ``PACKET_VNET_HDR``.

Receive (kernel -> us): ``NEEDS_CSUM`` means the kernel left the TCP checksum partial
(pseudo-header sum only, Linux ``CHECKSUM_PARTIAL``), ``DATA_VALID`` means it verified it; in
both cases the stack must not verify it itself.  Send (us -> kernel): :func:`tx_header` builds
the header for a packet whose TCP checksum is partial and/or that the kernel must cut into
``gso_size``-byte segments (TSO/GSO).  It runs once per packet sent, so it caches the built
headers by their inputs.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from mptcp.io.driver import DriverError

__all__ = [
    "VNET_HDR_LEN", "F_NEEDS_CSUM", "F_DATA_VALID", "F_RSC_INFO", "RX_CSUM_OK",
    "GSO_NONE", "GSO_TCPV4", "GSO_UDP", "GSO_TCPV6", "GSO_UDP_L4", "GSO_ECN",
    "TCP_CSUM_OFFSET", "HDR_NONE", "VnetError", "VnetHdr", "parse_vnet", "tx_header",
]

VNET_HDR_LEN = 10

F_NEEDS_CSUM = 1
F_DATA_VALID = 2
F_RSC_INFO = 4
RX_CSUM_OK = F_NEEDS_CSUM | F_DATA_VALID
"""Received-packet flags meaning "do not verify the checksum" (driver ``csum_ok``)."""

GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80
_GSO_KNOWN = frozenset((GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4))

TCP_CSUM_OFFSET = 16
"""Offset of the checksum field in the TCP header (RFC 9293 §3.1)."""

_LE = Struct("<BBHHHH")
_BE = Struct(">BBHHHH")
_pack_le = _LE.pack

HDR_NONE = bytes(VNET_HDR_LEN)
"""The header of a packet that needs nothing from the kernel (no offload, no GSO)."""

_PROTO_TCP = 6
_CWR = 0x80
_IPV6_EXT = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options (RFC 8200 §4)
_CACHE_MAX = 4096


class VnetError(DriverError):
    """A virtio-net header, or a packet it should describe, is malformed."""


class VnetHdr(NamedTuple):
    """One ``struct virtio_net_hdr`` (virtio spec §5.1.6)."""

    flags: int = 0
    gso_type: int = GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & F_DATA_VALID)

    @property
    def csum_ok(self) -> bool:
        """The kernel vouches for (or will compute) the packet's checksum."""
        return bool(self.flags & RX_CSUM_OK)

    @property
    def ecn(self) -> bool:
        return bool(self.gso_type & GSO_ECN)

    def to_bytes(self, big_endian: bool = False) -> bytes:
        try:
            return (_BE if big_endian else _LE).pack(*self)
        except Exception as e:  # struct.error / TypeError on out-of-range fields
            raise VnetError(f"virtio-net header field out of range: {self!r}") from e


def parse_vnet(
    buf: bytes | bytearray | memoryview, offset: int = 0, *, big_endian: bool = False,
) -> tuple[VnetHdr, int]:
    """Decode the header at ``buf[offset:]``: (header, offset of the packet behind it)."""
    if offset < 0 or len(buf) - offset < VNET_HDR_LEN:
        raise VnetError(f"virtio-net header truncated ({len(buf) - offset} bytes at {offset})")
    fields = (_BE if big_endian else _LE).unpack_from(buf, offset)
    flags, gso_type = fields[0], fields[1]
    if flags & ~(F_NEEDS_CSUM | F_DATA_VALID | F_RSC_INFO):
        raise VnetError(f"virtio-net header: unknown flags {flags:#04x}")
    if gso_type & ~GSO_ECN not in _GSO_KNOWN:
        raise VnetError(f"virtio-net header: unknown gso_type {gso_type:#04x}")
    return VnetHdr._make(fields), offset + VNET_HDR_LEN


_cache: dict[int, bytes] = {}
_cache_get = _cache.get


def tx_header(
    packet: bytes | bytearray | memoryview, gso_size: int = 0, csum_partial: bool = False,
) -> bytes:
    """The virtio-net header to send ``packet`` (an IPv4 or IPv6 packet) with.

    ``csum_partial``: the TCP checksum field holds only the pseudo-header sum; the kernel
    completes it (``NEEDS_CSUM``, csum_start = IP header length, csum_offset = 16).  Non-TCP
    packets get no flags (they always carry full checksums).  ``gso_size`` > 0: the kernel
    cuts the TCP payload into segments of that size (``GSO_TCPV4``/``GSO_TCPV6``, plus
    ``GSO_ECN`` when CWR is set: Linux GSO keeps CWR on the first segment only, RFC 3168
    §6.1.2).  A GSO packet may carry a partial checksum (the fast way) or a full one (then
    the kernel recomputes every segment's checksum itself).  A packet whose payload fits in
    one segment is sent without GSO.  IPv4 options and IPv6 extension headers (hop-by-hop,
    routing, destination options) are skipped over.

    Headers are cached by (TCP data offset, IP version, gso_size, CWR, csum_partial): the
    common case is two byte reads, a few integer operations and a dict lookup.
    """
    if not gso_size and not csum_partial:
        return HDR_NONE
    n = len(packet)
    if n >= 40 and packet[0] == 0x45 and packet[9] == 6:  # IPv4 without options, TCP
        b12 = packet[32]
        v6 = 0
    elif n >= 60 and packet[0] >> 4 == 6 and packet[6] == 6:  # IPv6, TCP right behind
        b12 = packet[52]
        v6 = 1
    else:
        return _tx_header_slow(packet, gso_size, csum_partial)
    hdr_len = (20 << v6) + ((b12 >> 4) << 2)
    if hdr_len > n or b12 < 0x50:
        return _tx_header_slow(packet, gso_size, csum_partial)  # raises the precise error
    cwr = 0
    if gso_size:
        if n - hdr_len <= gso_size:
            if not 0 < gso_size <= 0xFFFF:
                raise VnetError(f"gso_size {gso_size} out of range")
            gso_size = 0  # one segment: nothing to cut
            if not csum_partial:
                return HDR_NONE
        else:
            cwr = packet[(20 << v6) + 13] >> 7
    key = (gso_size << 11) | (cwr << 10) | (v6 << 9) | (256 if csum_partial else 0) | b12
    hdr = _cache_get(key)
    if hdr is None:
        if not 0 <= gso_size <= 0xFFFF:
            raise VnetError(f"gso_size {gso_size} out of range")
        hdr = _build(bool(v6), bool(cwr), bool(csum_partial), 20 << v6, hdr_len, gso_size)
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = hdr
    return hdr


def _tx_header_slow(
    packet: bytes | bytearray | memoryview, gso_size: int, csum_partial: bool,
) -> bytes:
    """Any IP packet: IPv4 options, IPv6 extension headers, non-TCP, malformed."""
    n = len(packet)
    if not n:
        raise VnetError("empty packet")
    b0 = packet[0]
    if b0 >> 4 == 4:
        ip_hl = (b0 & 15) << 2
        if ip_hl < 20:
            raise VnetError(f"IPv4 IHL {ip_hl >> 2} < 5")
        if n < 20:
            raise VnetError(f"IPv4 header truncated ({n} bytes)")
        if packet[9] != _PROTO_TCP:
            return _non_tcp(gso_size)
        v6 = False
    elif b0 >> 4 == 6:
        v6 = True
        if n < 40:
            raise VnetError(f"IPv6 header truncated ({n} bytes)")
        ip_hl = 40
        nh = packet[6]
        while nh in _IPV6_EXT:
            if n < ip_hl + 8:
                raise VnetError(f"IPv6 extension header truncated at {ip_hl}")
            nh = packet[ip_hl]
            ip_hl += (packet[ip_hl + 1] + 1) << 3
        if nh != _PROTO_TCP:
            return _non_tcp(gso_size)
    else:
        raise VnetError(f"IP version {b0 >> 4}")
    if n < ip_hl + 20:
        raise VnetError(f"TCP header truncated ({n} bytes, IP header {ip_hl})")
    b12 = packet[ip_hl + 12]
    hdr_len = ip_hl + ((b12 >> 4) << 2)
    if b12 < 0x50:
        raise VnetError(f"TCP data offset {b12 >> 4} < 5")
    if hdr_len > n:
        raise VnetError(f"TCP header ({hdr_len} bytes with IP) overruns the packet ({n})")
    if not 0 <= gso_size <= 0xFFFF:
        raise VnetError(f"gso_size {gso_size} out of range")
    if gso_size and n - hdr_len <= gso_size:
        gso_size = 0
    if not gso_size and not csum_partial:
        return HDR_NONE
    if ip_hl > 0xFFFF:
        raise VnetError(f"IP header of {ip_hl} bytes")
    cwr = bool(packet[ip_hl + 13] & _CWR) if gso_size else False
    return _build(v6, cwr, bool(csum_partial), ip_hl, hdr_len, gso_size)


def _build(v6: bool, cwr: bool, partial: bool, ip_hl: int, hdr_len: int, gso_size: int) -> bytes:
    gso_type = GSO_NONE
    if gso_size:
        gso_type = (GSO_TCPV6 if v6 else GSO_TCPV4) | (GSO_ECN if cwr else 0)
    if partial:
        return _pack_le(F_NEEDS_CSUM, gso_type, hdr_len, gso_size, ip_hl, TCP_CSUM_OFFSET)
    return _pack_le(0, gso_type, hdr_len, gso_size, 0, 0)


def _non_tcp(gso_size: int) -> bytes:
    if gso_size:
        raise VnetError("segmentation offload (gso_size > 0) is for TCP packets only")
    return HDR_NONE
