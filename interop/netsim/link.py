"""Point-to-point links: two directions, each a middlebox chain, a rate-limited drop-tail queue
with an ECN-marking AQM (RFC 3168 §5), loss, delay, jitter, reordering and duplication.

Departure times are computed when a packet enters the queue (like netem), so one heap event per
delivered packet is all a link costs.  A parameter change applies to packets entering after it;
taking a link down drops what is queued and on the wire (at its would-be arrival time, counted
``link_down``) and everything offered while down.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from heapq import heappush
from typing import TYPE_CHECKING, Any

from interop.netsim.clock import EventQueue
from interop.netsim.errors import NetsimError
from interop.netsim.packet import with_ce
from interop.netsim.params import GilbertElliott, LinkParams

if TYPE_CHECKING:
    from interop.netsim.host import Interface
    from interop.netsim.middlebox import Middlebox
    from interop.netsim.trace import TraceHook

__all__ = ["Dir", "DropReason", "ChannelState", "LinkStats", "LinkDirection", "Link"]


class Dir(StrEnum):
    """Direction on a link: from interface ``a`` to ``b``, or back."""

    AB = "ab"
    BA = "ba"


class DropReason(StrEnum):
    """Why a link dropped a packet (keys of ``LinkStats.dropped``; trace event ``drop:<r>``)."""

    LINK_DOWN = "link_down"
    QUEUE = "queue"
    AQM = "aqm"
    LOSS = "loss"
    BURST_LOSS = "burst_loss"
    NO_ROUTE = "no_route"
    MALFORMED = "malformed"


class ChannelState(Enum):
    """Gilbert-Elliott channel state of a direction."""

    GOOD = "good"
    BAD = "bad"


@dataclass(slots=True)
class LinkStats:
    """Counters of one link direction.

    Conservation: ``sent + duplicated + middlebox_out - middlebox_in == delivered +
    dropped_total + in_flight`` at every instant (packets held inside a middlebox are the
    ``middlebox_in - middlebox_out`` not yet released).
    """

    sent: int = 0
    bytes_sent: int = 0
    delivered: int = 0
    bytes_delivered: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    marked_ce: int = 0
    duplicated: int = 0
    reordered: int = 0
    in_flight: int = 0
    middlebox_in: int = 0
    middlebox_out: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def as_dict(self) -> dict[str, int]:
        """Flat counters, e.g. ``{"sent": 10, "dropped": 2, "dropped_loss": 2, ...}``."""
        out = {
            "sent": self.sent, "bytes_sent": self.bytes_sent, "delivered": self.delivered,
            "bytes_delivered": self.bytes_delivered, "dropped": self.dropped_total,
            "marked_ce": self.marked_ce, "duplicated": self.duplicated,
            "reordered": self.reordered, "in_flight": self.in_flight,
            "middlebox_in": self.middlebox_in, "middlebox_out": self.middlebox_out,
        }
        for reason, n in sorted(self.dropped.items()):
            out[f"dropped_{reason}"] = n
        return out


class LinkDirection:
    """One direction of a link: everything between the sending and the receiving interface."""

    def __init__(
        self, link: Link, direction: Dir, src: Interface, dst: Interface,
        params: LinkParams, queue: EventQueue, rng: random.Random,
    ) -> None:
        self.link = link
        self.dir = direction
        self.src = src
        self.dst = dst
        self._params = params
        self.middleboxes: list[Middlebox] = []
        self.stats = LinkStats()
        self.up = True
        self.trace: TraceHook | None = None
        self.sink: Callable[[bytes], None] = _no_sink
        self._q = queue
        self._heap = queue.heap
        self._tiebreak = queue.next_tiebreak()
        self._rng = rng
        # strong host: the receiving interface's addresses; weak: any of the host's
        self._dst_addrs: set[bytes] | dict[bytes, Interface] = (
            dst.host.by_address if dst.host.weak_host else dst.addresses)
        self._queue: deque[tuple[float, int]] = deque()  # (departure time, size)
        self._qbytes = 0
        self._busy_until = 0.0
        self._last_arrival = 0.0
        self._epoch = 0
        self._poll_at: float | None = None
        self.channel = ChannelState.GOOD

    def __repr__(self) -> str:
        return f"<LinkDirection {self.link.name}/{self.dir}>"

    # -- configuration ------------------------------------------------------------------------

    @property
    def params(self) -> LinkParams:
        return self._params

    @params.setter
    def params(self, value: LinkParams) -> None:
        if not isinstance(value, LinkParams):
            raise NetsimError("params must be a LinkParams")
        self._params = value

    def configure(self, **changes: Any) -> None:
        """Change some parameters (validated); applies to packets entering from now on."""
        self._params = self._params.replace(**changes)

    def set_up(self, up: bool) -> None:
        """Bring the direction up or down; going down loses the queue and the wire."""
        if up == self.up:
            return
        self.up = up
        if not up:
            self._epoch += 1
            self._queue.clear()
            self._qbytes = 0
            self._busy_until = 0.0
            self._last_arrival = 0.0

    def add_middlebox(self, mb: Middlebox, index: int | None = None) -> None:
        """Insert ``mb`` into the chain (at the end by default)."""
        if index is None:
            self.middleboxes.append(mb)
        else:
            self.middleboxes.insert(index, mb)
        self._arm_poll()

    def remove_middlebox(self, mb: Middlebox) -> None:
        """Take ``mb`` out of the chain; what it held goes on through the rest of the chain."""
        i = self.middleboxes.index(mb)
        now = self._q.now
        held = mb.flush(now)
        out = self._chain(i + 1, held, now) if held else []
        del self.middleboxes[i]
        self._emit(out, now)
        self._arm_poll()

    def queue_length(self) -> tuple[int, int]:
        """(packets, bytes) in the bottleneck queue now (waiting or being serialized)."""
        now = self._q.now
        return (sum(1 for t, _ in self._queue if t > now),
                sum(s for t, s in self._queue if t > now))

    def held(self) -> int:
        """Packets currently held inside this direction's middleboxes."""
        return sum(mb.held() for mb in self.middleboxes)

    # -- the packet path ----------------------------------------------------------------------

    def offer(self, pkt: bytes) -> None:
        """A packet leaves the sending interface onto this direction."""
        st = self.stats
        st.sent += 1
        st.bytes_sent += len(pkt)
        now = self._q.now
        if self.trace is not None:
            self.trace(now, self.link, self.dir, "send", pkt)
        if not self.up:
            self._drop(pkt, DropReason.LINK_DOWN, now)
            return
        if self.middleboxes:
            st.middlebox_in += 1
            out = self._chain(0, [pkt], now)
            self._emit(out, now)
            self._arm_poll()
        else:
            self._enqueue(pkt, now)

    def _chain(self, start: int, pkts: list[bytes], now: float) -> list[bytes]:
        for mb in self.middleboxes[start:]:
            if not pkts:
                break
            out: list[bytes] = []
            for p in pkts:
                out.extend(mb.process(p, now))
            pkts = out
        return pkts

    def _emit(self, out: list[bytes], now: float) -> None:
        self.stats.middlebox_out += len(out)
        up = self.up
        for p in out:
            if up:
                self._enqueue(p, now)
            else:
                self._drop(p, DropReason.LINK_DOWN, now)

    def _drop(self, pkt: bytes, reason: DropReason, now: float) -> None:
        self.stats.dropped[reason] += 1
        if self.trace is not None:
            self.trace(now, self.link, self.dir, "drop:" + reason, pkt)

    def _enqueue(self, pkt: bytes, now: float) -> None:
        size = len(pkt)
        v = pkt[0] >> 4 if size else 0
        if v == 4 and size >= 20:
            dst = pkt[16:20]
        elif v == 6 and size >= 40:
            dst = pkt[24:40]
        else:
            self._drop(pkt, DropReason.MALFORMED, now)
            return
        if dst not in self._dst_addrs:
            self._drop(pkt, DropReason.NO_ROUTE, now)
            return
        p = self._params
        rate = p.rate
        if rate is not None:
            q = self._queue
            while q and q[0][0] <= now:
                self._qbytes -= q.popleft()[1]
            qlen = len(q)
            if (p.queue_packets is not None and qlen >= p.queue_packets) or (
                p.queue_bytes is not None and self._qbytes + size > p.queue_bytes
            ):
                self._drop(pkt, DropReason.QUEUE, now)
                return
            if p.aqm and self._congested(p, qlen):
                # RFC 3168 §5: mark CE instead of dropping when the packet is ECN-capable
                ecn = pkt[1] & 3 if v == 4 else (pkt[1] >> 4) & 3
                if ecn == 1 or ecn == 2:
                    pkt = with_ce(pkt)
                    self.stats.marked_ce += 1
                    if self.trace is not None:
                        self.trace(now, self.link, self.dir, "ce", pkt)
                elif ecn == 0 and p.aqm_drop_not_ect:
                    self._drop(pkt, DropReason.AQM, now)
                    return
            busy = self._busy_until
            depart = (busy if busy > now else now) + size * 8 / rate
            self._busy_until = depart
            q.append((depart, size))
            self._qbytes += size
        else:
            depart = now
        rng = self._rng
        if p.loss and rng.random() < p.loss:
            self._drop(pkt, DropReason.LOSS, now)
            return
        if p.burst_loss is not None and self._burst_lost(p.burst_loss):
            self._drop(pkt, DropReason.BURST_LOSS, now)
            return
        arrival = depart + p.delay
        if p.jitter:
            arrival += rng.uniform(-p.jitter, p.jitter)
            if arrival < depart:
                arrival = depart
        if p.reorder and rng.random() < p.reorder:
            arrival += p.reorder_delay
            self.stats.reordered += 1
            if self.trace is not None:
                self.trace(now, self.link, self.dir, "reorder", pkt)
        elif p.fifo:
            if arrival < self._last_arrival:
                arrival = self._last_arrival
            self._last_arrival = arrival
        heap = self._heap
        epoch = self._epoch
        heappush(heap, (arrival, self._tiebreak(), self._arrive, pkt, epoch))
        self.stats.in_flight += 1
        if p.duplicate and rng.random() < p.duplicate:
            heappush(heap, (arrival, self._tiebreak(), self._arrive, pkt, epoch))
            self.stats.in_flight += 1
            self.stats.duplicated += 1
            if self.trace is not None:
                self.trace(now, self.link, self.dir, "duplicate", pkt)

    def _congested(self, p: LinkParams, qlen: int) -> bool:
        """AQM step threshold: the queue ahead of the arriving packet exceeds it."""
        tp = p.ecn_threshold_packets
        tb = p.ecn_threshold_bytes
        return (tp is not None and qlen > tp) or (tb is not None and self._qbytes > tb)

    def _burst_lost(self, ge: GilbertElliott) -> bool:
        rng = self._rng
        if self.channel is ChannelState.GOOD:
            lost = ge.loss_good > 0.0 and rng.random() < ge.loss_good
            if rng.random() < ge.p:
                self.channel = ChannelState.BAD
        else:
            lost = ge.loss_bad > 0.0 and rng.random() < ge.loss_bad
            if rng.random() < ge.r:
                self.channel = ChannelState.GOOD
        return lost

    def _arrive(self, pkt: bytes, epoch: int) -> None:
        st = self.stats
        st.in_flight -= 1
        if epoch != self._epoch:
            self._drop(pkt, DropReason.LINK_DOWN, self._q.now)
            return
        st.delivered += 1
        st.bytes_delivered += len(pkt)
        if self.trace is not None:
            self.trace(self._q.now, self.link, self.dir, "deliver", pkt)
        self.sink(pkt)

    # -- middlebox timers ---------------------------------------------------------------------

    def _arm_poll(self) -> None:
        due: float | None = None
        for mb in self.middleboxes:
            d = mb.next_deadline()
            if d is not None and (due is None or d < due):
                due = d
        if due is not None and (self._poll_at is None or due < self._poll_at):
            self._poll_at = due
            now = self._q.now
            self._q.push(due if due > now else now, self._poll, None, None)

    def _poll(self, _a: object, _b: object) -> None:
        self._poll_at = None
        now = self._q.now
        out: list[bytes] = []
        for i, mb in enumerate(self.middleboxes):
            released = mb.poll(now)
            if released:
                out.extend(self._chain(i + 1, released, now))
        self._emit(out, now)
        self._arm_poll()


def _no_sink(pkt: bytes) -> None:
    raise NetsimError("link direction not attached to a simulator")


class Link:
    """A point-to-point link between interfaces ``a`` and ``b`` (directions ``ab`` and ``ba``).

    Build links with :meth:`Simulator.add_link`.
    """

    def __init__(
        self, name: str, a: Interface, b: Interface, ab: LinkParams, ba: LinkParams,
        queue: EventQueue, seed: int,
    ) -> None:
        self.name = name
        self.a = a
        self.b = b
        self.ab = LinkDirection(self, Dir.AB, a, b, ab, queue,
                                random.Random(f"netsim/{seed}/{name}/ab"))
        self.ba = LinkDirection(self, Dir.BA, b, a, ba, queue,
                                random.Random(f"netsim/{seed}/{name}/ba"))

    def __repr__(self) -> str:
        return f"<Link {self.name}>"

    def direction(self, d: Dir | str) -> LinkDirection:
        """The direction ``"ab"`` or ``"ba"``."""
        if d == Dir.AB:
            return self.ab
        if d == Dir.BA:
            return self.ba
        raise NetsimError(f"direction must be 'ab' or 'ba', got {d!r}")

    def directions(self, d: Dir | str | None = None) -> tuple[LinkDirection, ...]:
        """One direction, or both when ``d`` is None."""
        return (self.ab, self.ba) if d is None else (self.direction(d),)

    @property
    def up(self) -> bool:
        return self.ab.up and self.ba.up

    def set_up(self, up: bool) -> None:
        """Bring both directions up or down (down: queued and in-flight packets are lost)."""
        self.ab.set_up(up)
        self.ba.set_up(up)

    def configure(self, d: Dir | str | None = None, **changes: Any) -> None:
        """Change parameters of one direction, or both when ``d`` is None."""
        for x in self.directions(d):
            x.configure(**changes)

    def stats(self) -> dict[str, dict[str, int]]:
        return {"ab": self.ab.stats.as_dict(), "ba": self.ba.stats.as_dict()}
