"""Middlebox elements: the base interface, option stripping and payload rewriting.

Middleboxes sit in a chain on one link direction and see every packet the direction carries.
The segment-level ones parse with ``mptcp.wire.segment.parse_segment`` and rebuild with
``Segment.to_bytes()`` (IP and TCP checksums recomputed, RFC 791 §3.1, RFC 9293 §3.1);
anything that is not TCP, or does not parse, passes untouched and is counted.

Option stripping does what middleboxes seen on the Internet do (Honda et al., "Is it still
possible to extend TCP?", IMC 2011; RFC 8684 §3.7 lists the consequences for MPTCP): remove
options and shrink the header, or overwrite them with NOPs, on SYNs only or on every segment.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from enum import Enum

from interop.netsim.errors import NetsimError
from mptcp.wire.errors import WireError
from mptcp.wire.options import NOP, TcpOption
from mptcp.wire.segment import Segment, parse_segment
from mptcp.wire.tcp import SYN

__all__ = [
    "Middlebox", "SegmentMiddlebox", "StripMode", "StripScope", "OptionStrip",
    "PayloadRewrite", "BASE_KINDS", "option_kind",
]

BASE_KINDS = frozenset((0, 1, 2, 3, 4, 5, 8))
"""RFC 9293 / RFC 7323 / RFC 2018 option kinds every middlebox is assumed to know."""


class Middlebox:
    """A chain element; the base class passes everything through untouched.

    ``process`` returns the packets to send on (none: dropped or held; several: split).
    An element that holds packets reports when it wants to be polled (``next_deadline``)
    and how many packets it holds (``held``); ``flush`` releases everything (when removed).
    Counters go in ``counters`` (a ``collections.Counter``).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__
        self.counters: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def process(self, packet: bytes, now: float) -> list[bytes]:
        return [packet]

    def poll(self, now: float) -> list[bytes]:
        """Packets whose holding time is over at ``now``."""
        return []

    def next_deadline(self) -> float | None:
        return None

    def held(self) -> int:
        return 0

    def flush(self, now: float) -> list[bytes]:
        """Release everything held."""
        return []


class SegmentMiddlebox(Middlebox):
    """An element working on parsed TCP segments; other packets pass untouched."""

    def process(self, packet: bytes, now: float) -> list[bytes]:
        try:
            seg = parse_segment(packet)
        except WireError:
            self.counters["passed_not_tcp"] += 1
            return [packet]
        return self.handle(seg, packet, now)

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        """Process one parsed segment (``raw`` is its wire form, to pass it on unchanged)."""
        raise NotImplementedError


def option_kind(opt: TcpOption) -> int:
    """The kind byte of a parsed option value."""
    if opt is NOP:
        return 1
    return opt.to_bytes()[0]


class StripMode(Enum):
    """How a stripped option disappears."""

    NOP = "nop"  # overwritten with NOPs: header length unchanged
    REMOVE = "remove"  # taken out: header shrinks (rest zero-padded to 32 bits)


class StripScope(Enum):
    """Which segments are touched."""

    SYN = "syn"  # segments with SYN set (SYN and SYN/ACK)
    ALL = "all"


class OptionStrip(SegmentMiddlebox):
    """Strip TCP options chosen by kind.  Build with :meth:`all_options`,
    :meth:`unknown_options` or :meth:`of_kinds`, or pass a ``select(kind) -> bool``."""

    def __init__(
        self,
        select: Callable[[int], bool],
        *,
        mode: StripMode = StripMode.REMOVE,
        scope: StripScope = StripScope.ALL,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        self.select = select
        self.mode = mode
        self.scope = scope

    @classmethod
    def all_options(
        cls, *, mode: StripMode = StripMode.REMOVE, scope: StripScope = StripScope.ALL,
        name: str | None = None,
    ) -> OptionStrip:
        """Every option (NOP and EOL included)."""
        return cls(lambda kind: True, mode=mode, scope=scope, name=name or "strip-all")

    @classmethod
    def unknown_options(
        cls, known: Iterable[int] = BASE_KINDS, *, mode: StripMode = StripMode.REMOVE,
        scope: StripScope = StripScope.ALL, name: str | None = None,
    ) -> OptionStrip:
        """Every option whose kind is not in ``known`` (NOP and EOL are always known)."""
        keep = frozenset(known) | {0, 1}
        return cls(lambda kind: kind not in keep, mode=mode, scope=scope,
                   name=name or "strip-unknown")

    @classmethod
    def of_kinds(
        cls, kinds: Iterable[int], *, mode: StripMode = StripMode.REMOVE,
        scope: StripScope = StripScope.ALL, name: str | None = None,
    ) -> OptionStrip:
        """The options of the given kinds."""
        drop = frozenset(kinds)
        return cls(drop.__contains__, mode=mode, scope=scope,
                   name=name or "strip-" + ",".join(map(str, sorted(drop))))

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        tcp = seg.tcp
        if self.scope is StripScope.SYN and not tcp.flags & SYN:
            self.counters["passed"] += 1
            return [raw]
        kept: list[TcpOption] = []
        stripped = 0
        for opt in tcp.options:
            kind = option_kind(opt)
            if not self.select(kind):
                kept.append(opt)
                continue
            stripped += 1
            self.counters[f"stripped_kind_{kind}"] += 1
            if self.mode is StripMode.NOP:
                kept.extend([NOP] * len(opt.to_bytes()))
            else:
                self.counters["bytes_removed"] += len(opt.to_bytes())
        if not stripped:
            self.counters["passed"] += 1
            return [raw]
        self.counters["segments_stripped"] += 1
        self.counters["options_stripped"] += stripped
        return [seg._replace(tcp=tcp._replace(options=tuple(kept))).to_bytes()]


class PayloadRewrite(SegmentMiddlebox):
    """Rewrite segment payloads with ``fn(payload) -> payload`` or a fixed substitution of
    ``find`` by ``replace`` (within one segment, like an ALG).  Sequence numbers are left
    alone: a rewrite that changes the length desynchronizes the byte stream, as real ones
    do (RFC 8684 §3.7 relies on the DSS checksum to detect it)."""

    def __init__(
        self,
        fn: Callable[[bytes], bytes] | None = None,
        *,
        find: bytes | None = None,
        replace: bytes | None = None,
        match: Callable[[Segment], bool] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if fn is None:
            if find is None or replace is None or not find:
                raise NetsimError("PayloadRewrite needs fn, or non-empty find and replace")
            old, new = find, replace
            fn = lambda payload: payload.replace(old, new)  # noqa: E731
        elif find is not None or replace is not None:
            raise NetsimError("PayloadRewrite takes fn or find/replace, not both")
        self.fn = fn
        self.match = match

    def handle(self, seg: Segment, raw: bytes, now: float) -> list[bytes]:
        if not seg.payload or (self.match is not None and not self.match(seg)):
            self.counters["passed"] += 1
            return [raw]
        new = self.fn(seg.payload)
        if new == seg.payload:
            self.counters["passed"] += 1
            return [raw]
        self.counters["rewritten"] += 1
        if len(new) != len(seg.payload):
            self.counters["length_changed"] += 1
        return [seg._replace(payload=bytes(new)).to_bytes()]
