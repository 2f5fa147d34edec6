"""Per-packet trace hooks: a recorder (for determinism checks and assertions) and a pcap tap.

A hook is called as ``hook(time, link, direction, event, packet)`` where ``event`` is one of
``send`` (the packet left the sending interface, before any middlebox), ``deliver`` (handed
to the receiving stack), ``drop:<reason>`` (see ``DropReason``), ``ce`` (marked CE; the packet
is the marked one), ``reorder`` (held back to be overtaken) or ``duplicate`` (a copy made).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from interop.netsim.link import Dir, Link

__all__ = [
    "TraceHook", "TraceRecord", "TraceRecorder", "PacketWriter", "pcap_hook", "fan_out",
    "SEND", "DELIVER", "CE", "REORDER", "DUPLICATE", "DROP_PREFIX",
]

SEND = "send"
DELIVER = "deliver"
CE = "ce"
REORDER = "reorder"
DUPLICATE = "duplicate"
DROP_PREFIX = "drop:"

TraceHook = Callable[[float, "Link", "Dir", str, bytes], None]


class TraceRecord(NamedTuple):
    time: float
    link: str
    direction: str
    event: str
    packet: bytes


class TraceRecorder:
    """A hook that keeps every record (optionally only some events) in ``records``."""

    def __init__(self, events: Iterable[str] | None = None) -> None:
        self.records: list[TraceRecord] = []
        self._events = None if events is None else frozenset(events)

    def __call__(self, time: float, link: Link, direction: Dir, event: str, pkt: bytes) -> None:
        if self._events is None or event in self._events:
            self.records.append(TraceRecord(time, link.name, str(direction), event, pkt))

    def events(self, event: str) -> list[TraceRecord]:
        return [r for r in self.records if r.event == event]


class PacketWriter(Protocol):
    """Anything with ``write(packet, timestamp)``, e.g. ``mptcp.wire.pcap.PcapWriter``."""

    def write(self, packet: bytes, timestamp: float) -> None: ...


def pcap_hook(
    writer: PacketWriter,
    *,
    event: str = DELIVER,
    link: str | None = None,
    direction: str | None = None,
    epoch: float = 0.0,
) -> TraceHook:
    """A hook writing the packets of one ``event`` (default: as delivered) to ``writer``,
    optionally for one link (by name) and direction; timestamps are ``epoch + time``."""

    def hook(time: float, lk: Link, d: Dir, ev: str, pkt: bytes) -> None:
        if ev == event and (link is None or lk.name == link) and (
            direction is None or d == direction
        ):
            writer.write(pkt, epoch + time)

    return hook


def fan_out(hooks: list[TraceHook]) -> TraceHook | None:
    """One hook calling all of ``hooks`` in order (None when there are none)."""
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]
    hs = tuple(hooks)

    def hook(time: float, lk: Link, d: Dir, ev: str, pkt: bytes) -> None:
        for h in hs:
            h(time, lk, d, ev, pkt)

    return hook
