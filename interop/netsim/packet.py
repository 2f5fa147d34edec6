"""Minimal byte-level reads and writes on IP packets, for the simulator's per-packet path.

Only what a link needs without parsing a whole segment: the IP version, source and destination
addresses (RFC 791 §3.1, RFC 8200 §3), the ECN field and setting it to CE (RFC 3168 §5), with
the IPv4 header checksum recomputed (RFC 791 §3.1; the TCP checksum covers neither the TOS byte
nor the Traffic Class, RFC 9293 §3.1, RFC 8200 §8.1).
"""

from __future__ import annotations

import ipaddress

from interop.netsim.errors import NetsimError
from mptcp.wire.checksum import internet_checksum
from mptcp.wire.ip import ECN_CE

__all__ = ["address", "src_of", "dst_of", "ecn_of", "with_ce", "format_address"]


def address(value: str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """Packed (4- or 16-byte) form of an address given as text, packed bytes or an object."""
    if isinstance(value, bytes):
        if len(value) not in (4, 16):
            raise NetsimError(f"packed address of {len(value)} bytes (expected 4 or 16)")
        return value
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value).packed
        except ValueError as exc:
            raise NetsimError(f"not an IP address: {value!r}") from exc
    return value.packed


def format_address(packed: bytes) -> str:
    """Text form of a packed IPv4/IPv6 address (for reports and errors)."""
    return str(ipaddress.ip_address(packed))


def src_of(pkt: bytes) -> bytes | None:
    """Source address of an IPv4/IPv6 packet, or None when the fixed header is not there."""
    if pkt:
        v = pkt[0] >> 4
        if v == 4 and len(pkt) >= 20:
            return pkt[12:16]
        if v == 6 and len(pkt) >= 40:
            return pkt[8:24]
    return None


def dst_of(pkt: bytes) -> bytes | None:
    """Destination address of an IPv4/IPv6 packet, or None when the fixed header is not there."""
    if pkt:
        v = pkt[0] >> 4
        if v == 4 and len(pkt) >= 20:
            return pkt[16:20]
        if v == 6 and len(pkt) >= 40:
            return pkt[24:40]
    return None


def ecn_of(pkt: bytes) -> int:
    """RFC 3168 §5 ECN codepoint: low two bits of the IPv4 TOS / IPv6 Traffic Class.

    The caller has checked (with :func:`dst_of`) that the fixed header is present.
    """
    if pkt[0] >> 4 == 4:
        return pkt[1] & 3
    return (pkt[1] >> 4) & 3  # Traffic Class spans bits 4..11 of the first 32-bit word


def with_ce(pkt: bytes) -> bytes:
    """The packet with its ECN field set to CE (RFC 3168 §5); IPv4 header checksum recomputed
    over the header (RFC 791 §3.1).  Other bytes are unchanged."""
    if pkt[0] >> 4 == 4:
        hlen = (pkt[0] & 15) << 2
        hdr = bytearray(pkt[:hlen])
        hdr[1] |= ECN_CE
        hdr[10] = hdr[11] = 0
        csum = internet_checksum(hdr)
        hdr[10] = csum >> 8
        hdr[11] = csum & 0xFF
        return bytes(hdr) + pkt[hlen:]
    return pkt[:1] + bytes((pkt[1] | (ECN_CE << 4),)) + pkt[2:]
