"""Application drivers for the MPTCP engine inside ``interop.netsim``: a host wrapping an
:class:`~mptcp.stack.MptcpStack` and a two-way transfer peer.

:class:`MptcpAppHost` presents the simulator's Sans-IO interface (``receive`` /
``packets_to_send`` / ``get_timer`` / ``handle_timer``) like :class:`interop.tcp_app.AppHost`
and, after every call into the stack, lets its :class:`Peer` drain the connection's events
and make its calls.  A :class:`Peer` connects (client) or accepts one connection (server),
writes ``size`` seeded bytes (:func:`interop.tcp_app.payload_stream`) as back-pressure allows,
then half-closes -- a DATA_FIN after the data, RFC 8684 §3.3.3 -- reads and hashes everything
the peer sends, and calls ``close()`` once both directions are done.  Its :class:`PeerResult`
records bytes and sha256 both ways, the milestones, a clean close (``ConnectionClosed``) or the
failure the engine reported (``Reset`` / ``ConnectionFailed`` with its reason), and the MPTCP
events (``MptcpConnected``, ``FallbackToTcp``, RFC 8684 §3.1 / §3.7).

Deterministic: no clocks, randomness only from the seeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from interop.netsim import Link, LinkParams, Simulator
from interop.tcp_app import payload_stream
from mptcp.connection import MptcpConfig, MptcpConnection
from mptcp.events import FallbackToTcp, MptcpConnected
from mptcp.pm import PathManager
from mptcp.stack import MptcpStack
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpStateError
from mptcp.tcp.events import (
    Connected,
    ConnectionClosed,
    ConnectionFailed,
    DataReceived,
    EofReceived,
    Reset,
    SendBufferFree,
)
from mptcp.tcp.state import TcpState

__all__ = [
    "MptcpApp", "MptcpAppHost", "Peer", "PeerResult", "setup_mptcp_pair", "CLIENT_ADDR",
    "SERVER_ADDR", "SERVER_PORT", "setup_two_path_pair", "CLIENT_ADDR2", "SERVER_ADDR2",
]

CLIENT_ADDR = "10.0.0.1"
SERVER_ADDR = "10.0.0.2"
SERVER_PORT = 5001
CLIENT_ADDR2 = "10.0.1.1"
SERVER_ADDR2 = "10.0.1.2"


class MptcpApp(Protocol):
    """What :class:`MptcpAppHost` runs: ``attach`` once, ``poll`` after every stack call."""

    def attach(self, host: MptcpAppHost) -> None: ...

    def poll(self, now: float) -> None: ...

    def timer(self) -> float | None: ...

    def on_timer(self, now: float) -> None: ...


class MptcpAppHost:
    """An :class:`MptcpStack` plus applications, presenting the simulator's interface."""

    def __init__(self, stack: MptcpStack, apps: Iterable[MptcpApp] = ()) -> None:
        self.stack = stack
        self.apps: list[MptcpApp] = []
        for app in apps:
            self.add(app)

    def add(self, app: MptcpApp) -> None:
        self.apps.append(app)
        app.attach(self)

    def receive(self, packet: bytes, now: float) -> None:
        self.stack.receive(packet, now)
        self._run(now)

    def packets_to_send(self, now: float) -> list[bytes]:
        out = self.stack.packets_to_send(now)
        # the pump may have produced events (accept queue, close, failure): let the apps react
        # and send what they queue in the same call
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


@dataclass
class PeerResult:
    """What one end saw (times are virtual seconds, None = never)."""

    role: str
    sent: int = 0
    sent_sha256: str = hashlib.sha256().hexdigest()
    received: int = 0
    received_sha256: str = hashlib.sha256().hexdigest()
    connected_at: float | None = None
    mptcp: bool | None = None
    """From ``MptcpConnected``: True when the connection runs MPTCP, False when it fell back."""
    fallback: str | None = None
    """The ``FallbackToTcp`` reason, if the connection fell back (RFC 8684 §3.7)."""
    eof_at: float | None = None
    """The peer's DATA_FIN (or FIN, after fallback) arrived in order."""
    closed_at: float | None = None
    closed_clean: bool = False
    failure: str | None = None
    """``"Reset: <reason>"`` or ``"ConnectionFailed: <reason>"`` as the engine reported it."""
    failed_at: float | None = None
    events: list[str] = field(default_factory=list)
    """Type names of every event, in order (DataReceived / SendBufferFree left out)."""

    @property
    def finished(self) -> bool:
        return self.closed_clean or self.failure is not None


class Peer:
    """One end of a two-way transfer (see the module docstring).

    ``connect``: the server address to connect to at ``start`` (client); otherwise listen on
    ``port`` and accept one connection.  ``shutdown_at``: half-close no earlier than this
    virtual time; ``read_from``: read nothing before this virtual time (a slow application).
    ``keep``: keep the received bytes in ``data``.
    """

    def __init__(self, role: str, size: int, *, seed: int = 0,
                 connect: tuple[bytes | str, int] | None = None, port: int = SERVER_PORT,
                 config: TcpConfig | None = None, start: float = 0.0,
                 shutdown_at: float = 0.0, read_from: float = 0.0,
                 keep: bool = False) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.result = PeerResult(role)
        self.size = size
        self.seed = seed
        self.remote = connect
        self.port = port
        self.config = config
        self.start = start
        self.shutdown_at = shutdown_at
        self.read_from = read_from
        self._now = 0.0
        self.data: bytearray | None = bytearray() if keep else None
        self.conn: MptcpConnection | None = None
        self.host: MptcpAppHost | None = None
        self._source = iter(payload_stream(seed, size))
        self._pending = memoryview(b"")
        self._tx = hashlib.sha256()
        self._rx = hashlib.sha256()
        self.write_done = False
        self.close_called = False

    # -- MptcpApp ------------------------------------------------------------------------------
    def attach(self, host: MptcpAppHost) -> None:
        self.host = host
        if self.remote is None:
            host.stack.listen(self.port, self.config)

    def timer(self) -> float | None:
        if self.remote is not None and self.conn is None:
            return self.start
        if self.conn is not None and not self.write_done and self._now < self.shutdown_at \
                and self.result.sent == self.size and not self._pending:
            return self.shutdown_at  # wake up to half-close
        if self.conn is not None and self._now < self.read_from:
            return self.read_from  # wake up to read
        return None

    def on_timer(self, now: float) -> None:
        self._now = now
        if self.conn is None and self.remote is not None and self.host is not None:
            self.conn = self.host.stack.connect(self.remote, config=self.config, now=now)

    def poll(self, now: float) -> None:
        self._now = now
        conn = self.conn
        if conn is None:
            if self.remote is not None or self.host is None:
                return
            conn = self.conn = self.host.stack.accept(self.port)
            if conn is None:
                return
        r = self.result
        while (ev := conn.next_event()) is not None:
            t = type(ev)
            if t is DataReceived or t is SendBufferFree:
                continue
            r.events.append(t.__name__)
            if t is Connected:
                r.connected_at = now
            elif t is MptcpConnected:
                r.mptcp = not ev.fallback  # type: ignore[attr-defined]
            elif t is FallbackToTcp:
                r.fallback = ev.reason  # type: ignore[attr-defined]
            elif t is EofReceived:
                r.eof_at = now
            elif t is ConnectionClosed:
                r.closed_clean = True
                r.closed_at = now
            elif (t is Reset or t is ConnectionFailed) and r.failure is None:
                r.failure = f"{t.__name__}: {ev.reason}"  # type: ignore[attr-defined]
                r.failed_at = now
        if r.failure is not None:
            return
        self._read()
        self._write()
        if self.write_done and conn.at_eof and not conn.readable and not self.close_called \
                and conn.state is not TcpState.CLOSED:
            self.close_called = True
            with contextlib.suppress(TcpStateError):
                conn.close()

    def _read(self) -> None:
        conn = self.conn
        assert conn is not None
        if self._now < self.read_from:
            return  # a slow application: the receive windows close meanwhile
        while conn.readable:
            data = conn.read()
            if not data:
                break
            self._rx.update(data)
            self.result.received += len(data)
            if self.data is not None:
                self.data += data
        self.result.received_sha256 = self._rx.hexdigest()

    def _write(self) -> None:
        conn = self.conn
        assert conn is not None
        r = self.result
        if self.write_done or conn.state in (TcpState.SYN_SENT, TcpState.SYN_RECEIVED):
            return
        while conn.send_space > 0:
            if not self._pending:
                piece = next(self._source, None)
                if piece is None:
                    break
                self._pending = memoryview(piece)
            try:
                n = conn.send(self._pending)
            except TcpStateError:
                return
            if n:
                self._tx.update(self._pending[:n])
                self._pending = self._pending[n:]
                r.sent += n
            if self._pending:
                break
        if r.sent == self.size and not self._pending and self._now >= self.shutdown_at:
            self.write_done = True
            r.sent_sha256 = self._tx.hexdigest()
            with contextlib.suppress(TcpStateError):
                conn.shutdown_write()


def setup_mptcp_pair(
    sim: Simulator,
    size_ab: int,
    size_ba: int = 0,
    params: LinkParams | None = None,
    *,
    seed: int = 0,
    client_mptcp: MptcpConfig | None = None,
    server_mptcp: MptcpConfig | None = None,
    tcp_config: TcpConfig | None = None,
    ab: LinkParams | None = None,
    ba: LinkParams | None = None,
    keep: bool = False,
) -> tuple[Peer, Peer, Link]:
    """Hosts ``client`` (10.0.0.1) and ``server`` (10.0.0.2), each an :class:`MptcpStack`,
    on one link; the client sends ``size_ab`` bytes (seed ``seed``), the server ``size_ba``
    (seed ``seed + 1``).  Returns (client peer, server peer, link)."""
    cstack = MptcpStack([CLIENT_ADDR], random.Random(f"mptcp_app/{seed}/client"),
                        config=tcp_config, mptcp=client_mptcp)
    sstack = MptcpStack([SERVER_ADDR], random.Random(f"mptcp_app/{seed}/server"),
                        config=tcp_config, mptcp=server_mptcp)
    client = Peer("client", size_ab, seed=seed, connect=(SERVER_ADDR, SERVER_PORT), keep=keep)
    server = Peer("server", size_ba, seed=seed + 1, keep=keep)
    hc = sim.add_host("client", MptcpAppHost(cstack, [client]))
    hs = sim.add_host("server", MptcpAppHost(sstack, [server]))
    link = sim.add_link(hc.add_interface("eth0", CLIENT_ADDR),
                        hs.add_interface("eth0", SERVER_ADDR), params, ab=ab, ba=ba)
    return client, server, link


def setup_two_path_pair(
    sim: Simulator,
    size_ab: int,
    size_ba: int = 0,
    *,
    path1: LinkParams | None = None,
    path2: LinkParams | None = None,
    seed: int = 0,
    client_pm: PathManager | None = None,
    server_pm: PathManager | None = None,
    client_mptcp: MptcpConfig | None = None,
    server_mptcp: MptcpConfig | None = None,
    tcp_config: TcpConfig | None = None,
    keep: bool = False,
) -> tuple[Peer, Peer, Link, Link]:
    """Client (10.0.0.1 on eth0, 10.0.1.1 on eth1) and server (10.0.0.2 / 10.0.1.2), two
    links: path 1 joins the 10.0.0.0/24 addresses, path 2 the 10.0.1.0/24 ones (the
    simulator routes by destination, so a subflow 10.0.1.1 -> 10.0.1.2 takes path 2).  The
    client connects to 10.0.0.2; the path managers decide about more subflows."""
    client = Peer("client", size_ab, seed=seed, connect=(SERVER_ADDR, SERVER_PORT), keep=keep)
    server = Peer("server", size_ba, seed=seed + 1, keep=keep)
    _, _, (l1, l2) = setup_multipath_pair(
        sim, [client], [server], paths=(path1, path2), seed=seed, client_pm=client_pm,
        server_pm=server_pm, client_mptcp=client_mptcp, server_mptcp=server_mptcp,
        tcp_config=tcp_config)
    return client, server, l1, l2


def setup_multipath_pair(
    sim: Simulator,
    client_apps: Iterable[MptcpApp],
    server_apps: Iterable[MptcpApp],
    *,
    client_ifaces: tuple[tuple[str, ...], ...] = ((CLIENT_ADDR,), (CLIENT_ADDR2,)),
    server_ifaces: tuple[tuple[str, ...], ...] = ((SERVER_ADDR,), (SERVER_ADDR2,)),
    paths: tuple[LinkParams | None, ...] = (None, None),
    seed: int = 0,
    client_pm: PathManager | None = None,
    server_pm: PathManager | None = None,
    client_mptcp: MptcpConfig | None = None,
    server_mptcp: MptcpConfig | None = None,
    tcp_config: TcpConfig | None = None,
) -> tuple[MptcpAppHost, MptcpAppHost, list[Link]]:
    """Like :func:`setup_two_path_pair` with any applications and addresses: host
    ``client`` gets interface ``eth<i>`` owning ``client_ifaces[i]`` (IPv4 and/or IPv6
    text addresses), ``server`` likewise, and link ``i`` (``paths[i]``) joins the two
    ``eth<i>``; each stack owns all of its host's addresses.  Returns (client host, server
    host, links)."""
    if not len(client_ifaces) == len(server_ifaces) == len(paths):
        raise ValueError("client_ifaces, server_ifaces and paths must have one entry per link")
    caddrs = [a for iface in client_ifaces for a in iface]
    saddrs = [a for iface in server_ifaces for a in iface]
    cstack = MptcpStack(caddrs, random.Random(f"mp2/{seed}/client"), config=tcp_config,
                        mptcp=client_mptcp, pm=client_pm)
    sstack = MptcpStack(saddrs, random.Random(f"mp2/{seed}/server"), config=tcp_config,
                        mptcp=server_mptcp, pm=server_pm)
    ch, sh = MptcpAppHost(cstack, client_apps), MptcpAppHost(sstack, server_apps)
    hc, hs = sim.add_host("client", ch), sim.add_host("server", sh)
    links = [sim.add_link(hc.add_interface(f"eth{i}", *ca), hs.add_interface(f"eth{i}", *sa), p)
             for i, (ca, sa, p) in enumerate(zip(client_ifaces, server_ifaces, paths,
                                                 strict=True))]
    return ch, sh, links
