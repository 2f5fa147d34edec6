"""The trio stream API over the userspace TCP (mptcp.io.stream), two Stacks on a MemoryLink.

trio's own generic stream suite (``trio.testing.check_half_closeable_stream``: send_all /
receive_some, send_eof, aclose, cancellation, BusyResourceError, wait_send_all_might_not_block
on a clogged stream) plus explicit transfers, half-close, resets, refused connects.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from mptcp.io.memory import MemoryDriver, MemoryLink
from mptcp.io.runner import StackRunner
from mptcp.io.stream import TcpStream, open_tcp_stream, serve_tcp
from mptcp.tcp.config import TcpConfig
from mptcp.tcp.stack import Stack

A, B = "10.0.0.1", "10.0.0.2"
SMALL = TcpConfig(mss=1036, send_buffer=8192, recv_buffer=8192)
"""Clogging config: 1024 payload bytes per segment (timestamps take 12), 8 segments fill the
receive window exactly."""


@asynccontextmanager
async def runners(mtu: int = 1500, config: TcpConfig | None = None,
                  **kw: Any) -> AsyncIterator[tuple[StackRunner, StackRunner]]:
    """Two stacks (A = 10.0.0.1, B = 10.0.0.2) joined by a MemoryLink, each with a runner."""
    da, db = MemoryLink.pair(mtu)
    try:
        sa = Stack([A], random.Random(1), config=config)
        sb = Stack([B], random.Random(2), config=config)
        async with StackRunner(sa, da, **kw) as ra, StackRunner(sb, db, **kw) as rb:
            yield ra, rb
    finally:
        da.close()
        db.close()


async def connect_pair(ra: StackRunner, rb: StackRunner, port: int,
                       config: TcpConfig | None = None) -> tuple[TcpStream, TcpStream]:
    """(client stream on A, server stream on B) of one new connection."""
    lh = rb.listen(port, config)
    try:
        client = await open_tcp_stream(B, port, stack=ra, config=config)
        server = TcpStream(await lh.accept())
    finally:
        rb.unlisten(lh)
    return client, server


async def clog(*streams: TcpStream) -> None:
    """Fill each stream's send buffer and its peer's receive window (nobody reads)."""
    while True:
        for st in streams:
            conn = st.connection
            while conn.send_space:
                conn.send(bytes(conn.send_space))
                st.handle.runner.poke()
        await trio.testing.wait_all_tasks_blocked()
        if all(st.connection.send_space == 0 and st.connection.snd_wnd == 0
               for st in streams):
            return  # buffers full and the peers advertise a zero window
        await trio.sleep(0.005)  # (a delayed ACK may still be due)


def run(fn: Callable[[], Awaitable[object]], **kw: Any) -> None:
    trio.run(fn, **kw)


# ---------------------------------------------------------------- trio's generic suite ------
def test_trio_check_half_closeable_stream() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            ports = itertools.count(7000)

            async def maker() -> tuple[TcpStream, TcpStream]:
                return await connect_pair(ra, rb, next(ports))

            async def clogged_maker() -> tuple[TcpStream, TcpStream]:
                s, r = await connect_pair(ra, rb, next(ports), SMALL)
                await clog(s, r)  # both ways: the suite also runs it flipped
                return s, r

            await trio.testing.check_half_closeable_stream(maker, clogged_maker)
            # both directions of the generic suite ran over client and server streams;
            # nothing is left half-open in the stacks except TIME-WAIT / closing states
            assert all(h.conn.state.value != "ESTABLISHED" for h in ra.handles.values())
    run(main)


# ---------------------------------------------------------------- explicit tests -----------
def _payload(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.mark.rfc("9293", "3.10.2")
def test_20mb_both_ways_at_once() -> None:
    size = 20 * 1024 * 1024
    up, down = _payload(1, size), _payload(2, size)

    async def main() -> None:
        cfg = TcpConfig(mss=8960, send_buffer=1 << 20, recv_buffer=1 << 20)
        async with runners(mtu=9000) as (ra, rb):
            c, s = await connect_pair(ra, rb, 5001, cfg)
            got: dict[str, str] = {}

            async def send(st: TcpStream, data: bytes) -> None:
                view = memoryview(data)
                for i in range(0, len(data), 1 << 20):
                    await st.send_all(view[i:i + (1 << 20)])
                await st.send_eof()

            async def recv(st: TcpStream, name: str) -> None:
                h = hashlib.sha256()
                while chunk := await st.receive_some():
                    h.update(chunk)
                got[name] = h.hexdigest()

            async with trio.open_nursery() as n:
                n.start_soon(send, c, up)
                n.start_soon(send, s, down)
                n.start_soon(recv, s, "up")
                n.start_soon(recv, c, "down")
            assert got["up"] == hashlib.sha256(up).hexdigest()
            assert got["down"] == hashlib.sha256(down).hexdigest()
            await c.aclose()
            await s.aclose()
            assert ra.stack.mib["TcpExtTCPTimeouts"] == 0
    run(main)


@pytest.mark.rfc("9293", "3.10.4")
def test_send_eof_then_receive_peers_data() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5002)
            await c.send_all(b"request")
            await c.send_eof()
            with pytest.raises(trio.ClosedResourceError):
                await c.send_all(b"more")
            assert await s.receive_some() == b"request"
            assert await s.receive_some() == b""  # the FIN
            reply = _payload(3, 300_000)
            await s.send_all(reply)  # CLOSE-WAIT may still send (half-close)
            await s.aclose()
            got = bytearray()
            while chunk := await c.receive_some(65536):
                got += chunk
            assert got == reply
            await c.aclose()
            await trio.testing.wait_all_tasks_blocked()
            assert c.connection.state.value in ("TIME-WAIT", "CLOSED")
    run(main)


@pytest.mark.rfc("9293", "3.10.4")
def test_aclose_mid_transfer_by_sender_delivers_prefix() -> None:
    data = _payload(4, 2_000_000)

    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5003)
            got = bytearray()

            async def receiver() -> None:
                while chunk := await s.receive_some():
                    got.extend(chunk)

            async with trio.open_nursery() as n:
                n.start_soon(receiver)
                await c.send_all(data[:1_000_000])
                # closed with data still queued and in flight: it is delivered, then FIN
                assert c.connection.sendbuf.buffered > 0
                await c.aclose()
                with pytest.raises(trio.ClosedResourceError):
                    await c.send_all(data)
                with pytest.raises(trio.ClosedResourceError):
                    await c.receive_some()
            assert got == data[:1_000_000]
            await s.aclose()
    run(main)


@pytest.mark.rfc("9293", "3.10.4")
def test_aclose_mid_transfer_by_receiver_breaks_sender() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5004)

            async def sender() -> None:
                with pytest.raises(trio.BrokenResourceError, match="reset"):
                    while True:
                        await c.send_all(bytes(100_000))

            async with trio.open_nursery() as n:
                n.start_soon(sender)
                assert await s.receive_some(1000)
                await s.aclose()  # unread data: RST (RFC 2525 §2.17, like Linux)
            assert isinstance(_cause(c), ConnectionResetError)
            await c.aclose()
    run(main)


def _cause(st: TcpStream) -> BaseException | None:
    try:
        st._check_broken()
    except trio.BrokenResourceError as e:
        return e.__cause__
    return None


def test_cancel_blocked_receive_some_then_continue() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5005)
            with trio.move_on_after(0.05) as scope:
                await s.receive_some()
            assert scope.cancelled_caught
            await c.send_all(b"after the cancel")
            assert await s.receive_some() == b"after the cancel"
            await c.aclose()
            assert await s.receive_some() == b""
            await s.aclose()
    run(main)


def test_cancel_blocked_send_all_then_continue() -> None:
    first, second = _payload(5, 100_000), _payload(6, 50_000)

    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5006, SMALL)
            with trio.move_on_after(0.05) as scope:
                await c.send_all(first)  # blocks: the peer does not read
            assert scope.cancelled_caught
            # trio: the stream's state is unknown to the caller after a cancelled send_all;
            # ours stays usable and delivers a prefix of the cancelled data, in order
            async with trio.open_nursery() as n:
                async def finish() -> None:
                    await c.send_all(second)
                    await c.send_eof()
                n.start_soon(finish)
                got = bytearray()
                while chunk := await s.receive_some():
                    got.extend(chunk)
            k = len(got) - len(second)
            assert 0 < k < len(first)
            assert got[:k] == first[:k] and got[k:] == second
            await c.aclose()
            await s.aclose()
    run(main)


@pytest.mark.rfc("9293", "3.10.7.4")
def test_peer_reset_is_broken_resource_error() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5007)
            await s.send_all(b"last words")
            await trio.testing.wait_all_tasks_blocked()
            s.abort()  # RST (RFC 9293 §3.10.5 ABORT)
            await trio.testing.wait_all_tasks_blocked()
            assert await c.receive_some() == b"last words"  # what came before the RST
            with pytest.raises(trio.BrokenResourceError, match="connection reset") as ei:
                await c.receive_some()
            assert isinstance(ei.value.__cause__, ConnectionResetError)
            with pytest.raises(trio.BrokenResourceError):
                await c.send_all(b"x")
            await c.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await c.receive_some()
    run(main)


@pytest.mark.rfc("9293", "3.10.7.1")
def test_connect_to_closed_port_is_refused() -> None:
    async def main() -> None:
        async with runners() as (ra, _rb):
            with pytest.raises(ConnectionRefusedError, match="refused"):
                await open_tcp_stream(B, 9, stack=ra)
            await trio.testing.wait_all_tasks_blocked()
            assert ra.claimed_ports() == {}  # the failed connection's port was released
    run(main)


@pytest.mark.rfc("9293", "3.8.3")
def test_connect_timeout_is_timeout_error() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        try:
            sa = Stack([A], random.Random(1))
            async with StackRunner(sa, da) as ra:  # nobody on the other end
                cfg = TcpConfig(syn_retries=2)
                with pytest.raises(TimeoutError):
                    await open_tcp_stream(B, 80, stack=ra, config=cfg)
                assert trio.current_time() >= 1 + 2 + 4  # RFC 6298 backoff of the SYN
                assert sa.mib["TcpExtTCPSynRetrans"] == 2
        finally:
            da.close()
            db.close()
    run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_bad_address_is_oserror() -> None:
    async def main() -> None:
        async with runners() as (ra, _rb):
            with pytest.raises(OSError):
                await open_tcp_stream("2001:db8::1", 80, stack=ra)  # no IPv6 address
    run(main)


def test_serve_tcp_echo() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            async def echo(st: TcpStream) -> None:
                while data := await st.receive_some():
                    await st.send_all(data)

            async with trio.open_nursery() as n:
                async def serve(task_status: trio.TaskStatus[Any]) -> None:
                    await serve_tcp(echo, 0, stack=rb, task_status=task_status)

                lh = await n.start(serve)
                assert lh.port in rb.claimed_ports()
                streams = [await open_tcp_stream(B, lh.port, stack=ra) for _ in range(3)]
                for i, st in enumerate(streams):
                    await st.send_all(b"ping %d" % i)
                for i, st in enumerate(streams):
                    assert await st.receive_some() == b"ping %d" % i
                    await st.send_eof()
                    assert await st.receive_some() == b""  # the handler returned: FIN
                    await st.aclose()
                n.cancel_scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert lh.port not in rb.claimed_ports()
    run(main)


def test_stream_introspection() -> None:
    async def main() -> None:
        async with runners() as (ra, rb):
            c, s = await connect_pair(ra, rb, 5008)
            assert c.remote == (B, 5008) and s.local == (B, 5008)
            assert c.local == s.remote
            info = c.info()
            assert info["state"] == "ESTABLISHED" and info["failure"] is None
            assert "ESTABLISHED" in repr(c)
            await c.aclose()
            await s.aclose()
    run(main)


def test_runner_stop_breaks_streams() -> None:
    async def main() -> None:
        da, db = MemoryLink.pair()
        try:
            sa = Stack([A], random.Random(1))
            sb = Stack([B], random.Random(2))
            async with StackRunner(sb, db) as rb:
                ra = StackRunner(sa, da)
                async with trio.open_nursery() as n:
                    await n.start(ra.run)
                    c, s = await connect_pair(ra, rb, 5009)

                    async def blocked() -> None:
                        with pytest.raises(trio.BrokenResourceError, match="runner stopped"):
                            await c.receive_some()

                    n.start_soon(blocked)
                    await trio.testing.wait_all_tasks_blocked()
                    assert isinstance(da, MemoryDriver) and da.ports
                    ra.stop()
                assert not ra.running
                assert not da.ports  # claims released on exit
                with pytest.raises(trio.BrokenResourceError):
                    await c.send_all(b"x")
                await s.aclose()
        finally:
            da.close()
            db.close()
    run(main)
