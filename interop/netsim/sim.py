"""The discrete-event simulator: hosts running Sans-IO stacks, joined by links, in virtual time.

``Simulator(seed)`` owns the event queue.  ``run()`` pops events in time order: packet arrivals
(handed to the receiving stack), stack timers (fired at their deadline), middlebox polls and
scheduled callbacks.  After every call into a stack its outbox is drained onto the links and its
timer re-read.  Nothing is polled on a fixed tick: with no pending event the run stops (idle).
Every random decision comes from per-link-direction ``random.Random`` streams derived from the
seed and the link's name, so the same seed and the same setup give the same run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from heapq import heappop
from typing import Any

from interop.netsim.clock import EventQueue
from interop.netsim.errors import NetsimError
from interop.netsim.host import Host, Interface, SansIOStack
from interop.netsim.link import Dir, Link, LinkDirection
from interop.netsim.middlebox import Middlebox
from interop.netsim.params import LinkParams
from interop.netsim.trace import TraceHook, fan_out

__all__ = ["StopReason", "RunResult", "Simulator", "DEFAULT_MAX_EVENTS"]

DEFAULT_MAX_EVENTS = 50_000_000


class StopReason(StrEnum):
    """Why :meth:`Simulator.run` returned."""

    IDLE = "idle"  # no pending event and no stack timer: nothing can happen any more
    UNTIL = "until"  # the ``until`` time was reached
    CONDITION = "condition"  # the ``until`` predicate became true
    MAX_EVENTS = "max_events"  # the event budget of the run was used up
    MAX_TIME = "max_time"  # the virtual-time bound was reached


@dataclass(frozen=True, slots=True)
class RunResult:
    reason: StopReason
    now: float  # virtual time when the run stopped
    events: int  # events processed by this run
    total_events: int  # events processed since the simulator was built


class Simulator:
    """Hosts, links, middleboxes and a fault schedule, run in virtual time.

    ``max_time`` / ``max_events`` are the default bounds of every :meth:`run`.
    """

    def __init__(
        self, seed: int = 0, *, max_time: float = math.inf,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self.seed = seed
        self.max_time = max_time
        self.max_events = max_events
        self.hosts: dict[str, Host] = {}
        self.links: dict[str, Link] = {}
        self.events = 0
        self._q = EventQueue()
        self._hooks: list[TraceHook] = []
        self._trace: TraceHook | None = None

    @property
    def now(self) -> float:
        """Virtual time, seconds."""
        return self._q.now

    # -- building -----------------------------------------------------------------------------

    def add_host(self, name: str, stack: SansIOStack, *, weak_host: bool = False) -> Host:
        """A host running ``stack``; ``weak_host``: accept packets for any of its addresses
        on any interface (see ``interop.netsim.host``)."""
        if name in self.hosts:
            raise NetsimError(f"duplicate host name {name!r}")
        host = Host(name, stack, weak_host=weak_host)
        self.hosts[name] = host
        return host

    def add_link(
        self,
        a: Interface,
        b: Interface,
        params: LinkParams | None = None,
        *,
        ab: LinkParams | None = None,
        ba: LinkParams | None = None,
        name: str | None = None,
    ) -> Link:
        """Join interfaces ``a`` and ``b``; ``params`` for both directions unless ``ab``/``ba``
        (a->b, b->a) say otherwise.  The default name is ``"hostA.ifA-hostB.ifB"``."""
        for iface in (a, b):
            if iface.link is not None:
                raise NetsimError(f"interface {iface.label} already has a link")
            if self.hosts.get(iface.host.name) is not iface.host:
                raise NetsimError(f"interface {iface.label} belongs to no host of this sim")
        if a is b:
            raise NetsimError("a link needs two different interfaces")
        name = name or f"{a.label}-{b.label}"
        if name in self.links:
            raise NetsimError(f"duplicate link name {name!r}")
        base = params or LinkParams()
        link = Link(name, a, b, ab or base, ba or base, self._q, self.seed)
        for d, iface in ((link.ab, a), (link.ba, b)):
            iface.link = link
            iface.out = d
            d.sink = partial(self._deliver, d.dst.host)
            d.trace = self._trace
        self.links[name] = link
        return link

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise NetsimError(f"no host {name!r}") from None

    def link(self, name: str) -> Link:
        try:
            return self.links[name]
        except KeyError:
            raise NetsimError(f"no link {name!r}") from None

    def add_trace(self, hook: TraceHook) -> None:
        """Call ``hook(time, link, direction, event, packet)`` for every packet event."""
        self._hooks.append(hook)
        self._set_trace()

    def remove_trace(self, hook: TraceHook) -> None:
        self._hooks.remove(hook)
        self._set_trace()

    def _set_trace(self) -> None:
        self._trace = fan_out(self._hooks)
        for link in self.links.values():
            link.ab.trace = link.ba.trace = self._trace

    # -- fault schedule -----------------------------------------------------------------------

    def schedule(self, at: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` at virtual time ``at`` (after the events already due then).  Stacks
        the callback touched are drained and their timers re-read afterwards."""
        if not at >= self._q.now:
            raise NetsimError(f"cannot schedule at {at!r}: now is {self._q.now}")
        self._q.push(at, self._call, fn, None)

    def flap(self, link: Link, at: float, duration: float, d: Dir | str | None = None) -> None:
        """Take ``link`` (or one direction) down at ``at`` and up again ``duration`` later."""
        dirs = link.directions(d)
        if duration < 0:
            raise NetsimError(f"negative flap duration {duration!r}")

        def down() -> None:
            for x in dirs:
                x.set_up(False)

        def up() -> None:
            for x in dirs:
                x.set_up(True)

        self.schedule(at, down)
        self.schedule(at + duration, up)

    def configure_at(self, at: float, link: Link, d: Dir | str | None = None,
                     **changes: Any) -> None:
        """Change link parameters at ``at`` (validated now, so errors surface early)."""
        dirs = link.directions(d)
        new = [x.params.replace(**changes) for x in dirs]  # validate before scheduling

        def apply() -> None:
            for x in dirs:
                x.configure(**changes)

        del new
        self.schedule(at, apply)

    def add_middlebox(self, link: Link, d: Dir | str, mb: Middlebox,
                      at: float | None = None) -> None:
        """Append ``mb`` to the chain of one direction, now or at time ``at``."""
        direction = link.direction(d)
        if at is None:
            direction.add_middlebox(mb)
        else:
            self.schedule(at, partial(direction.add_middlebox, mb))

    # -- the run loop -------------------------------------------------------------------------

    def run(
        self,
        until: float | Callable[[], bool] | None = None,
        *,
        max_events: int | None = None,
        max_time: float | None = None,
    ) -> RunResult:
        """Advance virtual time.

        ``until``: a time (events due at it are processed, then the clock is set to it), or a
        predicate checked before the first and after every event, or None (run until idle or
        a bound).  Bounds: ``max_events`` events in this run, virtual time ``max_time``
        (defaults: the simulator's).  When idle with a time ``until``, the clock jumps to it.
        """
        q = self._q
        pred: Callable[[], bool] | None = None
        stop_t = math.inf
        if callable(until):
            pred = until
        elif until is not None:
            stop_t = float(until)
            if stop_t < q.now:
                raise NetsimError(f"until={until!r} is in the past (now {q.now})")
        cap_t = self.max_time if max_time is None else max_time
        budget = self.max_events if max_events is None else max_events
        limit = min(stop_t, cap_t)
        self._sync_all()
        if pred is not None and pred():
            return RunResult(StopReason.CONDITION, q.now, 0, self.events)
        heap = q.heap
        n = 0
        while True:
            if not heap:
                reason = StopReason.IDLE
                if stop_t < math.inf:
                    q.now = stop_t
                break
            ev = heap[0]
            t = ev[0]
            if t > limit:
                reason = StopReason.UNTIL if stop_t <= cap_t else StopReason.MAX_TIME
                q.now = max(q.now, limit)
                break
            if n >= budget:
                reason = StopReason.MAX_EVENTS
                break
            heappop(heap)
            q.now = t
            ev[2](ev[3], ev[4])
            n += 1
            if pred is not None and pred():
                reason = StopReason.CONDITION
                break
        self.events += n
        return RunResult(reason, q.now, n, self.events)

    # -- stacks -------------------------------------------------------------------------------

    def poke(self, host: Host) -> None:
        """Drain ``host``'s outbox and re-read its timer now (after calling into its stack
        from outside the simulator; ``run`` and scheduled callbacks do this for all hosts)."""
        self._sync(host)

    def _sync_all(self) -> None:
        for host in self.hosts.values():
            self._sync(host)

    def _sync(self, host: Host) -> None:
        q = self._q
        now = q.now
        stack = host.stack
        out = stack.packets_to_send(now)
        if out:
            by_address = host.by_address
            for pkt in out:
                if type(pkt) is not bytes:  # bytearray/memoryview: hashable slices needed
                    pkt = bytes(pkt)
                n = len(pkt)
                v = pkt[0] >> 4 if n else 0
                if v == 4 and n >= 20:
                    src = pkt[12:16]
                elif v == 6 and n >= 40:
                    src = pkt[8:24]
                else:
                    host.counters["tx_malformed"] += 1
                    continue
                iface = by_address.get(src)
                if host.routes:
                    routed = host.route(pkt[16:20] if v == 4 else pkt[24:40])
                    if routed is not None:
                        iface = routed
                if iface is None:
                    host.counters["tx_no_interface"] += 1
                elif iface.out is None:
                    host.counters["tx_no_link"] += 1
                else:
                    iface.out.offer(pkt)
        t = stack.get_timer()
        if t != host.timer_at:
            host.timer_at = t
            host.timer_gen += 1
            if t is not None:
                q.push(t if t > now else now, self._fire_timer, host, host.timer_gen)

    def _deliver(self, host: Host, pkt: bytes) -> None:
        host.stack.receive(pkt, self._q.now)
        self._sync(host)

    def _fire_timer(self, host: Host, gen: int) -> None:
        if gen != host.timer_gen:
            return  # superseded by a later get_timer() answer
        host.timer_at = None
        now = self._q.now
        t = host.stack.get_timer()
        if t is not None and t <= now:
            host.counters["timers_fired"] += 1
            host.stack.handle_timer(now)
        self._sync(host)

    def _call(self, fn: Callable[[], object], _b: object) -> None:
        fn()
        self._sync_all()

    # -- results ------------------------------------------------------------------------------

    def pending_deliveries(self, d: LinkDirection) -> int:
        """Packets of direction ``d`` on the wire, counted from the event queue itself."""
        arrive = d._arrive
        return sum(1 for ev in self._q.heap if ev[2] == arrive)

    def pending_events(self) -> int:
        return len(self._q)

    def report(self) -> dict[str, Any]:
        """Counters of everything, JSON-ready."""
        mbs: dict[str, dict[str, int]] = {}
        for link in self.links.values():
            for d in (link.ab, link.ba):
                for i, mb in enumerate(d.middleboxes):
                    mbs[f"{link.name}/{d.dir}/{i}:{mb.name}"] = dict(mb.counters)
        return {
            "seed": self.seed,
            "now": self._q.now,
            "events": self.events,
            "links": {name: link.stats() for name, link in self.links.items()},
            "middleboxes": mbs,
            "hosts": {name: dict(h.counters) for name, h in self.hosts.items()},
        }
