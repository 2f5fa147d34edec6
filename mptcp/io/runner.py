"""The trio loop that drives a Sans-IO :class:`~mptcp.tcp.stack.Stack` over a packet driver.

:class:`StackRunner` is the only code that calls the stack's Sans-IO methods (DESIGN.md "I/O",
"The Sans-IO contract").  One loop iteration:

1. ``now = clock()``; the driver's delay lines (``driver.poll``) when due; queued sends
   (``driver.flush``) when some are pending;
2. ``driver.recv_batch(now)`` repeatedly until it returns ``[]`` -- read until EAGAIN
   (DESIGN.md: waiting for readability before every read costs 2.6x) -- and
   ``stack.receive(packet, now, csum_ok)`` for each packet (bounded by ``rx_budget`` packets
   per iteration so ACKs keep flowing under a flood; the descriptor stays readable then);
3. ``stack.handle_timer(now)`` when the stack's earliest deadline is due (RFC 6298 RTO,
   RFC 9293 §3.8.6.1 persist, §3.8.6.3 delayed ACK, §3.6.1 TIME-WAIT ...); connections whose
   stream was closed and that outlived ``linger`` are aborted (RFC 9293 §3.10.5);
4. ``driver.send_batch(now, stack.packets_to_send_gso(now))``;
5. dispatch: drain the events of the connections the application watches
   (``TcpConnection.next_event()``, the RFC 9293 §3.9.1 user notifications), record what the
   stream API needs and wake the tasks waiting on them; hand connections that listeners
   completed (``stack.accept``) to the accepting tasks;
6. wait -- one trio checkpoint -- until the descriptor is readable, the earliest stack or
   driver deadline, or an application call :meth:`StackRunner.poke`s the loop (the poke
   cancels the wait's cancel scope, which costs one reschedule).

The dispatch looks at every watched connection once per iteration (a deque check, plus a
condition check for those with waiting tasks): O(watched connections), negligible for the
handful a lab run has.

While the driver holds packets the kernel refused (``driver.pending()``), a helper task waits
for writability (``trio.lowlevel.wait_writable``) and pokes the loop, which flushes.

Port claims: the runner calls ``driver.bind_port`` when the stack listens on a port or a
connection gets a local port (right after ``stack.connect``, before its SYN can leave) and
``driver.unbind_port`` when the last user of the port is gone (a raw-socket driver keeps the
kernel's TCP away from claimed ports).

Ownership: the runner does not close the driver nor the stack's connections -- whoever made
the driver closes it (usually after the runner stopped).  When the runner stops it releases
its port claims and wakes every waiting task; later operations on its streams raise
``trio.BrokenResourceError("runner stopped")``.
"""

from __future__ import annotations

import errno
import math
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, fields
from ipaddress import ip_address
from types import TracebackType
from typing import Any, NoReturn, Protocol

import trio

from mptcp.io.driver import Driver
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection
from mptcp.tcp.events import (
    Connected,
    ConnectionClosed,
    ConnectionFailed,
    DataReceived,
    EofReceived,
    Event,
    Reset,
    SendBufferFree,
)
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import TcpState

__all__ = ["StackRunner", "ConnHandle", "ListenHandle", "RunnerStats", "Tracer"]

_CLOSED = TcpState.CLOSED
_FINISHED = frozenset({TcpState.CLOSED, TcpState.TIME_WAIT})


class Tracer(Protocol):
    """Anything that records protocol events (e.g. a JSON-lines event log)."""

    def event(self, now: float, name: str, **fields: Any) -> None: ...


@dataclass(slots=True)
class RunnerStats:
    """Loop counters (for profiles and tests)."""

    iterations: int = 0
    packets_in: int = 0
    packets_out: int = 0
    timer_fires: int = 0
    """Iterations in which the stack's timer was due."""
    wakeups: int = 0
    """Application tasks woken by the dispatch."""
    pokes: int = 0
    """Waits interrupted by :meth:`StackRunner.poke`."""
    write_waits: int = 0
    """Times the driver had to wait for writability (pending sends)."""
    orphans_aborted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ConnHandle:
    """What the runner knows about one connection on behalf of the application: the
    notifications it got and the tasks waiting for them.  Made by :meth:`StackRunner.connect`,
    :meth:`StackRunner.watch` or a listener; the stream API wraps one."""

    __slots__ = (
        "closed",
        "conn",
        "connected",
        "eof",
        "failure",
        "failure_kind",
        "label",
        "recv_lot",
        "recv_wait",
        "released",
        "runner",
        "send_lot",
        "send_need",
    )

    def __init__(self, runner: StackRunner, conn: TcpConnection) -> None:
        self.conn = conn
        self.runner = runner
        self.send_lot = trio.lowlevel.ParkingLot()
        """Tasks waiting for send space, the handshake, or a failure."""
        self.recv_lot = trio.lowlevel.ParkingLot()
        """Tasks waiting for data, EOF, or a failure."""
        self.connected = False
        self.eof = False
        """EofReceived: the peer's FIN arrived in order."""
        self.closed = False
        """ConnectionClosed: both directions closed cleanly."""
        self.failure: str | None = None
        """The reason of Reset / ConnectionFailed ("connection reset", "refused", ...)."""
        self.failure_kind: str | None = None
        """"Reset" or "ConnectionFailed"."""
        self.send_need = 0
        """Send space (bytes) that wakes the send waiters; 0 = nobody waits for space."""
        self.recv_wait = False
        self.released = False
        """The connection is CLOSED and no longer watched (its port claim is released)."""
        self.label = ""

    def name(self) -> str:
        """"laddr:lport-raddr:rport" (for traces and messages)."""
        if not self.label:
            c = self.conn
            self.label = (f"{ip_address(c.local[0])}:{c.local[1]}-"
                          f"{ip_address(c.remote[0])}:{c.remote[1]}")
        return self.label

    async def wait_connected(self) -> None:
        """Until the handshake completed; raises the failure as an ``OSError`` subclass
        (``ConnectionRefusedError``, ``TimeoutError``, ``ConnectionResetError`` ...)."""
        while not self.connected:
            if self.failure is not None:
                raise failure_error(self)
            if self.released or self.conn.state is _CLOSED:
                raise ConnectionAbortedError("connection closed before it was established")
            if not self.runner.running:
                raise ConnectionAbortedError("the stack runner stopped")
            await self.send_lot.park()
        await trio.lowlevel.checkpoint_if_cancelled()

    def wake(self) -> int:
        """Wake every waiting task (they re-check their conditions)."""
        return len(self.send_lot.unpark_all()) + len(self.recv_lot.unpark_all())

    def __repr__(self) -> str:
        return f"<ConnHandle {self.name()} {self.conn.state.value} failure={self.failure!r}>"


def failure_error(h: ConnHandle) -> OSError:
    """The ``OSError`` subclass a connection failure corresponds to (like the socket API)."""
    reason = h.failure or "closed"
    msg = f"{h.failure_kind or 'closed'}: {reason} ({h.name()})"
    if reason == "refused":
        return ConnectionRefusedError(errno.ECONNREFUSED, msg)
    if "timeout" in reason:
        return TimeoutError(errno.ETIMEDOUT, msg)
    if reason == "aborted":
        return ConnectionAbortedError(errno.ECONNABORTED, msg)
    if h.failure_kind == "Reset":
        return ConnectionResetError(errno.ECONNRESET, msg)
    return OSError(errno.EIO, msg)


class ListenHandle:
    """A listener of the runner's stack: connections it completed wait in ``queue`` until a
    task :meth:`accept`s them."""

    def __init__(self, runner: StackRunner, port: int, address: bytes | str | None) -> None:
        self.runner = runner
        self.port = port
        self.address = address
        self.queue: deque[ConnHandle] = deque()
        self.lot = trio.lowlevel.ParkingLot()
        self.closed = False

    async def accept(self) -> ConnHandle:
        """The next established connection."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.queue:
            if self.closed:
                raise trio.ClosedResourceError("listener closed")
            if not self.runner.running:
                raise trio.BrokenResourceError("runner stopped")
            await self.lot.park()
        return self.queue.popleft()

    def close(self) -> None:
        self.runner.unlisten(self)

    def __repr__(self) -> str:
        return f"<ListenHandle port={self.port} queued={len(self.queue)} closed={self.closed}>"


class StackRunner:
    """Runs ``stack`` over ``driver`` in a trio task (see the module docstring).

    ``async with StackRunner(stack, driver) as runner:`` starts the loop in a nursery of its
    own and stops it on exit; or ``await nursery.start(runner.run)`` in the caller's nursery
    and :meth:`stop` it.  ``clock`` (default ``trio.current_time``, so trio's ``MockClock``
    makes timers deterministic) gives the ``now`` passed to the stack.  ``tracer`` gets
    ``event(now, name, conn=..., **fields)`` for every event of a watched connection.
    ``linger``: seconds a closed stream's connection may take to finish its FIN exchange
    before it is aborted (Linux's ``tcp_fin_timeout`` for orphans).
    """

    def __init__(self, stack: Stack, driver: Driver, *, clock: Callable[[], float] | None = None,
                 tracer: Tracer | None = None, rx_budget: int = 4096,
                 linger: float = 60.0) -> None:
        self.stack = stack
        self.driver = driver
        self._clock: Callable[[], float] = clock if clock is not None else trio.current_time
        self._trio_clock = clock is None or clock is trio.current_time
        self.tracer = tracer
        self.rx_budget = max(1, rx_budget)
        self.linger = linger
        self.stats = RunnerStats()
        self.handles: dict[TcpConnection, ConnHandle] = {}
        self.listeners: list[ListenHandle] = []
        self._orphans: dict[ConnHandle, float] = {}
        self._claims: dict[int, int] = {}
        self._bound: set[int] = set()
        self._flush_stalled = False
        self._wait_scope: trio.CancelScope | None = None
        self._run_scope: trio.CancelScope | None = None
        self._running = False
        self._flush_armed = False
        self._flush_lot = trio.lowlevel.ParkingLot()
        self._exit_stack: AsyncExitStack | None = None

    # ------------------------------------------------------------------ lifecycle ----------
    @property
    def running(self) -> bool:
        return self._running

    def now(self) -> float:
        return self._clock()

    async def __aenter__(self) -> StackRunner:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self.run)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        # The body's exception is not passed to the nursery (it would come out wrapped in an
        # ExceptionGroup); the loop's own failure, if any, still comes out of the nursery.
        self.stop()
        stack, self._exit_stack = self._exit_stack, None
        if stack is not None:
            try:
                await stack.__aexit__(None, None, None)
            except BaseExceptionGroup as eg:
                _raise_single(eg)
        return None

    def stop(self) -> None:
        """Stop the loop (``run`` returns after its cleanup)."""
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """The loop; returns when :meth:`stop` is called (or raises what the stack or the
        driver raised)."""
        if self._running:
            raise RuntimeError("this StackRunner is already running")
        self._running = True
        try:
            for port in self._claims:  # a restart: claims made while stopped
                if port not in self._bound:
                    self._bound.add(port)
                    self.driver.bind_port(port)
            with trio.CancelScope() as scope:
                self._run_scope = scope
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._flusher)
                        task_status.started()
                        try:
                            await self._loop()
                        finally:
                            nursery.cancel_scope.cancel()
                except BaseExceptionGroup as eg:
                    _raise_single(eg)
        finally:
            self._run_scope = None
            self._wait_scope = None
            self._running = False
            self._cleanup()

    def _cleanup(self) -> None:
        for port in sorted(self._bound):
            self.driver.unbind_port(port)
        self._bound.clear()
        for h in self.handles.values():
            h.wake()
        for lh in self.listeners:
            lh.lot.unpark_all()

    # ------------------------------------------------------------------ application side ---
    def poke(self) -> None:
        """Something the loop must act on happened (an application call): end its wait."""
        scope = self._wait_scope
        if scope is not None:
            self._wait_scope = None
            scope.cancel()
            self.stats.pokes += 1

    def connect(self, remote: tuple[bytes | str, int], *,
                local: tuple[bytes | str, int] | None = None,
                config: TcpConfig | None = None) -> ConnHandle:
        """Active open: ``stack.connect`` now, the port claimed before the SYN leaves."""
        conn = self.stack.connect(remote, local=local, config=config, now=self._clock())
        h = self.watch(conn)
        self.poke()
        return h

    def watch(self, conn: TcpConnection) -> ConnHandle:
        """Start dispatching ``conn``'s events (and claim its local port)."""
        h = self.handles.get(conn)
        if h is None:
            h = self.handles[conn] = ConnHandle(self, conn)
            self._claim(conn.local[1])
        return h

    def listen(self, port: int, config: TcpConfig | None = None, *, backlog: int = 128,
               address: bytes | str | None = None) -> ListenHandle:
        """Passive open on ``port`` (``stack.listen``), port claimed."""
        self.stack.listen(port, config, backlog=backlog, address=address)
        lh = ListenHandle(self, port, address)
        self.listeners.append(lh)
        self._claim(port)
        return lh

    def unlisten(self, lh: ListenHandle) -> None:
        """Stop listening; connections completed but not accepted are aborted."""
        if lh.closed:
            return
        lh.closed = True
        self.stack.unlisten(lh.port, lh.address)
        if lh in self.listeners:
            self.listeners.remove(lh)
        while lh.queue:
            lh.queue.popleft().conn.abort()
        lh.lot.unpark_all()
        self._unclaim(lh.port)
        self.poke()

    def orphan(self, h: ConnHandle) -> None:
        """The application closed ``h``: abort it if its close has not finished (TIME-WAIT
        or CLOSED) within ``linger`` seconds."""
        if not h.released and h.conn.state not in _FINISHED:
            self._orphans[h] = self._clock() + self.linger

    def _claim(self, port: int) -> None:
        self._claims[port] = self._claims.get(port, 0) + 1
        if port not in self._bound:
            self._bound.add(port)
            self.driver.bind_port(port)

    def _unclaim(self, port: int) -> None:
        n = self._claims.get(port, 0)
        if n > 1:
            self._claims[port] = n - 1
            return
        self._claims.pop(port, None)
        if port in self._bound:
            self._bound.discard(port)
            self.driver.unbind_port(port)

    def claimed_ports(self) -> dict[int, int]:
        """Port -> number of users (listeners and connections)."""
        return dict(self._claims)

    # ------------------------------------------------------------------ the loop -----------
    async def _loop(self) -> None:
        stack = self.stack
        driver = self.driver
        clock = self._clock
        trio_clock = self._trio_clock
        fd = driver.fileno()
        recv_batch = driver.recv_batch
        receive = stack.receive
        send_batch = driver.send_batch
        to_send = stack.packets_to_send_gso
        get_timer = stack.get_timer
        driver_timer = driver.get_timer
        pending = driver.pending
        wait_readable = trio.lowlevel.wait_readable
        budget = self.rx_budget
        st = self.stats
        inf = math.inf
        while True:
            now = clock()
            st.iterations += 1
            dt = driver_timer()
            if dt is not None and dt <= now:
                driver.poll(now)
            if pending():
                before = pending()
                driver.flush(now)
                self._flush_stalled = pending() >= before
            n = 0
            while n < budget:
                batch = recv_batch(now, 64)
                if not batch:
                    break
                n += len(batch)
                for pkt, ok in batch:
                    receive(pkt, now, ok)
            if n:
                st.packets_in += n
                now = clock()
            t = get_timer()
            if t is not None and t <= now:
                stack.handle_timer(now)
                st.timer_fires += 1
            if self._orphans:
                self._reap(now)
            out = to_send(now)
            if out:
                st.packets_out += len(out)
                send_batch(now, out)
            if not self._flush_armed and pending():
                self._flush_armed = True
                st.write_waits += 1
                self._flush_lot.unpark()
            if self.handles or self.listeners:
                self._dispatch(now)
            # -- wait: readable, a deadline, or a poke (one checkpoint) --
            deadline = get_timer()
            dt = driver_timer()
            if dt is not None and (deadline is None or dt < deadline):
                deadline = dt
            if self._orphans:
                o = min(self._orphans.values())
                if deadline is None or o < deadline:
                    deadline = o
            if deadline is None:
                wake_at = inf
            elif trio_clock:
                wake_at = deadline
            else:
                wake_at = trio.current_time() + (deadline - now)
            scope = trio.CancelScope(deadline=wake_at)
            self._wait_scope = scope
            with scope:
                await wait_readable(fd)
            self._wait_scope = None

    async def _flusher(self) -> None:
        """Waits for writability while the driver holds refused packets, then pokes.  A
        device that is writable but still refuses (ENOBUFS) gets a growing pause instead of
        a busy loop."""
        fd = self.driver.fileno()
        backoff = 0.0
        while True:
            while not self._flush_armed:
                await self._flush_lot.park()
            if self._flush_stalled:
                backoff = min(0.05, backoff * 2 or 0.001)
                await trio.sleep(backoff)
            else:
                backoff = 0.0
            await trio.lowlevel.wait_writable(fd)
            self._flush_armed = False
            self.poke()

    def _dispatch(self, now: float) -> None:
        """Drain the watched connections' events and wake the tasks they concern; hand
        completed connections to listeners."""
        tracer = self.tracer
        woken = 0
        gone: list[ConnHandle] | None = None
        for conn, h in self.handles.items():
            events = conn.events
            wake_send = wake_recv = False
            if events:
                while events:
                    ev = events.popleft()
                    t = type(ev)
                    if t is DataReceived or t is EofReceived:
                        wake_recv = True
                        if t is EofReceived:
                            h.eof = True
                    elif t is SendBufferFree:
                        wake_send = True
                    elif t is Connected:
                        h.connected = True
                        wake_send = wake_recv = True
                    elif t is ConnectionClosed:
                        h.closed = True
                        wake_send = wake_recv = True
                    elif t is Reset or t is ConnectionFailed:
                        if h.failure is None:
                            h.failure = ev.reason  # type: ignore[attr-defined]
                            h.failure_kind = t.__name__
                        wake_send = wake_recv = True
                    if tracer is not None:
                        tracer.event(now, t.__name__, conn=h.name(), **_fields(ev))
            if conn.state is _CLOSED:
                wake_send = wake_recv = True
                if gone is None:
                    gone = []
                gone.append(h)
            if h.send_lot and (wake_send or (h.send_need and conn.send_space >= h.send_need)):
                woken += len(h.send_lot.unpark_all())
            if h.recv_lot and (wake_recv or (h.recv_wait and conn.readable)):
                woken += len(h.recv_lot.unpark_all())
        if gone is not None:
            for h in gone:
                self._release(h)
        if self.listeners:
            woken += self._accept_all()
        self.stats.wakeups += woken

    def _release(self, h: ConnHandle) -> None:
        del self.handles[h.conn]
        h.released = True
        self._orphans.pop(h, None)
        self._unclaim(h.conn.local[1])

    def _accept_all(self) -> int:
        woken = 0
        accept = self.stack.accept
        for lh in self.listeners:
            while (conn := accept(lh.port)) is not None:
                h = self.watch(conn)
                # the handshake events came before the handle existed
                events = conn.events
                while events:
                    ev = events.popleft()
                    t = type(ev)
                    if t is Connected:
                        h.connected = True
                    elif t is EofReceived:
                        h.eof = True
                    elif t is ConnectionClosed:
                        h.closed = True
                    elif (t is Reset or t is ConnectionFailed) and h.failure is None:
                        h.failure = ev.reason  # type: ignore[attr-defined]
                        h.failure_kind = t.__name__
                    if self.tracer is not None:
                        self.tracer.event(self._clock(), t.__name__, conn=h.name(),
                                          **_fields(ev))
                h.connected = True  # accept() only hands out established connections
                lh.queue.append(h)
            if lh.queue and lh.lot:
                woken += len(lh.lot.unpark_all())
        return woken

    def _reap(self, now: float) -> None:
        for h, deadline in list(self._orphans.items()):
            st = h.conn.state
            if st in _FINISHED:
                del self._orphans[h]
            elif deadline <= now:
                del self._orphans[h]
                h.conn.abort()
                self.stats.orphans_aborted += 1

    def __repr__(self) -> str:
        return (f"<StackRunner running={self._running} conns={len(self.handles)} "
                f"listeners={len(self.listeners)} {self.stats}>")


def _raise_single(eg: BaseExceptionGroup[BaseException]) -> NoReturn:
    """A nursery of the runner failed with one exception: raise it as itself (the loop's
    own error, e.g. a ``DriverError``), not wrapped in a group."""
    if len(eg.exceptions) == 1:
        exc = eg.exceptions[0]
        if isinstance(exc, BaseExceptionGroup):
            _raise_single(exc)
        raise exc
    raise eg


def _fields(ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(ev):
        v = getattr(ev, f.name)
        out[f.name] = getattr(v, "value", v)
    return out
