"""Segment reshaping middleboxes: splitting (like TSO/GSO or a resegmenting proxy) and
coalescing (like LRO/GRO), both TCP-correct: sequence numbers follow the payload, FIN and PSH
end up on the last piece, CWR on the first (RFC 3168 §6.1.2 CWR belongs to the first new
data), RFC 9293 §3.4 sequence space.

Where the RFCs leave room (which options each piece carries, which header a coalesced segment
keeps) the policy is a parameter; see ``SplitOptions`` and ``CoalesceOptions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from interop.netsim.errors import NetsimError
from interop.netsim.middlebox import SegmentMiddlebox
from mptcp.wire.ip import ECN_CE, IPHeader, IPv4Header
from mptcp.wire.segment import Segment
from mptcp.wire.tcp import CWR, FIN, PSH, RST, SYN, URG

__all__ = ["SplitOptions", "Splitter", "CoalesceOptions", "Coalescer"]

_MASK = 0xFFFFFFFF
_NO_SPLIT = SYN | RST | URG


class SplitOptions(Enum):
    """Which pieces of a split segment carry its TCP options."""

    ALL = "all"  # every piece (what TSO does)
    FIRST = "first"  # the first piece only
    NONE = "none"  # none


class Splitter(SegmentMiddlebox):
    """Split each data segment into ``pieces`` pieces of near-equal size, or into pieces of at
    most ``size`` payload bytes.  SYN, RST and URG segments and payloads shorter than
    ``min_payload`` pass unsplit."""

    def __init__(
        self,
        pieces: int | None = 2,
        *,
        size: int | None = None,
        options: SplitOptions = SplitOptions.ALL,
        min_payload: int = 2,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if size is not None:
            pieces = None
            if size < 1:
                raise NetsimError(f"split size must be >= 1, got {size}")
        elif pieces is None or pieces < 2:
            raise NetsimError(f"split into pieces >= 2, got {pieces}")
        self.pieces = pieces
        self.size = size
        self.options = options
        self.min_payload = max(2, min_payload)

    def _sizes(self, n: int) -> list[int]:
        if self.size is not None:
            full, rest = divmod(n, self.size)
            return [self.size] * full + ([rest] if rest else [])
        assert self.pieces is not None
        k = min(self.pieces, n)
        base, extra = divmod(n, k)
        return [base + 1] * extra + [base] * (k - extra)

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        tcp = seg.tcp
        payload = seg.payload
        sizes = self._sizes(len(payload)) if len(payload) >= self.min_payload else [0]
        if len(sizes) < 2 or tcp.flags & _NO_SPLIT:
            self.counters["passed"] += 1
            return [raw]
        self.counters["segments_split"] += 1
        self.counters["pieces_out"] += len(sizes)
        last = len(sizes) - 1
        out: list[bytes] = []
        off = 0
        for i, n in enumerate(sizes):
            flags = tcp.flags
            if i < last:
                flags &= ~(FIN | PSH)
            if i > 0:
                flags &= ~CWR
            opts = tcp.options if self.options is SplitOptions.ALL or (
                i == 0 and self.options is SplitOptions.FIRST) else ()
            th = tcp._replace(seq=(tcp.seq + off) & _MASK, flags=flags, options=opts)
            out.append(Segment(seg.ip, th, payload[off : off + n]).to_bytes())
            off += n
        return out


class CoalesceOptions(Enum):
    """Which options a coalesced segment carries (ACK number and window: always the last's)."""

    LAST = "last"  # the newest segment's (like LRO)
    FIRST = "first"  # the first segment's
    EQUAL = "equal"  # only coalesce segments whose options are identical (like GRO)


@dataclass(slots=True)
class _Aggregate:
    raw: bytes
    first: Segment
    last: Segment
    parts: list[bytes]
    length: int
    flags: int
    ce: bool
    deadline: float
    count: int


def _with_ce(ip: IPHeader) -> IPHeader:
    if isinstance(ip, IPv4Header):
        return ip._replace(tos=ip.tos | ECN_CE)
    return ip._replace(traffic_class=ip.traffic_class | ECN_CE)


class Coalescer(SegmentMiddlebox):
    """Hold data segments of a flow up to ``window`` seconds and merge the ones that follow
    each other in sequence space into one segment (payload at most ``max_payload``).

    A segment of a held flow that cannot be merged releases the aggregate first (flow order
    is kept); a FIN releases it at once; other flows are not affected.  A coalesced segment
    keeps the first's IP header (CE if any part was CE, RFC 3168 §5) and flags, with the PSH
    and FIN of the later parts, and the last's ACK number and window.
    """

    def __init__(
        self,
        window: float,
        *,
        max_payload: int = 65000,
        options: CoalesceOptions = CoalesceOptions.LAST,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if not window > 0.0:
            raise NetsimError(f"coalescing window must be > 0, got {window!r}")
        self.window = window
        self.max_payload = max_payload
        self.options = options
        self._held: dict[tuple[bytes, bytes, int, int], _Aggregate] = {}

    def held(self) -> int:
        return sum(a.count for a in self._held.values())

    def next_deadline(self) -> float | None:
        # held in arrival order, and deadline = arrival + window: the first is the earliest
        for agg in self._held.values():
            return agg.deadline
        return None

    def _mergeable(self, agg: _Aggregate, seg: Segment) -> bool:
        tcp = seg.tcp
        last = agg.last.tcp
        return (
            bool(seg.payload)
            and tcp.seq == (last.seq + len(agg.last.payload)) & _MASK
            # CWR may only start an aggregate (it marks the first new data, RFC 3168 §6.1.2)
            and tcp.flags & ~(PSH | FIN) == agg.flags & ~(PSH | CWR)
            and agg.length + len(seg.payload) <= self.max_payload
            and (self.options is not CoalesceOptions.EQUAL or tcp.options == last.options)
        )

    def _build(self, agg: _Aggregate) -> bytes:
        first, last = agg.first, agg.last
        if agg.count == 1:
            return agg.raw
        opts = first.tcp.options if self.options is CoalesceOptions.FIRST else last.tcp.options
        tcp = first.tcp._replace(
            ack=last.tcp.ack, window=last.tcp.window, flags=agg.flags, options=opts)
        ip = _with_ce(first.ip) if agg.ce else first.ip
        self.counters["coalesced_out"] += 1
        return Segment(ip, tcp, b"".join(agg.parts)).to_bytes()

    def _release(self, key: tuple[bytes, bytes, int, int]) -> bytes:
        agg = self._held.pop(key)
        self.counters["released"] += 1
        return self._build(agg)

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        ip, tcp = seg.ip, seg.tcp
        key = (ip.src, ip.dst, tcp.sport, tcp.dport)
        agg = self._held.get(key)
        out: list[bytes] = []
        if agg is not None:
            if self._mergeable(agg, seg):
                agg.last = seg
                agg.parts.append(seg.payload)
                agg.length += len(seg.payload)
                agg.flags |= tcp.flags & (PSH | FIN)
                agg.ce = agg.ce or ip.ecn == ECN_CE
                agg.count += 1
                self.counters["merged"] += 1
                if tcp.flags & FIN or agg.length >= self.max_payload:
                    out.append(self._release(key))
                return out
            out.append(self._release(key))
        if seg.payload and not tcp.flags & (SYN | RST | URG | FIN):
            self._held[key] = _Aggregate(raw, seg, seg, [seg.payload], len(seg.payload), tcp.flags,
                                         ip.ecn == ECN_CE, now + self.window, 1)
            self.counters["held"] += 1
        else:
            self.counters["bypassed"] += 1
            out.append(raw)
        return out

    def poll(self, now: float) -> list[bytes]:
        out: list[bytes] = []
        while self._held:
            key, agg = next(iter(self._held.items()))
            if agg.deadline > now:
                break
            out.append(self._release(key))
        return out

    def flush(self, now: float) -> list[bytes]:
        return [self._release(k) for k in list(self._held)]
