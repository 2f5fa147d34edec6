"""trio-shaped byte streams over the userspace TCP: :class:`TcpStream`, :func:`open_tcp_stream`,
:func:`serve_tcp` (the shapes of ``trio.SocketStream``, ``trio.open_tcp_stream`` and
``trio.serve_tcp``), on top of a :class:`~mptcp.io.runner.StackRunner`.

Mapping to RFC 9293 §3.10 user calls: ``send_all`` = SEND (§3.10.2) with back-pressure (it
waits for send-buffer space); ``receive_some`` = RECEIVE (§3.10.3), ``b""`` once the peer's
FIN arrived and everything before it was read (§3.10.7.4); ``send_eof`` = half CLOSE of the
sending direction (§3.10.4, ``shutdown_write``); ``aclose`` = CLOSE (§3.10.4): FIN after the
queued data -- or a RST when received data was left unread (RFC 2525 §2.17, like Linux).

trio semantics (trio.abc.SendStream / ReceiveStream / HalfCloseableStream):

- every operation is a checkpoint; two tasks sending (``send_all``,
  ``wait_send_all_might_not_block``, ``send_eof``) or two tasks receiving at once ->
  ``trio.BusyResourceError``;
- after ``aclose`` every operation raises ``trio.ClosedResourceError`` (tasks blocked in the
  stream are woken with it); ``aclose`` is idempotent;
- a peer RST or a connection failure (RFC 9293 §3.10.7, retransmission give-up §3.8.3)
  raises ``trio.BrokenResourceError("<kind>: <reason> (...)")`` chained to the matching
  ``OSError`` (``ConnectionResetError`` ...); data that arrived before it is still returned;
- ``aclose`` is graceful and returns after one checkpoint, like ``trio.SocketStream``: the
  FIN exchange goes on in the runner.  Cancelling ``aclose`` (``trio.aclose_forcefully``)
  still closes -- the close was issued before the checkpoint; a connection whose close cannot
  finish (a peer that never reads or never sends its FIN) is aborted with a RST after the
  runner's ``linger`` seconds;
- a cancelled ``receive_some`` consumed nothing; a cancelled ``send_all`` may have queued a
  prefix of its data (trio documents the stream state as unknown after that): the prefix is
  delivered in order and the stream stays usable, as with ``trio.SocketStream``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import operator
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

from mptcp.io.runner import ConnHandle, ListenHandle, StackRunner, failure_error
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.connection import TcpConnection, TcpStateError
from mptcp.tcp.stack import StackError
from mptcp.tcp.state import CAN_SEND, TcpState

__all__ = ["TcpStream", "open_tcp_stream", "serve_tcp", "open_mptcp_stream", "serve_mptcp"]

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint


class TcpStream(trio.abc.HalfCloseableStream):
    """A trio stream over one :class:`~mptcp.tcp.connection.TcpConnection` driven by a
    :class:`~mptcp.io.runner.StackRunner` (build with :func:`open_tcp_stream`, from
    :func:`serve_tcp`, or around a handle from ``runner.connect`` / a listener)."""

    def __init__(self, handle: ConnHandle) -> None:
        self._h = handle
        self._conn = handle.conn
        self._runner = handle.runner
        self._closed = False
        self._eof_sent = False
        self._sending = False
        self._receiving = False

    # ------------------------------------------------------------------ introspection -------
    @property
    def connection(self) -> TcpConnection:
        return self._conn

    @property
    def handle(self) -> ConnHandle:
        return self._h

    @property
    def local(self) -> tuple[str, int]:
        addr, port = self._conn.local
        return str(ipaddress.ip_address(addr)), port

    @property
    def remote(self) -> tuple[str, int]:
        addr, port = self._conn.remote
        return str(ipaddress.ip_address(addr)), port

    @property
    def mptcp_info(self) -> dict[str, object] | None:
        """For an MPTCP connection (RFC 6897 §5-style introspection): state, whether MPTCP
        is in use or the fallback reason, checksums, tokens, data-level sequence numbers,
        subflows and the stack's MPTCP counters; None for plain TCP streams."""
        conn = self._conn
        from mptcp.connection import MptcpConnection

        if not isinstance(conn, MptcpConnection):
            return None
        out = conn.info()
        out["counters"] = conn.mib.nonzero()
        return out

    def info(self) -> dict[str, object]:
        """The connection's ``info()`` plus what the stream saw."""
        out = self._conn.info()
        out.update(local=self.local, remote=self.remote, eof=self._h.eof,
                   failure=self._h.failure, closed=self._closed)
        return out

    # ------------------------------------------------------------------ sending -------------
    def _check_send(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("stream closed")
        if self._eof_sent:
            raise trio.ClosedResourceError("send_eof() was called")
        self._check_broken()
        conn = self._conn
        if conn.write_shut or conn.state not in CAN_SEND:
            raise trio.BrokenResourceError(f"connection {conn.state.value}")

    def _check_broken(self) -> None:
        h = self._h
        if h.failure is not None:
            err = failure_error(h)
            raise trio.BrokenResourceError(err.strerror) from err
        if not self._runner.running:
            raise trio.BrokenResourceError("runner stopped")

    def _enter_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._enter_send()
        h = self._h
        try:
            await _checkpoint_if_cancelled()
            self._check_send()
            view = memoryview(data)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            conn = self._conn
            runner = self._runner
            low = max(1, conn.config.send_buffer // 4)
            parked = False
            while True:
                try:
                    n = conn.send(view)
                except TcpStateError as e:
                    self._check_send()
                    raise trio.BrokenResourceError(str(e)) from e
                if n:
                    runner.poke()
                    if n == len(view):
                        break
                    view = view[n:]
                elif not view:
                    break
                # back-pressure: wait until a useful amount of space is free
                h.send_need = min(len(view), low)
                while conn.send_space < h.send_need:
                    await h.send_lot.park()
                    parked = True
                    self._check_send()
            if not parked:
                await _shielded_checkpoint()
        finally:
            h.send_need = 0
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        self._enter_send()
        h = self._h
        try:
            await _checkpoint_if_cancelled()
            self._check_send()
            if self._conn.send_space > 0:
                await _shielded_checkpoint()
                return
            h.send_need = 1
            while self._conn.send_space <= 0:
                await h.send_lot.park()
                self._check_send()
        finally:
            h.send_need = 0
            self._sending = False

    async def send_eof(self) -> None:
        self._enter_send()
        try:
            await _checkpoint_if_cancelled()
            if self._closed:
                raise trio.ClosedResourceError("stream closed")
            if not self._eof_sent:
                self._eof_sent = True
                conn = self._conn
                if conn.state is not TcpState.CLOSED:
                    with contextlib.suppress(TcpStateError):  # (failed meanwhile)
                        conn.shutdown_write()
                    self._runner.poke()
            await _shielded_checkpoint()
        finally:
            self._sending = False

    # ------------------------------------------------------------------ receiving -----------
    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        h = self._h
        try:
            await _checkpoint_if_cancelled()
            conn = self._conn
            parked = False
            while True:
                if self._closed:
                    raise trio.ClosedResourceError("stream closed")
                if conn.readable:
                    data = conn.read(-1 if max_bytes is None else max_bytes)
                    if data:
                        if conn.ack_now:  # the read opened the window: update it now
                            self._runner.poke()
                        break
                if conn.at_eof:
                    data = b""
                    break
                self._check_broken()
                if conn.state is TcpState.CLOSED:
                    data = b""
                    break
                h.recv_wait = True
                await h.recv_lot.park()
                parked = True
            if not parked:
                await _shielded_checkpoint()
            return data
        finally:
            h.recv_wait = False
            self._receiving = False

    # ------------------------------------------------------------------ closing -------------
    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            h = self._h
            conn = self._conn
            if conn.state is not TcpState.CLOSED:
                conn.close()  # FIN after queued data; RST if data was left unread
                self._runner.orphan(h)
                self._runner.poke()
            h.wake()
        await trio.lowlevel.checkpoint()

    def abort(self) -> None:
        """Reset the connection (RFC 9293 §3.10.5 ABORT) and close the stream."""
        self._closed = True
        self._conn.abort()
        self._h.wake()
        self._runner.poke()

    def __repr__(self) -> str:
        return f"<TcpStream {self._h.name()} {self._conn.state.value} closed={self._closed}>"


async def open_tcp_stream(host: str | bytes, port: int, *, stack: StackRunner,
                          local: tuple[str | bytes, int] | None = None,
                          config: TcpConfig | None = None) -> TcpStream:
    """Connect to ``(host, port)`` (an address literal: no name resolution) and return the
    stream once ESTABLISHED.  Failures raise ``OSError`` subclasses with the engine's reason:
    ``ConnectionRefusedError`` (RST to our SYN), ``TimeoutError`` (SYN retries exhausted,
    RFC 9293 §3.8.3), ``ConnectionResetError``; bad addresses raise ``OSError`` too.
    Cancelled while connecting: the connection is aborted."""
    try:
        h = stack.connect((host, port), local=local, config=config)
    except (StackError, TcpStateError) as e:
        raise OSError(f"cannot connect to {host!r}:{port}: {e}") from e
    try:
        await h.wait_connected()
    except BaseException:
        h.conn.abort()
        stack.poke()
        raise
    return TcpStream(h)


Handler = Callable[[TcpStream], Awaitable[object]]


async def serve_tcp(handler: Handler, port: int, *, stack: StackRunner,
                    host: str | bytes | None = None, config: TcpConfig | None = None,
                    handler_nursery: trio.Nursery | None = None, backlog: int = 128,
                    task_status: trio.TaskStatus[ListenHandle] = trio.TASK_STATUS_IGNORED,
                    ) -> NoReturn:
    """Listen on ``port`` (``host``: one local address, default all) and run
    ``handler(stream)`` in a new task for each connection, like ``trio.serve_tcp``; the
    stream is closed (``aclose_forcefully``) when the handler returns.  Runs until
    cancelled; ``task_status.started(listener)`` once listening (``listener.port``)."""
    if port == 0:
        port = _free_port(stack)
    try:
        lh = stack.listen(port, config, backlog=backlog, address=host)
    except StackError as e:
        raise OSError(f"cannot listen on port {port}: {e}") from e
    try:
        async with trio.open_nursery() as nursery:
            target = handler_nursery if handler_nursery is not None else nursery
            task_status.started(lh)
            while True:
                h = await lh.accept()
                target.start_soon(_run_handler, handler, TcpStream(h))
    finally:
        stack.unlisten(lh)


async def _run_handler(handler: Handler, stream: TcpStream) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


def _free_port(runner: StackRunner) -> int:
    st = runner.stack
    used = {p for _, p in st.listeners} | set(runner.claimed_ports())
    for _ in range(1000):
        port = st.rng.randint(32768, 60999)
        if port not in used:
            return port
    raise OSError("no free port to listen on")


def _require_mptcp(stack: StackRunner) -> None:
    from mptcp.stack import MptcpStack

    if not isinstance(stack.stack, MptcpStack):
        raise TypeError("MPTCP streams need a StackRunner over an mptcp.stack.MptcpStack")


async def open_mptcp_stream(host: str | bytes, port: int, *, stack: StackRunner,
                            local: tuple[str | bytes, int] | None = None,
                            config: TcpConfig | None = None) -> TcpStream:
    """:func:`open_tcp_stream` for an MPTCP host (RFC 8684 §3.1 MP_CAPABLE; falls back to
    TCP as §3.7 says -- ``stream.mptcp_info["fallback"]`` tells)."""
    _require_mptcp(stack)
    return await open_tcp_stream(host, port, stack=stack, local=local, config=config)


async def serve_mptcp(handler: Handler, port: int, *, stack: StackRunner,
                      host: str | bytes | None = None, config: TcpConfig | None = None,
                      handler_nursery: trio.Nursery | None = None, backlog: int = 128,
                      task_status: trio.TaskStatus[ListenHandle] = trio.TASK_STATUS_IGNORED,
                      ) -> NoReturn:
    """:func:`serve_tcp` for an MPTCP host: every accepted stream is MPTCP (or a TCP
    fallback for a client that did not offer MP_CAPABLE)."""
    _require_mptcp(stack)
    await serve_tcp(handler, port, stack=stack, host=host, config=config,
                    handler_nursery=handler_nursery, backlog=backlog, task_status=task_status)
