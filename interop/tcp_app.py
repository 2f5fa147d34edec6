"""Application drivers for the TCP engine inside ``interop.netsim``: a seeded bulk sender and a
hashing sink, run by :class:`AppHost`.

The simulator drives Sans-IO stacks only (``receive`` / ``packets_to_send`` / ``get_timer`` /
``handle_timer``); an application has to react to what its connections report.
:class:`AppHost` wraps a :class:`~mptcp.tcp.stack.Stack` in that same interface and, after
every call into the stack, lets its applications drain their connections' events
(``TcpConnection.next_event()``, the RFC 9293 §3.9.1 user notifications) and make their calls
(``send`` / ``read`` / ``close``), so what they queue leaves with the same ``packets_to_send``.
Applications may also ask for a timer (e.g. a sender starting at a given virtual time).

- :class:`BulkSender` opens a connection at ``start``, writes ``size`` bytes of seeded
  pseudo-random data (``random.Random(seed).randbytes``, chunk by chunk, so megabytes cost no
  memory up front) as fast as back-pressure allows (``SendBufferFree``), then ``close()``
  (RFC 9293 §3.10.4: FIN after the queued data).
- :class:`Sink` listens, accepts one connection, reads and hashes everything, and closes when
  the peer's FIN arrives (``EofReceived``).

Both keep a :class:`TransferResult`: bytes, sha256, the times of the milestones, and either a
clean close (``ConnectionClosed``) or the failure the engine reported (``ConnectionFailed`` /
``Reset`` with its reason).  Deterministic: no clocks, randomness only from the seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from interop.netsim import Link, LinkParams, Simulator
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.events import (
    Connected,
    ConnectionClosed,
    ConnectionFailed,
    DataReceived,
    EofReceived,
    Reset,
    StateChanged,
)
from mptcp.tcp.stack import Stack
from mptcp.tcp.state import TcpState

__all__ = [
    "App", "AppHost", "BulkSender", "Sink", "Transfer", "TransferResult", "payload_stream",
    "payload_sha256", "payload_prefix_sha256", "setup_transfer", "CLIENT_ADDR", "SERVER_ADDR",
    "SERVER_PORT", "CHUNK",
]

CHUNK = 64 * 1024
"""Bytes generated (and offered to ``send``) at a time."""


def payload_stream(seed: int, size: int) -> Iterable[bytes]:
    """The sender's data: ``size`` seeded pseudo-random bytes, in blocks of :data:`CHUNK`
    (the block size is part of the definition: ``randbytes`` of another length differs)."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def payload_prefix_sha256(seed: int, size: int, n: int) -> str:
    """sha256 of the first ``n`` bytes of the ``size``-byte stream of ``seed``."""
    h = hashlib.sha256()
    left = n
    for piece in payload_stream(seed, size):
        if left <= 0:
            break
        h.update(piece[:left])
        left -= len(piece)
    return h.hexdigest()


def payload_sha256(seed: int, size: int) -> str:
    """sha256 (hex) of :func:`payload_stream` -- what a sink must end up with."""
    h = hashlib.sha256()
    for piece in payload_stream(seed, size):
        h.update(piece)
    return h.hexdigest()


@dataclass
class TransferResult:
    """What one side of a transfer saw (times are virtual seconds, None = never)."""

    role: str
    bytes: int = 0
    sha256: str = hashlib.sha256().hexdigest()
    started_at: float | None = None
    connected_at: float | None = None
    eof_at: float | None = None
    """Sender: all data written and close() called; sink: the peer's FIN arrived."""
    closed_at: float | None = None
    closed_clean: bool = False
    """``ConnectionClosed``: both directions closed by FIN exchange (RFC 9293 §3.6)."""
    failure: str | None = None
    """``"ConnectionFailed: <reason>"`` or ``"Reset: <reason>"`` as reported by the engine."""
    failed_at: float | None = None
    failed_state: str | None = None
    """The state the connection was in just before it failed (from ``StateChanged``)."""

    @property
    def finished(self) -> bool:
        """The connection is over for the application: closed cleanly or failed."""
        return self.closed_clean or self.failure is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class App(Protocol):
    """What :class:`AppHost` runs: ``attach`` once, ``poll`` after every stack call, and an
    optional timer."""

    def attach(self, host: AppHost) -> None: ...

    def poll(self, now: float) -> None: ...

    def timer(self) -> float | None: ...

    def on_timer(self, now: float) -> None: ...


class AppHost:
    """A :class:`Stack` plus applications, presenting the simulator's Sans-IO interface."""

    def __init__(self, stack: Stack, apps: Iterable[App] = ()) -> None:
        self.stack = stack
        self.apps: list[App] = []
        for app in apps:
            self.add(app)

    def add(self, app: App) -> None:
        self.apps.append(app)
        app.attach(self)

    # -- SansIOStack -----------------------------------------------------------------------
    def receive(self, packet: bytes, now: float) -> None:
        self.stack.receive(packet, now)
        self._run(now)

    def packets_to_send(self, now: float) -> list[bytes]:
        out = self.stack.packets_to_send(now)
        # the stack finishes some work here (a handshake completed moves the connection to
        # the accept queue, segments built can report a failure): let apps react, and send
        # what they queue in the same call
        self._run(now)
        more = self.stack.packets_to_send(now)
        if more:
            out.extend(more)
        return out

    def get_timer(self) -> float | None:
        t = self.stack.get_timer()
        for app in self.apps:
            a = app.timer()
            if a is not None and (t is None or a < t):
                t = a
        return t

    def handle_timer(self, now: float) -> None:
        t = self.stack.get_timer()
        if t is not None and t <= now:
            self.stack.handle_timer(now)
        for app in self.apps:
            a = app.timer()
            if a is not None and a <= now:
                app.on_timer(now)
        self._run(now)

    def _run(self, now: float) -> None:
        for app in self.apps:
            app.poll(now)


class _Endpoint:
    """Event handling shared by the sender and the sink."""

    def __init__(self, role: str) -> None:
        self.result = TransferResult(role)
        self.conn: TcpConnection | None = None
        self.host: AppHost | None = None
        self._last_state: TcpState | None = None
        self._hash = hashlib.sha256()

    def timer(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        pass

    def _state_changed(self, ev: StateChanged) -> None:
        self._last_state = ev.old if ev.new is TcpState.CLOSED else ev.new

    def digest(self) -> str:
        """The sha256 of the bytes so far (also stored in ``result.sha256``)."""
        self.result.sha256 = self._hash.hexdigest()
        return self.result.sha256

    def _closed(self, now: float) -> None:
        r = self.result
        r.closed_clean = True
        r.closed_at = now

    def _failed(self, what: str, reason: str, now: float) -> None:
        r = self.result
        if r.failure is None:
            r.failure = f"{what}: {reason}"
            r.failed_at = now
            r.failed_state = self._last_state.value if self._last_state else None
            self.digest()


class BulkSender(_Endpoint):
    """Connect to ``remote`` at ``start`` and send ``size`` seeded bytes, then close."""

    def __init__(
        self, remote: tuple[bytes | str, int], size: int, *, seed: int = 0,
        config: TcpConfig | None = None, start: float = 0.0,
        local: tuple[bytes | str, int] | None = None,
    ) -> None:
        super().__init__("sender")
        if size < 0:
            raise ValueError("size must be >= 0")
        self.remote = remote
        self.local = local
        self.size = size
        self.seed = seed
        self.config = config
        self.start = start
        self._source = iter(payload_stream(seed, size))
        self._pending = memoryview(b"")
        self._written = 0
        self._closing = False

    def attach(self, host: AppHost) -> None:
        self.host = host

    def timer(self) -> float | None:
        return self.start if self.conn is None and self.result.failure is None else None

    def on_timer(self, now: float) -> None:
        if self.conn is not None or self.host is None:
            return
        self.result.started_at = now
        self.conn = self.host.stack.connect(self.remote, local=self.local, config=self.config,
                                            now=now)
        self._last_state = self.conn.state
        self._fill(now)

    def poll(self, now: float) -> None:
        conn = self.conn
        if conn is None:
            return
        r = self.result
        while (ev := conn.next_event()) is not None:
            t = type(ev)
            if t is Connected:
                r.connected_at = now
            elif t is ConnectionClosed:
                self._closed(now)
            elif t is ConnectionFailed or t is Reset:
                self._failed(t.__name__, ev.reason, now)  # type: ignore[attr-defined]
            elif t is StateChanged:
                self._state_changed(ev)  # type: ignore[arg-type]
        if r.failure is None and not self._closing:
            self._fill(now)

    def _fill(self, now: float) -> None:
        conn = self.conn
        assert conn is not None
        r = self.result
        while conn.send_space > 0:
            if not self._pending:
                piece = next(self._source, None)
                if piece is None:
                    break
                self._pending = memoryview(piece)
            n = conn.send(self._pending)
            if n:
                self._hash.update(self._pending[:n])
                self._pending = self._pending[n:]
                self._written += n
                r.bytes = self._written
            if self._pending:
                break
        # close once connected: CLOSE in SYN-SENT would delete the TCB (RFC 9293 §3.10.4)
        if self._written == self.size and not self._pending and not self._closing \
                and conn.state is not TcpState.SYN_SENT:
            self._closing = True
            self.digest()
            r.eof_at = now
            with contextlib.suppress(TcpStateError):  # already failed
                conn.close()


class Sink(_Endpoint):
    """Listen on ``port``, accept one connection, read and hash everything, close on EOF.

    ``pauses``: (start, duration) intervals of virtual time in which the sink reads nothing
    (a slow application: the receive buffer fills, the window closes, the sender probes it,
    RFC 9293 §3.8.6.1); reading resumes at the end of each pause.
    """

    def __init__(self, port: int, *, config: TcpConfig | None = None,
                 read_size: int = -1, pauses: Iterable[tuple[float, float]] = (),
                 keep: bool = False) -> None:
        super().__init__("sink")
        self.data: bytearray | None = bytearray() if keep else None
        """Everything read, in order (only with ``keep``; for tests)."""
        self.port = port
        self.config = config
        self.read_size = read_size
        self.pauses = sorted((float(a), float(a) + float(d)) for a, d in pauses)
        self.data_events = 0
        self._eof = False
        self._closing = False
        self._now = 0.0

    def attach(self, host: AppHost) -> None:
        self.host = host
        host.stack.listen(self.port, self.config)

    def _paused(self, now: float) -> bool:
        return any(a <= now < b for a, b in self.pauses)

    def timer(self) -> float | None:
        # wake up at the end of the pause in progress, to read again
        for a, b in self.pauses:
            if a <= self._now < b:
                return b
        return None

    def on_timer(self, now: float) -> None:
        self._now = now

    def poll(self, now: float) -> None:
        self._now = now
        conn = self.conn
        if conn is None:
            if self.host is None:
                return
            conn = self.conn = self.host.stack.accept(self.port)
            if conn is None:
                return
            self._last_state = conn.state
            self.result.started_at = conn.created
        r = self.result
        while (ev := conn.next_event()) is not None:
            t = type(ev)
            if t is DataReceived:
                self.data_events += 1
            elif t is Connected:
                r.connected_at = now
            elif t is EofReceived:
                self._eof = True
                r.eof_at = now
            elif t is ConnectionClosed:
                self._closed(now)
            elif t is ConnectionFailed or t is Reset:
                self._failed(t.__name__, ev.reason, now)  # type: ignore[attr-defined]
            elif t is StateChanged:
                self._state_changed(ev)  # type: ignore[arg-type]
        if r.failure is not None or self._paused(now):
            return  # (after a clean close what arrived stays readable, as on a socket)
        while conn.readable:
            data = conn.read(self.read_size)
            if not data:
                break
            self._hash.update(data)
            r.bytes += len(data)
            if self.data is not None:
                self.data += data
        if self._eof and not self._closing and conn.at_eof:
            self._closing = True
            self.digest()
            conn.close()


@dataclass
class Transfer:
    """A sender/sink pair (for callers that build both)."""

    sender: BulkSender
    sink: Sink
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.sender.result.finished and self.sink.result.finished

    def results(self) -> tuple[TransferResult, TransferResult]:
        """(sender, sink) results with their hashes brought up to date."""
        self.sender.digest()
        self.sink.digest()
        return self.sender.result, self.sink.result


CLIENT_ADDR = "10.0.0.1"
SERVER_ADDR = "10.0.0.2"
SERVER_PORT = 5001


def setup_transfer(
    sim: Simulator,
    size: int,
    params: LinkParams | None = None,
    *,
    seed: int = 0,
    client_config: TcpConfig | None = None,
    server_config: TcpConfig | None = None,
    ab: LinkParams | None = None,
    ba: LinkParams | None = None,
    start: float = 0.0,
    keep: bool = False,
) -> tuple[Transfer, Link]:
    """Two hosts ``client`` (10.0.0.1) and ``server`` (10.0.0.2) on one link; the client
    sends ``size`` bytes to a sink on the server.  Stacks draw their randomness from
    ``seed``; the data is seeded from ``seed`` too.  ``keep``: the sink keeps the bytes."""
    cstack = Stack([CLIENT_ADDR], random.Random(f"tcp_app/{seed}/client"),
                   config=client_config)
    sstack = Stack([SERVER_ADDR], random.Random(f"tcp_app/{seed}/server"),
                   config=server_config)
    sender = BulkSender((SERVER_ADDR, SERVER_PORT), size, seed=seed, config=client_config,
                        start=start)
    sink = Sink(SERVER_PORT, config=server_config, keep=keep)
    hc = sim.add_host("client", AppHost(cstack, [sender]))
    hs = sim.add_host("server", AppHost(sstack, [sink]))
    link = sim.add_link(hc.add_interface("eth0", CLIENT_ADDR),
                        hs.add_interface("eth0", SERVER_ADDR), params, ab=ab, ba=ba)
    return Transfer(sender, sink), link
