"""TCP header (RFC 9293 §3.1) with all 12 flag bits, including AE (RFC 9768 §3.1; the former
NS bit of RFC 3540) and the three reserved bits.

``flags`` is the 12-bit integer formed by the low nibble of byte 12 and byte 13 of the header:
``AE`` = 0x100, ``CWR`` = 0x080, ``ECE`` = 0x040, ``URG`` ... ``FIN`` = 0x001; 0xE00 are the
reserved bits, kept as on the wire.
"""

from __future__ import annotations

from struct import Struct
from typing import NamedTuple

from mptcp.wire.errors import WireError
from mptcp.wire.options import TcpOption, parse_options, serialize_options
from mptcp.wire.value import wire_value

__all__ = [
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "AE", "RESERVED_FLAGS",
    "FLAG_NAMES", "TcpHeader", "parse_tcp", "flags_text",
]

FIN = 0x001
SYN = 0x002
RST = 0x004
PSH = 0x008
ACK = 0x010
URG = 0x020
ECE = 0x040
CWR = 0x080
AE = 0x100
RESERVED_FLAGS = 0xE00

FLAG_NAMES = ((AE, "AE"), (CWR, "CWR"), (ECE, "ECE"), (URG, "URG"), (ACK, "ACK"),
              (PSH, "PSH"), (RST, "RST"), (SYN, "SYN"), (FIN, "FIN"))

_TCP = Struct("!HHIIHHHH")
_from_bytes = int.from_bytes
_new = tuple.__new__
_PAD = (b"", b"\x00\x00\x00", b"\x00\x00", b"\x00")


@wire_value
class TcpHeader(NamedTuple):
    """A TCP header; the data offset is derived from the options (padded to 32 bits)."""

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    checksum: int = 0
    urgent: int = 0
    options: tuple[TcpOption, ...] = ()

    def options_bytes(self) -> bytes:
        """The option list as sent: serialized and zero-padded to a multiple of 4 bytes."""
        raw = serialize_options(self.options)
        return raw + _PAD[len(raw) & 3]

    def to_bytes(self) -> bytes:
        """Header bytes exactly as the fields say (checksum not recomputed)."""
        opts = self.options_bytes()
        return _TCP.pack(
            self.sport, self.dport, self.seq, self.ack, ((20 + len(opts)) << 10) | self.flags,
            self.window, self.checksum, self.urgent,
        ) + opts


def parse_tcp(buf: bytes, off: int = 0, end: int | None = None) -> tuple[TcpHeader, int]:
    """Parse the TCP header at ``buf[off:end]``: (header, offset of the payload).

    Errors carry offsets into ``buf``.
    """
    if end is None:
        end = len(buf)
    if end - off < 20:
        raise WireError(off, f"TCP header truncated ({end - off} bytes)")
    sport, dport, seq, ack, off_flags, window, csum, urg = _TCP.unpack_from(buf, off)
    hlen = (off_flags >> 12) << 2
    if hlen < 20:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} < 5")
    data = off + hlen
    if data > end:
        raise WireError(off + 12, f"TCP data offset {hlen >> 2} overruns the segment")
    opts = parse_options(buf[off + 20 : data], off + 20) if hlen > 20 else ()
    hdr = _new(TcpHeader, (sport, dport, seq, ack, off_flags & 0xFFF, window, csum, urg, opts))
    return hdr, data


def flags_text(flags: int) -> str:
    """Readable flags, e.g. ``SYN|ACK|AE``; reserved bits shown as ``R0x...``."""
    names = [name for bit, name in FLAG_NAMES if flags & bit]
    if flags & RESERVED_FLAGS:
        names.append(f"R{flags & RESERVED_FLAGS:#x}")
    return "|".join(names) or "-"
