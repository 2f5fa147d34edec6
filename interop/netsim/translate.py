"""Translating middleboxes: NAT (address and port rewriting, RFC 3022 NAPT) and sequence-number
shifting (the ISN randomization some firewalls do, RFC 6528 §1 background; RFC 8684 §3.7).

Both come as one object with two chain elements, one per link direction, sharing the state and
the counters.  Checksums are recomputed by ``Segment.to_bytes()`` (RFC 9293 §3.1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from interop.netsim.errors import NetsimError
from interop.netsim.host import AddressLike
from interop.netsim.middlebox import SegmentMiddlebox
from interop.netsim.packet import address
from mptcp.wire.options import Sack, TcpOption
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import ACK

__all__ = ["Nat", "SeqShift"]

_MASK = 0xFFFFFFFF
Endpoint = tuple[bytes, int]


class Nat:
    """A NAPT: ``outbound`` (install on the inside->outside direction) rewrites the source
    address/port to a public one, ``inbound`` (outside->inside) rewrites the destination back.

    Mappings: ``static`` entries (inside endpoint -> outside endpoint), and dynamic ones made on
    the first outbound segment of an inside endpoint: ``public`` address and the next free port
    of ``ports`` (or the same port with ``preserve_ports`` when free).  Inbound segments that
    match no mapping are dropped (``drop_unmatched``) or passed on.
    """

    def __init__(
        self,
        public: AddressLike,
        *,
        ports: range = range(20000, 60000),
        static: Mapping[tuple[AddressLike, int], tuple[AddressLike, int]] | None = None,
        preserve_ports: bool = False,
        drop_unmatched: bool = True,
        name: str = "nat",
    ) -> None:
        self.name = name
        self.public = address(public)
        self.ports = ports
        self.preserve_ports = preserve_ports
        self.drop_unmatched = drop_unmatched
        self.counters: Counter[str] = Counter()
        self.out_map: dict[Endpoint, Endpoint] = {}  # inside -> outside
        self.in_map: dict[Endpoint, Endpoint] = {}  # outside -> inside
        self._next = 0
        for (ia, ip_), (oa, op) in (static or {}).items():
            self.add_mapping((address(ia), ip_), (address(oa), op))
        self.outbound = _NatOut(self)
        self.inbound = _NatIn(self)

    def add_mapping(self, inside: Endpoint, outside: Endpoint) -> None:
        if len(inside[0]) != len(outside[0]):
            raise NetsimError("NAT mapping between address families")
        if outside in self.in_map or inside in self.out_map:
            raise NetsimError(f"NAT mapping for {inside} / {outside} already exists")
        self.out_map[inside] = outside
        self.in_map[outside] = inside

    def _allocate(self, inside: Endpoint) -> Endpoint | None:
        if len(inside[0]) != len(self.public):
            self.counters["family_mismatch"] += 1
            return None
        if self.preserve_ports and (self.public, inside[1]) not in self.in_map:
            outside = (self.public, inside[1])
        else:
            n = len(self.ports)
            for i in range(n):
                port = self.ports[(self._next + i) % n]
                if (self.public, port) not in self.in_map:
                    self._next = (self._next + i + 1) % n
                    outside = (self.public, port)
                    break
            else:
                self.counters["ports_exhausted"] += 1
                return None
        self.add_mapping(inside, outside)
        self.counters["mappings_created"] += 1
        return outside


class _NatOut(SegmentMiddlebox):
    def __init__(self, nat: Nat) -> None:
        super().__init__(f"{nat.name}.outbound")
        self.nat = nat
        self.counters = nat.counters

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        inside = (seg.ip.src, seg.tcp.sport)
        outside = self.nat.out_map.get(inside) or self.nat._allocate(inside)
        if outside is None:
            self.counters["outbound_dropped"] += 1
            return []
        self.counters["outbound_translated"] += 1
        return [Segment(seg.ip._replace(src=outside[0]), seg.tcp._replace(sport=outside[1]),
                        seg.payload).to_bytes()]


class _NatIn(SegmentMiddlebox):
    def __init__(self, nat: Nat) -> None:
        super().__init__(f"{nat.name}.inbound")
        self.nat = nat
        self.counters = nat.counters

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        inside = self.nat.in_map.get((seg.ip.dst, seg.tcp.dport))
        if inside is None:
            if self.nat.drop_unmatched:
                self.counters["inbound_unmatched_dropped"] += 1
                return []
            self.counters["inbound_unmatched_passed"] += 1
            return [raw]
        self.counters["inbound_translated"] += 1
        return [Segment(seg.ip._replace(dst=inside[0]), seg.tcp._replace(dport=inside[1]),
                        seg.payload).to_bytes()]


class SeqShift:
    """Add ``delta`` (mod 2**32) to the sequence number of every segment on one direction
    (``forward``) and subtract it from the acknowledgment number (ACK set) and, with
    ``sack``, from the SACK blocks (RFC 2018 §3) on the other (``reverse``).  A shifter that
    leaves SACK blocks alone (``sack=False``) breaks SACK, as some deployed ones do."""

    def __init__(self, delta: int, *, sack: bool = True, name: str = "seqshift") -> None:
        self.name = name
        self.delta = delta & _MASK
        self.sack = sack
        self.counters: Counter[str] = Counter()
        self.forward = _SeqAdd(self)
        self.reverse = _AckSub(self)


class _SeqAdd(SegmentMiddlebox):
    def __init__(self, shift: SeqShift) -> None:
        super().__init__(f"{shift.name}.forward")
        self.shift = shift
        self.counters = shift.counters

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        self.counters["seq_shifted"] += 1
        tcp = seg.tcp._replace(seq=(seg.tcp.seq + self.shift.delta) & _MASK)
        return [seg._replace(tcp=tcp).to_bytes()]


class _AckSub(SegmentMiddlebox):
    def __init__(self, shift: SeqShift) -> None:
        super().__init__(f"{shift.name}.reverse")
        self.shift = shift
        self.counters = shift.counters

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        tcp = seg.tcp
        if not tcp.flags & ACK:
            self.counters["passed"] += 1
            return [raw]
        d = self.shift.delta
        opts = tcp.options
        if self.shift.sack and any(type(o) is Sack for o in opts):
            new: list[TcpOption] = []
            for o in opts:
                if type(o) is Sack:
                    o = Sack(tuple(((lo - d) & _MASK, (hi - d) & _MASK) for lo, hi in o.blocks))
                    self.counters["sack_shifted"] += 1
                new.append(o)
            opts = tuple(new)
        self.counters["ack_shifted"] += 1
        tcp = tcp._replace(ack=(tcp.ack - d) & _MASK, options=opts)
        return [seg._replace(tcp=tcp).to_bytes()]
