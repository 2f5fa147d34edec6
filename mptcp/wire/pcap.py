"""Capture files: classic pcap read/write and pcapng read, with link-layer decapsulation to IP.

Formats (stdlib ``struct`` only, no scapy):

- classic pcap (draft-ietf-opsawg-pcap §3-§5): both byte orders, microsecond magic 0xA1B2C3D4
  and nanosecond magic 0xA1B23C4D; the link type is the low 26 bits of the header's LinkType
  field (the upper bits carry FCS information, §5).
- pcapng (draft-ietf-opsawg-pcapng §4): Section Header (§4.1, byte order per section),
  Interface Description (§4.2, ``if_tsresol`` and ``if_tsoffset`` options honoured), Enhanced
  Packet (§4.3), Simple Packet (§4.4) and the obsolete Packet Block (Appendix A); every other
  block type is skipped by its length.

Link types (tcpdump.org LINKTYPE_* registry): NULL 0 and LOOP 108 (4-byte address family),
ETHERNET 1 (802.1Q / 802.1ad tags skipped), RAW 101 and the historic DLT values 12 and 14,
IPV4 228, IPV6 229, LINUX_SLL 113 and LINUX_SLL2 276.

Malformed files raise :class:`WireError` whose offset is the byte position in the file.
The writer produces classic pcap with raw-IP frames (link type 101), the format the stack's
pcap middleware records.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from struct import Struct
from types import TracebackType
from typing import BinaryIO, NamedTuple

from mptcp.wire.errors import WireError

__all__ = [
    "LINKTYPE_NULL", "LINKTYPE_ETHERNET", "LINKTYPE_RAW", "LINKTYPE_RAW_DLT12",
    "LINKTYPE_RAW_DLT14", "LINKTYPE_LOOP", "LINKTYPE_LINUX_SLL", "LINKTYPE_IPV4",
    "LINKTYPE_IPV6", "LINKTYPE_LINUX_SLL2", "IP_LINK_TYPES",
    "PCAP_MAGIC_US", "PCAP_MAGIC_NS", "PCAPNG_SHB",
    "Frame", "PcapPacket", "read_frames", "read_pcap", "link_payload",
    "PcapWriter", "write_pcap",
]

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12
LINKTYPE_RAW_DLT14 = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

IP_LINK_TYPES = frozenset({
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14, LINKTYPE_RAW,
    LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2,
})
"""Link types whose frames :func:`link_payload` can unwrap to IP."""

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_LINKTYPE_MASK = 0x03FFFFFF
_MAX_RECORD = 1 << 24  # refuse absurd record lengths (corrupt length fields) early

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
_VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
# Address families seen in NULL/LOOP headers: AF_INET is 2 everywhere; AF_INET6 is 10 on
# Linux, 24 on NetBSD/OpenBSD, 28 on FreeBSD/DragonFly, 30 on Darwin.
_AF_INET = 2
_AF_INET6 = frozenset({10, 24, 28, 30})

_U16BE = Struct("!H")
_U32BE = Struct("!I")
_U32LE = Struct("<I")


class Frame(NamedTuple):
    """One captured frame as stored in the file."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    """0-based position among all packets of the file."""
    timestamp_ns: int
    """Capture time in integer nanoseconds since the epoch (0 for pcapng Simple Packets)."""
    link_type: int
    data: bytes
    """The captured bytes (possibly cut short by the snap length)."""
    offset: int
    """Byte position of ``data`` in the file."""
    orig_len: int
    """Length of the frame on the wire."""


class PcapPacket(NamedTuple):
    """What :func:`read_pcap` yields: ``ip`` is None when the frame carries no IP packet."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    timestamp: float
    link_type: int
    ip: bytes | None


class _Stream:
    """Exact reads from a binary file with the running file offset for error reports."""

    __slots__ = ("f", "pos")

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.pos = 0

    def read(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise WireError(self.pos + len(data), f"truncated {what}: {len(data)} of {n} bytes")
        self.pos += n
        return data

    def read_or_eof(self, n: int, what: str) -> bytes | None:
        """``n`` bytes, or None at a clean end of file."""
        data = self.f.read(n)
        if not data:
            return None
        if len(data) != n:
            raise WireError(self.pos + len(data), f"truncated {what}: {len(data)} of {n} bytes")
        self.pos += n
        return data


# ---------------------------------------------------------------------------------------------
# classic pcap


def _read_classic(s: _Stream, head: bytes) -> Iterator[Frame]:
    rest = s.read(20, "pcap file header")
    hdr = head + rest
    magic_be = _U32BE.unpack_from(hdr)[0]
    if magic_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        order = "!"
    else:
        order = "<"
        magic_be = _U32LE.unpack_from(hdr)[0]
    nanos = magic_be == PCAP_MAGIC_NS
    major, _minor, _zone, _sigfigs, _snaplen, network = Struct(order + "HHiIII").unpack_from(
        hdr, 4
    )
    if major != 2:
        raise WireError(4, f"pcap major version {major}, expected 2")
    link_type = network & _LINKTYPE_MASK
    rec = Struct(order + "IIII")
    scale = 1 if nanos else 1000
    index = 0
    while True:
        start = s.pos
        rh = s.read_or_eof(16, "pcap record header")
        if rh is None:
            return
        sec, frac, incl, orig = rec.unpack(rh)
        if frac >= (1_000_000_000 if nanos else 1_000_000):
            raise WireError(start + 4, f"sub-second timestamp {frac} out of range")
        if incl > _MAX_RECORD:
            raise WireError(start + 8, f"record length {incl} is implausible")
        off = s.pos
        data = s.read(incl, "pcap record data")
        yield Frame(index, sec * 1_000_000_000 + frac * scale, link_type, data, off, orig)
        index += 1


# ---------------------------------------------------------------------------------------------
# pcapng


class _Iface:
    __slots__ = ("link_type", "offset_ns", "snaplen", "unit_den", "unit_num", "unit_shift")

    def __init__(self, link_type: int, snaplen: int) -> None:
        self.link_type = link_type
        self.snaplen = snaplen
        self.offset_ns = 0
        # timestamp unit as a fraction of a second: ticks * num / den seconds (default 1 us)
        self.unit_num = 1
        self.unit_den = 1_000_000
        self.unit_shift = 0

    def set_resolution(self, raw: int) -> None:
        """``if_tsresol`` (pcapng §4.2): MSB clear = 10^-n, MSB set = 2^-n."""
        n = raw & 0x7F
        if raw & 0x80:
            self.unit_num, self.unit_den, self.unit_shift = 1, 1, n
        else:
            self.unit_num, self.unit_den, self.unit_shift = 1, 10**n, 0

    def to_ns(self, ticks: int) -> int:
        ns = (ticks * 1_000_000_000 * self.unit_num // self.unit_den) >> self.unit_shift
        return ns + self.offset_ns


def _iter_options(body: bytes, start: int, order: str, base: int) -> Iterator[tuple[int, bytes]]:
    """pcapng options (code, value) from ``body[start:]``; ``base`` = body's file offset."""
    u16 = Struct(order + "HH")
    i = start
    n = len(body)
    while i + 4 <= n:
        code, length = u16.unpack_from(body, i)
        if code == 0:
            return
        end = i + 4 + length
        if end > n:
            raise WireError(base + i + 2, f"pcapng option {code} length {length} overruns block")
        yield code, body[i + 4 : end]
        i = end + (-length % 4)


def _read_pcapng(s: _Stream, head: bytes) -> Iterator[Frame]:
    order = "<"
    ifaces: list[_Iface] = []
    index = 0
    pending: bytes | None = head
    while True:
        start = s.pos - (4 if pending is not None else 0)
        if pending is None:
            first = s.read_or_eof(4, "pcapng block type")
            if first is None:
                return
        else:
            first, pending = pending, None
        raw_len = s.read(4, "pcapng block length")
        if first == b"\x0a\x0d\x0d\x0a":
            bom_raw = s.read(4, "pcapng byte-order magic")
            if _U32LE.unpack(bom_raw)[0] == _PCAPNG_BOM:
                order = "<"
            elif _U32BE.unpack(bom_raw)[0] == _PCAPNG_BOM:
                order = "!"
            else:
                raise WireError(start + 8, f"bad pcapng byte-order magic {bom_raw.hex()}")
            consumed = 12
            ifaces = []
        else:
            consumed = 8
        btype = Struct(order + "I").unpack(first)[0]
        blen = Struct(order + "I").unpack(raw_len)[0]
        if blen < 12 or blen % 4 or blen > _MAX_RECORD:
            raise WireError(start + 4, f"pcapng block length {blen} invalid")
        if blen < consumed + 4:
            raise WireError(start + 4, f"pcapng block length {blen} too short for its type")
        body_off = s.pos
        body = s.read(blen - consumed - 4, "pcapng block body")
        trailer = s.read(4, "pcapng block trailer")
        if Struct(order + "I").unpack(trailer)[0] != blen:
            raise WireError(s.pos - 4, "pcapng trailing block length differs from the leading")
        if btype == PCAPNG_SHB:
            if len(body) < 12:
                raise WireError(body_off, "pcapng section header block too short")
            major = Struct(order + "H").unpack_from(body)[0]
            if major != 1:
                raise WireError(body_off, f"pcapng major version {major}, expected 1")
        elif btype == 1:  # Interface Description Block, pcapng §4.2
            if len(body) < 8:
                raise WireError(body_off, "pcapng interface description block too short")
            lt, _res, snaplen = Struct(order + "HHI").unpack_from(body)
            iface = _Iface(lt, snaplen)
            for code, val in _iter_options(body, 8, order, body_off):
                if code == 9 and len(val) >= 1:
                    iface.set_resolution(val[0])
                elif code == 14 and len(val) >= 8:
                    iface.offset_ns = Struct(order + "q").unpack_from(val)[0] * 1_000_000_000
            ifaces.append(iface)
        elif btype in (2, 6):  # Packet (obsolete, Appendix A) / Enhanced Packet (§4.3)
            if len(body) < 20:
                raise WireError(body_off, "pcapng packet block too short")
            if btype == 6:
                if_id, hi, lo, cap, orig = Struct(order + "IIIII").unpack_from(body)
            else:
                if_id, _drops, hi, lo, cap, orig = Struct(order + "HHIIII").unpack_from(body)
            if if_id >= len(ifaces):
                raise WireError(body_off, f"packet on undeclared interface {if_id}")
            if 20 + cap > len(body):
                raise WireError(body_off + 12, f"captured length {cap} overruns the block")
            iface = ifaces[if_id]
            yield Frame(
                index, iface.to_ns((hi << 32) | lo), iface.link_type,
                body[20 : 20 + cap], body_off + 20, orig,
            )
            index += 1
        elif btype == 3:  # Simple Packet Block, pcapng §4.4: interface 0, no timestamp
            if len(body) < 4:
                raise WireError(body_off, "pcapng simple packet block too short")
            if not ifaces:
                raise WireError(body_off, "simple packet block before any interface")
            orig = Struct(order + "I").unpack_from(body)[0]
            cap = min(orig, len(body) - 4)
            if ifaces[0].snaplen:
                cap = min(cap, ifaces[0].snaplen)
            yield Frame(index, 0, ifaces[0].link_type, body[4 : 4 + cap], body_off + 4, orig)
            index += 1
        # every other block type is skipped by its length


# ---------------------------------------------------------------------------------------------
# reading API


def _frames_from(f: BinaryIO) -> Iterator[Frame]:
    s = _Stream(f)
    head = s.read(4, "capture file magic")
    if head == b"\x0a\x0d\x0d\x0a":
        yield from _read_pcapng(s, head)
        return
    magic = _U32BE.unpack(head)[0]
    if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS) or _U32LE.unpack(head)[0] in (
        PCAP_MAGIC_US, PCAP_MAGIC_NS,
    ):
        yield from _read_classic(s, head)
        return
    raise WireError(0, f"not a pcap or pcapng file (magic {head.hex()})")


def read_frames(source: str | os.PathLike[str] | BinaryIO) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in file order; WireError if the file is malformed.

    ``source`` is a path or a binary file object (read sequentially; pipes work).
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield from _frames_from(f)
    else:
        yield from _frames_from(source)


def _ip_version(data: bytes, at: int, base: int) -> bytes | None:
    if len(data) <= at:
        raise WireError(base + len(data), "frame ends before the IP header")
    return data[at:] if data[at] >> 4 in (4, 6) else None


def _ethertype_payload(ethertype: int, data: bytes, at: int) -> bytes | None:
    if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return data[at:]
    return None


def link_payload(link_type: int, data: bytes, base: int = 0) -> bytes | None:
    """The IP packet inside a frame of ``link_type``, or None if the frame carries no IP.

    Raises WireError (offset = ``base`` + position in ``data``) when the link-layer header is
    cut short.  Trailing link-layer bytes (Ethernet padding, FCS) are left in place: the IP
    header's own length tells where the packet ends.
    """
    n = len(data)
    if link_type in (LINKTYPE_RAW, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14):
        return _ip_version(data, 0, base)
    if link_type in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return data
    if link_type == LINKTYPE_ETHERNET:
        if n < 14:
            raise WireError(base + n, f"Ethernet frame of {n} bytes, header needs 14")
        at = 12
        ethertype = _U16BE.unpack_from(data, at)[0]
        while ethertype in _VLAN_ETHERTYPES:  # IEEE 802.1Q / 802.1ad: TPID, TCI, ethertype
            at += 4
            if n < at + 2:
                raise WireError(base + n, "Ethernet frame ends inside a VLAN tag")
            ethertype = _U16BE.unpack_from(data, at)[0]
        return _ethertype_payload(ethertype, data, at + 2)
    if link_type == LINKTYPE_LINUX_SLL:
        if n < 16:
            raise WireError(base + n, f"Linux cooked (SLL) frame of {n} bytes, header needs 16")
        return _ethertype_payload(_U16BE.unpack_from(data, 14)[0], data, 16)
    if link_type == LINKTYPE_LINUX_SLL2:
        if n < 20:
            raise WireError(base + n, f"Linux cooked (SLL2) frame of {n} bytes, header needs 20")
        return _ethertype_payload(_U16BE.unpack_from(data, 0)[0], data, 20)
    if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            raise WireError(base + n, f"loopback frame of {n} bytes, header needs 4")
        if link_type == LINKTYPE_LOOP:
            family = _U32BE.unpack_from(data)[0]
        else:  # host byte order of the capturing machine: the family fits in 16 bits
            family = _U32LE.unpack_from(data)[0]
            if family > 0xFFFF:
                family = _U32BE.unpack_from(data)[0]
        if family == _AF_INET or family in _AF_INET6:
            return data[4:]
        return None
    return None


def read_pcap(source: str | os.PathLike[str] | BinaryIO) -> Iterator[PcapPacket]:
    """(index, timestamp seconds, link type, IP bytes or None) for every packet of the file.

    ``ip`` is None for frames that carry no IP or have an unsupported link type; a frame too
    short for its link-layer header raises WireError (use :func:`read_frames` and
    :func:`link_payload` to handle those per packet).
    """
    for fr in read_frames(source):
        ip = link_payload(fr.link_type, fr.data, fr.offset)
        # int / int is correctly rounded (int / float would round the numerator first)
        yield PcapPacket(fr.index, fr.timestamp_ns / 1_000_000_000, fr.link_type, ip)


# ---------------------------------------------------------------------------------------------
# writing


class PcapWriter:
    """Classic pcap writer; frames are written as given (raw IP with the default link type).

    Use as a context manager or call :meth:`close`.  With ``nanosecond=True`` the file uses
    the nanosecond magic.  A path is opened (and closed) by the writer; a file object is
    written to and left open.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str] | BinaryIO,
        link_type: int = LINKTYPE_RAW,
        *,
        nanosecond: bool = False,
        snaplen: int = 262144,
    ) -> None:
        if isinstance(dest, (str, os.PathLike)):
            self._f: BinaryIO = open(dest, "wb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._f = dest
            self._owned = False
        self._nanos = nanosecond
        self.snaplen = snaplen
        self.link_type = link_type
        self.count = 0
        magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
        self._f.write(Struct("<IHHiIII").pack(magic, 2, 4, 0, 0, snaplen, link_type))
        self._rec = Struct("<IIII")

    def write_ns(self, packet: bytes, timestamp_ns: int) -> None:
        """Append one frame captured at ``timestamp_ns`` nanoseconds since the epoch."""
        sec, ns = divmod(timestamp_ns, 1_000_000_000)
        frac = ns if self._nanos else ns // 1000
        data = packet[: self.snaplen]
        self._f.write(self._rec.pack(sec, frac, len(data), len(packet)))
        self._f.write(data)
        self.count += 1

    def write(self, packet: bytes, timestamp: float) -> None:
        """Append one frame captured at ``timestamp`` seconds since the epoch."""
        sec = math.floor(timestamp)  # split first: the fraction keeps full float precision
        self.write_ns(packet, sec * 1_000_000_000 + round((timestamp - sec) * 1e9))

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        if self._owned:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_pcap(
    dest: str | os.PathLike[str] | BinaryIO,
    packets: Iterable[tuple[float, bytes]],
    link_type: int = LINKTYPE_RAW,
    *,
    nanosecond: bool = False,
) -> int:
    """Write (timestamp seconds, frame) pairs to a classic pcap file; returns the count."""
    with PcapWriter(dest, link_type, nanosecond=nanosecond) as w:
        for ts, pkt in packets:
            w.write(pkt, ts)
        return w.count
